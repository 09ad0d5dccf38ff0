/**
 * The data directory's lock: one daemon (or one offline tool) at a time. Owner: the main thread of a process.
 * Node has no flock(2); this is the pid-file protocol, made safe against the races a pid file has:
 * - `<dataDir>/LOCK` holds the owner's pid, what it is, when it started, the kernel's boot id and the owner's
 *   start time (field 22 of /proc/<pid>/stat). It is written to a unique temp file first and hard-linked to
 *   LOCK, so it appears atomically with its content (EEXIST when it is held): no reader sees it empty.
 * - A lock is stale when its process is gone: its pid does not exist, or (where /proc has them) the boot id is
 *   not the current one (a lock from before a reboot) or the pid's start time is not the recorded one (a reused
 *   pid). A LOCK naming this pid that this process did not take itself is a reused pid's. A LOCK that does not
 *   parse (an older version creates it empty and writes it then; a crash or a power loss in between) is held
 *   while it is new, stale once it is older than a few seconds.
 * - A stale lock is taken over under `LOCK.takeover` (a lock of the same kind, held for a few system calls): its
 *   taker reads LOCK again, renames it to a unique name if it is still the file judged stale (rename is atomic:
 *   of two renames of one file, one gets ENOENT), deletes it, and every process retries the exclusive create;
 *   one of them wins. Without that guard, a process that judged LOCK stale could rename away the fresh lock of
 *   a process that took over the same stale lock a moment before. A file renamed aside that is not the one judged
 *   stale is linked back. The remaining race needs a process to die while it holds LOCK.takeover and three
 *   processes to find that at the same moment.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync, fstatSync, linkSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';

export interface LockHolder {
  pid: number;
  what: string;
  since: string;
  /** The kernel's boot id when the lock was taken (where /proc has it): a lock from before a reboot is stale. */
  bootId?: string;
  /** The holder's start time in clock ticks after boot (/proc/<pid>/stat field 22): a reused pid is not it. */
  startTime?: number;
}

export class LockedError extends Error {
  constructor(readonly dataDir: string, readonly holder: LockHolder) {
    super(`the data directory ${dataDir} is in use by ${holder.what} (pid ${holder.pid}, since ${holder.since}); ` +
      'stop it first (offline tools work on the data directory of a stopped daemon)');
    this.name = 'LockedError';
  }
}

/** Data directories this process holds (a lock file naming this pid but not listed here is a reused pid's). */
const held = new Set<string>();

const lockName = 'LOCK';
const takeoverName = 'LOCK.takeover';
/** How old a lock file that does not parse must be to be stale (its writer died between create and write). */
const unreadableStaleMs = 5000;
/** How long acquireLock waits for another process's takeover of a stale lock before it gives up. */
const takeoverWaitMs = 2000;
const pauseMs = 5;
/** The errors of a file system without hard links, where the lock is created and then written. */
const noLinks = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);
/** What a process that died while taking or taking over the lock can leave behind (its pid in the name). */
const leftover = /^LOCK(?:\.takeover)?\.(?:tmp|stale)-(\d+)-[0-9a-f]+$/;

/** A lock file as read: its text and identity. */
interface Seen { text: string; dev: number; ino: number; mtimeMs: number }

let bootIdRead: string | null | undefined;

function currentBootId(): string | null {
  if (bootIdRead === undefined) {
    try {
      bootIdRead = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootIdRead = null;
    }
  }
  return bootIdRead;
}

