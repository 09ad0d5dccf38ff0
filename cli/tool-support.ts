/**
 * What every offline tool of the strata command shares: exit codes, output callbacks, the data directory lock,
 * usage errors, and the few file moves that must be durable. Owner: the main thread of the strata process (or a
 * test calling the tools in its own thread).
 * Invariants: a tool touches a data directory only while it holds its lock, and releases only a lock it took; a
 * file is moved or replaced only after its new bytes and directory entries are fsynced.
 */
import {
  closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FormatError, fsyncDirectory } from '../core/files.js';
import { acquireLock, LockedError, releaseLock } from '../core/lock.js';
import { listSnapshots } from '../workers/snapshot/read.js';

/** Exit codes of the strata command (documented in docs/operations.md and in `strata --help`). */
export const exitOk = 0;
export const exitFailure = 1;       // a failure, or corruption found
export const exitUsage = 2;         // bad arguments
export const exitLocked = 3;        // the data directory is in use (a live daemon or another tool holds its lock)
export const exitTornTail = 4;      // verify: the only problem is a torn tail, which the daemon cuts at its next start

/** One line of output (no newline). */
export type Write = (line: string) => void;

export interface Output {
  write: Write;
  /** Errors and warnings (stderr in the command); defaults to write. */
  writeError?: Write;
}

export interface OfflineOptions {
  dataDir: string;
}

/** A mistake in the arguments: exit code 2, with this message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The exit code of an error thrown while checking arguments (before the data directory is touched). */
export function usageFailed(error: unknown, output: Output): number {
  if (!(error instanceof UsageError)) throw error;
  (output.writeError ?? output.write)(`strata: ${error.message}`);
  return exitUsage;
}

export function logDirectory(dataDir: string): string {
  return join(dataDir, 'log');
}

export function snapshotDirectory(dataDir: string): string {
  return join(dataDir, 'snapshots');
}

/**
 * Runs `body` holding the data directory's lock, and turns what it throws into an exit code and a message:
 * LockedError 3, UsageError 2, FormatError and any other error 1.
 */
export function withDataDirectory(options: OfflineOptions, what: string, output: Output, body: () => number): number {
  const writeError = output.writeError ?? output.write;
  if (!existsSync(options.dataDir) || !statSync(options.dataDir).isDirectory()) {
    writeError(`strata: no data directory at ${options.dataDir} (give it with --data-dir)`);
    return exitFailure;
  }
  try {
    lockDataDirectory(options.dataDir, what);
  } catch (error) {
    if (error instanceof LockedError) {
      writeError(`strata: ${error.message}`);
      return exitLocked;
    }
    throw error;
  }
  // process.exit() (the command ends quietly when its reader goes away) skips finally blocks, not 'exit' handlers.
  const release = () => releaseLock(options.dataDir);
  process.on('exit', release);
  try {
    return body();
  } catch (error) {
    return failed(error, what, output);
  } finally {
    process.off('exit', release);
    releaseLock(options.dataDir);
  }
}

/** The exit code of an error a tool threw, its message written: UsageError 2, FormatError and any other error 1. */
export function failed(error: unknown, what: string, output: Output): number {
  const writeError = output.writeError ?? output.write;
  if (error instanceof UsageError) {
    writeError(`strata: ${error.message}`);
    return exitUsage;
  }
  if (error instanceof FormatError) {
    writeError(`strata: ${error.message}`);
    return exitFailure;
  }
  // An I/O error says enough by its code and message; anything else is a bug, and its stack helps.
  const e = error as NodeJS.ErrnoException;
  writeError(`strata: ${what} failed: ${e?.code !== undefined ? e.message : e?.stack ?? String(error)}`);
  return exitFailure;
}

function lockDataDirectory(dataDir: string, what: string): void {
  acquireLock(dataDir, what);
}

/** `<parent>/<prefix>-<UTC timestamp>` (a new directory, made durable), e.g. truncated-20250102T030405Z. */
export function makeKeepDirectory(parent: string, prefix: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  for (let attempt = 1; ; attempt++) {
    const path = join(parent, attempt === 1 ? `${prefix}-${stamp}` : `${prefix}-${stamp}-${attempt}`);
    try {
      mkdirSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 100) continue;
      throw error;
    }
    fsyncDirectory(parent);
    return path;
  }
}

/** Writes a new file and fsyncs it (it must not exist yet). The directory is not synced here. */
export function writeFileSynced(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'wx');
  try {
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at, at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Moves a file into `directory` (a rename; a copy, fsync and unlink across file systems). Both directories are
 * synced by the caller, after its last move.
 */
export function moveInto(path: string, directory: string): string {
  const target = join(directory, basename(path));
  try {
    renameSync(path, target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    copyFileSync(path, target);
    const fd = openSync(target, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    unlinkSync(path);
  }
  return target;
}

/** Replaces `path` with `bytes`: written to `<path>.tmp`, fsynced, renamed over it, the directory synced. */
export function replaceFileSynced(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp`;
  try {
    unlinkSync(tmp);
  } catch {
    // not there: the usual case
  }
  writeFileSynced(tmp, bytes);
  renameSync(tmp, path);
  fsyncDirectory(dirname(path));
}

/**
 * The snapshots of the data directory, newest (highest revision) first: workers/snapshot/read.ts listSnapshots
 * over `<dataDir>/snapshots`, none when there is no such directory.
 */
export function dataDirectorySnapshots(dataDir: string): { path: string; revision: number }[] {
  try {
    return listSnapshots(snapshotDirectory(dataDir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/**
 * The oldest snapshot that a log starting at `firstRevision` continues (its revision is firstRevision - 1 or
 * later): moving it and every later one away would leave recovery nothing to start from. null when the log
 * starts at revision 1 (it needs none) or when no snapshot serves it already.
 */
export function snapshotFloor(dataDir: string, firstRevision: number): number | null {
  if (firstRevision <= 1) return null;
  return dataDirectorySnapshots(dataDir).findLast((snapshot) => snapshot.revision >= firstRevision - 1)?.revision ??
    null;
}

/** Moves the snapshots that `moved(revision)` selects into `directory`; returns their names. */
export function moveSnapshots(dataDir: string, directory: string, moved: (revision: number) => boolean): string[] {
  const names: string[] = [];
  for (const snapshot of dataDirectorySnapshots(dataDir)) {
    if (!moved(snapshot.revision)) continue;
    moveInto(snapshot.path, directory);
    names.push(basename(snapshot.path));
  }
  if (names.length > 0) {
    fsyncDirectory(directory);
    fsyncDirectory(snapshotDirectory(dataDir));
  }
  return names;
}
