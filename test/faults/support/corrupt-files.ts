/**
 * The corrupt-file suite's data directory and its damage: one acknowledged history written through a real daemon
 * (snapshots, a backup, the log; then SIGKILL), copied per case and damaged there (bit flips, cuts, files put in
 * place), and what a daemon started on the copy did. Owner: tests only.
 * Invariants:
 * - The base directory is never started on after it is built: every case gets its own copy (without LOCK and
 *   next.tmp, which a start recreates), so cases are independent and can run in any order.
 * - The base history is all acknowledged (every client ran to its end before the kill): the state any revision
 *   must show is known (io-load.ts expectedAt).
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { StrataClient } from '../../../client/index.js';
import { scanLog, type LogGroupRecord } from '../../../core/wal.js';
import { listSnapshots } from '../../../workers/snapshot/read.js';
import { logLines, startOrRefusal, startQuiet, type Refusal, type Teardown } from './io-daemon.js';
import { runLoad, servedState, type SentTransaction, type TaskState } from './io-load.js';

export interface Base {
  dir: string;                    // the data directory
  sent: SentTransaction[];
  lastRevision: number;
  segment: string;                // the log's only segment (64 MiB: the whole history)
  records: LogGroupRecord[];      // its records, oldest first
  snapshots: { path: string; revision: number }[];  // newest first (two: retained default)
  backup: string;                 // the path of the one backup
  backupRevision: number;
}

/** Writes the base history: load, snapshot, load, backup, snapshot, load; then SIGKILL. */
export async function buildBase(t: Teardown, scratch: string, clients: number, perLoad: number): Promise<Base> {
  const dir = join(scratch, 'base');
  const daemon = await startQuiet(t, dir);
  const admin = await StrataClient.connect({ url: daemon.url, reconnect: false, requestTimeoutMs: 120_000 });
  const sent = await runLoad(daemon.url, clients, perLoad);
  await admin.snapshot();
  sent.push(...await runLoad(daemon.url, clients, perLoad, perLoad));
  const backup = await admin.backup();
  await admin.snapshot();
  sent.push(...await runLoad(daemon.url, clients, perLoad, 2 * perLoad));
  admin.close();
  await daemon.kill();
  if (!sent.every((e) => e.outcome === 'acked')) throw new Error('the base history is not all acknowledged');
  const records: LogGroupRecord[] = [];
  const scan = scanLog(join(dir, 'log'), (record) => records.push(record));
  if (scan.segments.length !== 1 || scan.torn !== null) throw new Error('the base log is not one clean segment');
  return {
    dir, sent, lastRevision: scan.lastRevision, segment: join(dir, 'log', scan.segments[0]!.name), records,
    snapshots: listSnapshots(join(dir, 'snapshots')), backup: String(backup.path), backupRevision: Number(backup.revision),
  };
}

/** A copy of the base directory for one case; returns its data directory. */
export function copyBase(base: Base, scratch: string): string {
  const dir = join(mkdtempSync(join(scratch, 'case-')), 'data');
  cpSync(base.dir, dir, { recursive: true, filter: (source) => !['LOCK', 'next.tmp'].includes(basename(source)) });
  return dir;
}

/** The same path inside a copy of the base directory. */
export function inCopy(base: Base, copy: string, path: string): string {
  return join(copy, path.slice(base.dir.length));
}

/** Flips one bit of a file. */
export function flipBit(path: string, offset: number, bit: number): void {
  const bytes = readFileSync(path);
  bytes[offset] = bytes[offset]! ^ (1 << bit);
  writeFileSync(path, bytes);
}

export type Outcome = { kind: 'started'; state: TaskState; revision: number; recovery: Recovered } | Refusal;

/** What the 'stratad ready' line says recovery did. */
export interface Recovered {
  snapshot: { path: string; revision: number } | null;
  torn: { file: string; offset: number } | null;
  brokenSnapshots?: string[];
}

/** Starts a daemon on `dataDir`: what it serves if it starts (then stopped), or how it refused. */
export async function openCase(t: Teardown, dataDir: string): Promise<Outcome> {
  return startOrRefusal(t, dataDir, async (daemon): Promise<Outcome> => {
    const { state, revision } = await servedState(daemon.url);
    const ready = logLines(daemon, 'stratad ready')[0] as { recovery: Recovered };
    return { kind: 'started', state, revision, recovery: ready.recovery };
  });
}