/** The start time of process `pid` in clock ticks after boot, or null where /proc does not tell. */
function startTimeOf(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2, the command, is in parentheses and may hold spaces and parentheses: fields 3.. follow the last ')'.
  const value = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : null;
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function alive(holder: LockHolder): boolean {
  if (!pidExists(holder.pid)) return false;
  const bootId = currentBootId();
  if (holder.bootId !== undefined && bootId !== null && holder.bootId !== bootId) return false;
  if (holder.startTime !== undefined) {
    const startTime = startTimeOf(holder.pid);
    if (startTime !== null && startTime !== holder.startTime) return false;
  }
  return true;
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

function unique(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The lock file at `path`, or null when there is none. */
function look(path: string): Seen | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  }
  try {
    const stat = fstatSync(fd);
    return { text: readFileSync(fd, 'utf8'), dev: stat.dev, ino: stat.ino, mtimeMs: stat.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

function same(a: Seen, b: Seen): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.text === b.text;
}

function parse(text: string): LockHolder | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const fields = value as Record<string, unknown>;
  const pid = fields.pid;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  const holder: LockHolder = {
    pid,
    what: typeof fields.what === 'string' ? fields.what : 'another process',
    since: typeof fields.since === 'string' ? fields.since : '?',
  };
  if (typeof fields.bootId === 'string') holder.bootId = fields.bootId;
  if (typeof fields.startTime === 'number' && Number.isSafeInteger(fields.startTime)) {
    holder.startTime = fields.startTime;
  }
  return holder;
}

/** The live holder of a lock file, or null when it is stale. `mine`: this process took that lock itself. */
function judge(seen: Seen, mine: boolean): LockHolder | null {
  const holder = parse(seen.text);
  if (holder === null) {
    if (Date.now() - seen.mtimeMs > unreadableStaleMs) return null;
    return { pid: -1, what: 'a process writing its lock file', since: new Date(seen.mtimeMs).toISOString() };
  }
  // This process is a holder when it took the lock itself (an engine of its own, a tool run by a test); a lock
  // naming this pid that it did not take was left by a dead process whose pid was reused.
  if (holder.pid === process.pid) return mine ? holder : null;
  return alive(holder) ? holder : null;
}

function describeMe(what: string): string {
  const me: LockHolder = { pid: process.pid, what, since: new Date().toISOString() };
  const bootId = currentBootId();
  if (bootId !== null) me.bootId = bootId;
  const startTime = startTimeOf(process.pid);
  if (startTime !== null) me.startTime = startTime;
  return JSON.stringify(me);
}

/** Creates `path` with `text` in one step (a temp file hard-linked to it); false when it exists. */
function create(path: string, text: string): boolean {
  const temp = `${path}.tmp-${unique()}`;
  writeFileSync(temp, text, { flag: 'wx' });
  try {
    linkSync(temp, path);
    return true;
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    if (!noLinks.has(errorCode(error) ?? '')) throw error;
  } finally {
    rmSync(temp, { force: true });
  }
  // No hard links here: create, then write (a reader in between sees an empty file, held while it is new).
  try {
    writeFileSync(path, text, { flag: 'wx' });
    return true;
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    throw error;
  }
}

/** Renames the stale file `path`, read as `stale`, to a unique name and deletes it. */
function setAside(path: string, stale: Seen): void {
  const aside = `${path}.stale-${unique()}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return; // another process set it aside first
    throw error;
  }
  const moved = look(aside);
  if (moved !== null && !same(moved, stale)) {
    // Not the file judged stale: another process replaced it in between. It goes back (unless a third process
    // created one where there was none meanwhile).
    try {
      linkSync(aside, path);
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error;
    }
  }
  rmSync(aside, { force: true });
}

/**
 * Removes the stale lock file, read as `stale`, under LOCK.takeover. Returns false when another live process
 * holds LOCK.takeover (the caller waits a moment), true when the caller is to try its create again.
 */
function takeOver(dataDir: string, stale: Seen): boolean {
  const guard = join(dataDir, takeoverName);
  const text = describeMe('a takeover of a stale lock');
  if (!create(guard, text)) {
    const other = look(guard);
    if (other === null) return true;
    if (judge(other, false) !== null) return false;
    setAside(guard, other); // its process died while it took over a lock
    return true;
  }
  try {
    // With the guard held, LOCK changes only by a release or by a create where there was none.
    const now = look(join(dataDir, lockName));
    if (now !== null && same(now, stale)) setAside(join(dataDir, lockName), now);
    return true;
  } finally {
    const mine = look(guard);
    if (mine !== null && mine.text === text) rmSync(guard, { force: true });
  }
}

/** Deletes what processes that died while taking or taking over the lock left behind. */
function sweep(dataDir: string): void {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return;
  }
  for (const name of names) {
    const match = leftover.exec(name);
    if (match === null) continue;
    const pid = Number(match[1]);
    if (pid !== process.pid && !pidExists(pid)) rmSync(join(dataDir, name), { force: true });
  }
}

/** The live holder of the lock, or null. */
export function lockHolder(dataDir: string): LockHolder | null {
  const seen = look(join(dataDir, lockName));
  return seen === null ? null : judge(seen, held.has(resolve(dataDir)));
}

/** Takes the lock for this process; throws LockedError when another live process holds it. */
export function acquireLock(dataDir: string, what: string): void {
  const path = join(dataDir, lockName);
  const text = describeMe(what);
  const deadline = Date.now() + takeoverWaitMs;
  for (;;) {
    if (create(path, text)) {
      held.add(resolve(dataDir));
      sweep(dataDir);
      return;
    }
    const seen = look(path);
    const holder = seen === null ? null : judge(seen, held.has(resolve(dataDir)));
    if (holder !== null) throw new LockedError(dataDir, holder);
    if (Date.now() > deadline) {
      throw new LockedError(dataDir, { pid: -1, what: 'processes taking over a stale lock', since: '?' });
    }
    if (seen !== null && !takeOver(dataDir, seen)) pause(pauseMs);
  }
}

export function releaseLock(dataDir: string): void {
  if (!held.delete(resolve(dataDir))) return;
  const path = join(dataDir, lockName);
  try {
    const seen = look(path);
    if (seen !== null && parse(seen.text)?.pid === process.pid) rmSync(path, { force: true });
  } catch {
    // not ours any more, or unreadable: left as it is
  }
}
