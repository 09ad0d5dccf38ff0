/**
 * `strata backup list` and `strata backup restore` (offline). Owner: the strata process's main thread.
 * list: the backups of a directory (default <data-dir>/backups), newest first, with revision, time, tasks and
 * bytes (header and end frame read; `strata snapshot dump FILE` checks every chunk). restore: a backup into an
 * empty data directory (workers/snapshot/backups.ts restoreBackupOffline), which the daemon then opens at the
 * backup's revision. Taking, staging and committing backups of a running daemon are online operations
 * (Engine.backup, stageBackup, queryStaged, commitStaged, unstage; over the network with issue 5).
 */
import { join } from 'node:path';
import { listBackups, restoreBackupOffline } from '../workers/snapshot/backups.js';
import { exitFailure, exitOk, failed, type Output, UsageError } from './tool-support.js';

export interface BackupListOptions { dataDir: string; dir?: string; json?: boolean }

export function backupList(options: BackupListOptions, output: Output): number {
  try {
    const dir = options.dir ?? join(options.dataDir, 'backups');
    const backups = listBackups(dir);
    for (const backup of backups) {
      if (options.json === true) output.write(JSON.stringify(backup));
      else if (backup.revision < 0) output.write(`${backup.name}  DAMAGED (strata snapshot dump ${backup.path})`);
      else {
        output.write(`${backup.name}  revision ${backup.revision}  ${new Date(backup.createdMs).toISOString()}  ` +
          `${backup.tasks} tasks  ${backup.bytes} bytes`);
      }
    }
    if (backups.length === 0 && options.json !== true) output.write(`no backups in ${dir}`);
    return exitOk;
  } catch (error) {
    return failed(error, 'backup list', output);
  }
}

export interface BackupRestoreOptions { dataDir: string; file: string | undefined }

export function backupRestore(options: BackupRestoreOptions, output: Output): number {
  if (options.file === undefined) throw new UsageError('backup restore needs the backup FILE');
  try {
    const restored = restoreBackupOffline(options.file, options.dataDir);
    output.write(`restored ${options.file} into ${options.dataDir}: revision ${restored.revision} ` +
      `(${restored.snapshot}); start the daemon on it`);
    return exitOk;
  } catch (error) {
    const code = failed(error, 'backup restore', output);
    return code === exitOk ? exitFailure : code;
  }
}
