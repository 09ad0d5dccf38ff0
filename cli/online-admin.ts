/**
 * The online admin commands of the strata command: `snapshot` (one now), `backup create`, `backup list` (online
 * form), `backup stage NAME`, `backup commit`, `backup unload` (`backup query` is in online-read.ts). Owner: the
 * strata process's main thread.
 * Invariants: each is one request; none is resent after a lost connection (the connection has no reconnects: a
 * lost answer is exit 5, and `strata status` tells what happened, as docs/protocol.md advises).
 */
import type { fbs, StrataClient } from '../client/index.js';
import type { Io, Values } from './command-spec.js';
import { str, writeTable } from './online-read.js';
import { recordJson } from './schema-json.js';
import { exitOk, UsageError } from './tool-support.js';

function fileLine(what: string, file: fbs.FileResponseT): string {
  return `${what} ${str(file.path)}: revision ${file.revision}, ${file.tasks} tasks, ${file.bytes} bytes`;
}

export async function snapshotNow(client: StrataClient, values: Values, io: Io): Promise<number> {
  const file = await client.snapshot();
  io.write(values['json'] === true ? JSON.stringify(recordJson('FileResponse', file)) : fileLine('snapshot', file));
  return exitOk;
}

export async function backupCreate(client: StrataClient, values: Values, io: Io): Promise<number> {
  const file = await client.backup();
  io.write(values['json'] === true ? JSON.stringify(recordJson('FileResponse', file)) : fileLine('backup', file));
  return exitOk;
}

export async function backupListOnline(client: StrataClient, values: Values, io: Io): Promise<number> {
  const backups = await client.listBackups();
  if (values['json'] === true) {
    for (const backup of backups) io.write(JSON.stringify(recordJson('BackupInfo', backup)));
    return exitOk;
  }
  if (backups.length === 0) {
    io.write('no backups');
    return exitOk;
  }
  writeTable(io, ['NAME', 'REVISION', 'CREATED', 'BYTES'], backups.map((b) => [str(b.name), String(b.revision),
    new Date(Number(b.createdMs)).toISOString(), String(b.bytes)]));
  return exitOk;
}

export async function backupStage(client: StrataClient, name: string | undefined, values: Values,
  io: Io): Promise<number> {
  if (name === undefined || name === '') throw new UsageError('backup stage needs the backup NAME (strata backup list)');
  const staged = await client.stageBackup(name);
  io.write(values['json'] === true ? JSON.stringify(recordJson('BackupStageResponse', staged))
    : `staged ${str(staged.name)}: revision ${staged.revision}, ${staged.tasks} tasks ` +
      '(strata backup query to look at it, backup commit to restore it, backup unload to drop it)');
  return exitOk;
}

export async function backupCommit(client: StrataClient, values: Values, io: Io): Promise<number> {
  const committed = await client.commitStaged();
  io.write(values['json'] === true ? JSON.stringify(recordJson('BackupCommitResponse', committed))
    : `restored the staged backup at revision ${committed.revision} (${str(committed.file)}); live watches got a reset`);
  return exitOk;
}

export async function backupUnload(client: StrataClient, io: Io): Promise<number> {
  await client.unloadStaged();
  io.write('unloaded the staged backup');
  return exitOk;
}
