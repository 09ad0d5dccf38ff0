/**
 * Backups: snapshots of a revision in <dataDir>/backups (or a directory of the operator's choice), named by
 * their UTC time as Aurora named them (scheduler-backup-yyyy-MM-dd-HH-mm), kept to a count, oldest deleted.
 * A backup is a snapshot file whose magic is STRATBAK (docs/formats.md); everything that reads a snapshot reads
 * it. Owner: the writer thread (periodic and on-request backups) and the offline tools.
 */
import {
  closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { fsyncDirectory } from '../../core/files.js';
import { snapshotFileName } from '../../core/snapshot-format.js';
import { forEachSnapshotChunk, readSnapshotInfo } from './read.js';

export const backupPrefix = 'scheduler-backup-';
export const backupSuffix = '.bak';

/**
 * scheduler-backup-yyyy-MM-dd-HH-mm.bak (UTC), Aurora's name; a second backup in the same minute adds -ss, and
 * one in the same second -ss-mmm, so that no backup overwrites another (Aurora's did).
 */
export function backupName(dir: string, now = new Date()): string {
  const iso = now.toISOString(); // 2026-11-25T23:52:18.123Z
  const minute = `${iso.slice(0, 10)}-${iso.slice(11, 13)}-${iso.slice(14, 16)}`;
  for (const suffix of ['', `-${iso.slice(17, 19)}`, `-${iso.slice(17, 19)}-${iso.slice(20, 23)}`]) {
    const name = `${backupPrefix}${minute}${suffix}${backupSuffix}`;
    if (!existsSync(join(dir, name))) return name;
  }
  throw new Error(`a backup named for ${iso} exists already`);
}

/** Orders backup names by the time they carry (a name without seconds is second 0 of its minute). */
function byTime(a: string, b: string): number {
  const key = (name: string): string => name.slice(backupPrefix.length, -backupSuffix.length).split('-')
    .map((part) => part.padStart(4, '0')).concat(['0000', '0000']).slice(0, 7).join('-');
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}

function backupNames(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith(backupPrefix) && n.endsWith(backupSuffix)).sort(byTime);
}

export interface BackupInfo { name: string; path: string; revision: number; createdMs: number; tasks: number; bytes: number }

/** The backups of `dir`, newest first (by name, which is by time). A damaged one is listed with revision -1. */
export function listBackups(dir: string): BackupInfo[] {
  let names: string[];
  try {
    names = backupNames(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const backups: BackupInfo[] = [];
  for (const name of names.reverse()) {
    const path = join(dir, name);
    try {
      const info = readSnapshotInfo(path);
      backups.push({ name, path, revision: info.revision, createdMs: info.createdMs, tasks: info.counts.tasks, bytes: info.bytes });
    } catch {
      backups.push({ name, path, revision: -1, createdMs: 0, tasks: 0, bytes: 0 });
    }
  }
  return backups;
}

/** Deletes the oldest backups beyond `keep`; returns the names deleted. */
export function pruneBackups(dir: string, keep: number): string[] {
  const names = backupNames(dir);
  const removed = names.slice(0, Math.max(0, names.length - keep));
  for (const name of removed) unlinkSync(join(dir, name));
  if (removed.length > 0) fsyncDirectory(dir);
  return removed;
}

/**
 * Offline restore into an empty (or absent) data directory: the backup becomes its only snapshot, and the log
 * starts after the backup's revision when the daemon opens it. Refuses a directory that holds anything.
 */
export function restoreBackupOffline(backup: string, dataDir: string): { revision: number; snapshot: string } {
  // Every frame is checked before anything is written: the header and end frame alone (readSnapshotInfo) let a
  // damaged chunk through, and the daemon would then set its only snapshot aside and start empty.
  const info = forEachSnapshotChunk(backup, () => undefined);
  mkdirSync(dataDir, { recursive: true });
  const present = readdirSync(dataDir);
  if (present.length > 0) {
    throw Object.assign(new Error(`${dataDir} is not empty (${present.slice(0, 3).join(', ')}` +
      `${present.length > 3 ? ', ...' : ''}): an offline restore goes into an empty data directory`),
    { code: 'ENOTEMPTY' });
  }
  const dir = join(dataDir, 'snapshots');
  mkdirSync(dir);
  const snapshot = join(dir, snapshotFileName(info.revision));
  copyFileSync(backup, `${snapshot}.tmp`);
  const fd = openSync(`${snapshot}.tmp`, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(`${snapshot}.tmp`, snapshot);
  fsyncDirectory(dir);
  fsyncDirectory(dataDir);
  return { revision: info.revision, snapshot };
}
