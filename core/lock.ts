/**
 * The data directory's lock: one daemon (or one offline tool) at a time. Owner: the main thread of a process.
 * `<dataDir>/LOCK` is created with O_EXCL and holds the owner's pid, what it is and when it started. A lock
 * whose pid is not alive any more (a crash) is stale and taken over. Node has no flock(2); this is the
 * pid-file protocol. Its one race: two processes that find the same stale lock at the same moment; one of them
 * then fails its O_EXCL create (or, rarely, both remove and one re-creates): systemd starts one daemon anyway.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface LockHolder { pid: number; what: string; since: string }

export class LockedError extends Error {
  constructor(readonly dataDir: string, readonly holder: LockHolder) {
    super(`the data directory ${dataDir} is in use by ${holder.what} (pid ${holder.pid}, since ${holder.since}); ` +
      'stop it first (offline tools work on the data directory of a stopped daemon)');
    this.name = 'LockedError';
  }
}

/** Data directories this process holds (a lock file naming this pid but not listed here is a reused pid's). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live holder of the lock, or null. */
export function lockHolder(dataDir: string): LockHolder | null {
  let holder: LockHolder;
  try {
    holder = JSON.parse(readFileSync(join(dataDir, 'LOCK'), 'utf8')) as LockHolder;
  } catch {
    return null;
  }
  if (typeof holder.pid !== 'number') return null;
  // This process is a holder when it took the lock itself (an engine of its own, a tool run by a test); a lock
  // naming this pid that it did not take was left by a dead process whose pid was reused.
  if (holder.pid === process.pid) return held.has(resolve(dataDir)) ? holder : null;
  return alive(holder.pid) ? holder : null;
}

/** Takes the lock for this process; throws LockedError when another live process holds it. */
export function acquireLock(dataDir: string, what: string): void {
  const path = join(dataDir, 'LOCK');
  const mine: LockHolder = { pid: process.pid, what, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, JSON.stringify(mine), { flag: 'wx' });
      held.add(resolve(dataDir));
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = lockHolder(dataDir);
    if (holder !== null) throw new LockedError(dataDir, holder);
    rmSync(path, { force: true }); // stale: its process is gone
  }
  const holder = lockHolder(dataDir);
  throw new LockedError(dataDir, holder ?? { pid: -1, what: 'another process', since: '?' });
}

export function releaseLock(dataDir: string): void {
  if (!held.delete(resolve(dataDir))) return;
  try {
    const holder = JSON.parse(readFileSync(join(dataDir, 'LOCK'), 'utf8')) as LockHolder;
    if (holder.pid === process.pid) rmSync(join(dataDir, 'LOCK'), { force: true });
  } catch {
    // no lock, or not ours
  }
}
