/**
 * The data directory's lock (core/lock.ts) between real processes: children run `node -e` scripts that import
 * the built dist/core/lock.js by its absolute URL, each test in its own temporary directory. Owner: the test
 * runner (ava worker thread).
 * Invariants checked: a lock is taken and released (nothing left in the directory); another process is refused
 * with a LockedError naming the holder's pid; a lock whose pid is dead, whose boot id is not the current one or
 * whose start time is not its pid's is stale and taken over, one that matches is held (also when it records no
 * boot id or start time); an empty LOCK is held while new and stale when old; processes racing for a stale lock
 * never hold it at the same time (holding intervals do not overlap, each winner's LOCK names it throughout).
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import {
  existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { acquireLock, lockHolder, LockedError, releaseLock } from '../core/lock.js';

const lockModule = new URL('../core/lock.js', import.meta.url).href;
const bootIdFile = '/proc/sys/kernel/random/boot_id';
const haveProc = existsSync(bootIdFile) && existsSync(`/proc/${process.pid}/stat`);
const raceRounds = 20;
const racers = 3;
const holdMs = 200;

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-lock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function startTimeOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

function writeLock(dir: string, fields: Record<string, unknown>): void {
  writeFileSync(join(dir, 'LOCK'), JSON.stringify({ what: 'a test', since: new Date().toISOString(), ...fields }));
}

/** A pid no process has now: that of a child that exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  if (child.pid === undefined) throw new Error('no child');
  return child.pid;
}

/** One attempt in a child process: takes the lock, reads LOCK, releases it. */
const tryScript = `
const { acquireLock, releaseLock } = await import(${JSON.stringify(lockModule)});
const { existsSync, readFileSync } = await import('node:fs');
const dir = process.argv[1];
try {
  acquireLock(dir, 'a test child');
  const lock = JSON.parse(readFileSync(dir + '/LOCK', 'utf8'));
  releaseLock(dir);
  console.log(JSON.stringify({ ok: true, pid: process.pid, lock, after: existsSync(dir + '/LOCK') }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, name: error.name, holder: error.holder ?? null, message: error.message }));
}
`;

interface TryResult {
  ok: boolean;
  pid?: number;
  lock?: { pid: number; what: string; since: string; bootId?: string; startTime?: number };
  after?: boolean;
  name?: string;
  holder?: { pid: number; what: string } | null;
  message?: string;
}

async function tryInChild(dir: string): Promise<TryResult> {
  const child = startChild(tryScript, [dir]);
  child.stdin.end();
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const code = await exited(child);
  if (code !== 0) throw new Error(`the child failed (${code}): ${stderr}`);
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as TryResult;
}

/** The lines a child writes, one at a time. */
function lines(child: ChildProcessWithoutNullStreams): () => Promise<string> {
  const queue: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let partial = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  child.once('close', (code) => {
    for (const waiter of waiting.splice(0)) waiter(`(child ${child.pid} exited with ${code}: ${stderr})`);
  });
  child.stdout.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    let end: number;
    while ((end = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, end);
      partial = partial.slice(end + 1);
      const next = waiting.shift();
      if (next !== undefined) next(line);
      else queue.push(line);
    }
  });
  return () => new Promise((resolve, reject) => {
    const line = queue.shift();
    if (line !== undefined) {
      resolve(line);
      return;
    }
    const timer = setTimeout(() => reject(new Error(`no line from child ${child.pid}: ${stderr}`)), 15_000);
    waiting.push((next) => {
      clearTimeout(timer);
      resolve(next);
    });
  });
}

/** The exit code of each child, once its output is read to the end ('close'). */
const closed = new WeakMap<ChildProcessWithoutNullStreams, Promise<number | null>>();

function exited(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return closed.get(child) ?? Promise.reject(new Error('not a child of startChild'));
}

function startChild(script: string, args: string[] = []): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, ...args], { stdio: 'pipe' });
  closed.set(child, new Promise((resolve) => child.once('close', (code) => resolve(code))));
  return child;
}

test('a process takes the lock and releases it, leaving nothing behind', async (t) => {
  const dir = tempDir(t);
  const result = await tryInChild(dir);
  t.true(result.ok, result.message);
  t.is(result.lock?.pid, result.pid);
  t.is(result.lock?.what, 'a test child');
  if (haveProc) {
    t.is(result.lock?.bootId, readFileSync(bootIdFile, 'utf8').trim());
    t.is(typeof result.lock?.startTime, 'number');
  }
  t.false(result.after);
  t.deepEqual(readdirSync(dir), []);

  // In this process: held by itself, refused a second time, free after the release.
  acquireLock(dir, 'the test');
  try {
    t.is(lockHolder(dir)?.pid, process.pid);
    const error = t.throws(() => acquireLock(dir, 'the test again'), { instanceOf: LockedError });
    t.is(error?.holder.pid, process.pid);
  } finally {
    releaseLock(dir);
  }
  t.is(lockHolder(dir), null);
  t.deepEqual(readdirSync(dir), []);
});

test('a second process is refused with a LockedError naming the holder', async (t) => {
  const dir = tempDir(t);
  const holder = startChild(`
const { acquireLock, releaseLock } = await import(${JSON.stringify(lockModule)});
const dir = process.argv[1];
acquireLock(dir, 'the holder');
console.log('held');
process.stdin.resume();
process.stdin.on('end', () => { releaseLock(dir); console.log('released'); });
`, [dir]);
  const next = lines(holder);
  try {
    t.is(await next(), 'held');
    const refused = await tryInChild(dir);
    t.false(refused.ok);
    t.is(refused.name, 'LockedError');
    t.is(refused.holder?.pid, holder.pid);
    t.is(refused.holder?.what, 'the holder');
    t.true(refused.message?.includes(`pid ${holder.pid}`), refused.message);
    t.is(lockHolder(dir)?.pid, holder.pid);
  } finally {
    holder.stdin.end();
  }
  t.is(await next(), 'released');
  t.is(await exited(holder), 0);
  const after = await tryInChild(dir);
  t.true(after.ok, after.message);
});

test('a lock of a dead pid is stale and taken over', async (t) => {
  const dir = tempDir(t);
  const pid = deadPid();
  writeLock(dir, { pid });
  t.is(lockHolder(dir), null);
  const result = await tryInChild(dir);
  t.true(result.ok, result.message);
  t.is(result.lock?.pid, result.pid);
  t.deepEqual(readdirSync(dir), []);
});

test('a lock naming this pid that this process did not take is stale', (t) => {
  const dir = tempDir(t);
  writeLock(dir, { pid: process.pid });
  t.is(lockHolder(dir), null);
  acquireLock(dir, 'the test');
  t.is(lockHolder(dir)?.what, 'the test');
  releaseLock(dir);
  t.deepEqual(readdirSync(dir), []);
});

test('a lock of a live pid without boot id and start time is held', async (t) => {
  const dir = tempDir(t);
  writeLock(dir, { pid: process.pid });
  const result = await tryInChild(dir);
  t.false(result.ok);
  t.is(result.name, 'LockedError');
  t.is(result.holder?.pid, process.pid);
});

(haveProc ? test : test.skip)('a lock of a live pid with another boot id is stale', async (t) => {
  const dir = tempDir(t);
  const bootId = readFileSync(bootIdFile, 'utf8').trim();
  const startTime = startTimeOf(process.pid);
  writeLock(dir, { pid: process.pid, bootId, startTime });
  const held = await tryInChild(dir);
  t.false(held.ok, 'the same boot id and start time: held');
  t.is(held.holder?.pid, process.pid);

  writeLock(dir, { pid: process.pid, bootId: '00000000-0000-4000-8000-000000000000', startTime });
  const result = await tryInChild(dir);
  t.true(result.ok, result.message);
  t.is(result.lock?.pid, result.pid);
});

(haveProc ? test : test.skip)('a lock of a live pid with another start time is stale', async (t) => {
  const dir = tempDir(t);
  const bootId = readFileSync(bootIdFile, 'utf8').trim();
  const startTime = startTimeOf(process.pid);
  writeLock(dir, { pid: process.pid, bootId, startTime: startTime + 1 });
  const result = await tryInChild(dir);
  t.true(result.ok, result.message);

  writeLock(dir, { pid: process.pid, startTime: startTime + 1 }); // no boot id recorded
  const again = await tryInChild(dir);
  t.true(again.ok, again.message);

  writeLock(dir, { pid: process.pid, startTime }); // no boot id recorded, the right start time
  const held = await tryInChild(dir);
  t.false(held.ok);
  t.is(held.holder?.pid, process.pid);
});

test('an empty LOCK is held while new and stale when old', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'LOCK');
  for (const text of ['', '{"pid":']) {
    writeFileSync(path, text);
    const held = await tryInChild(dir);
    t.false(held.ok, `a new LOCK of ${JSON.stringify(text)}: held`);
    t.is(held.name, 'LockedError');
    t.true(existsSync(path));

    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
    const result = await tryInChild(dir);
    t.true(result.ok, result.message);
    t.is(result.lock?.pid, result.pid);
    t.deepEqual(readdirSync(dir), []);
  }
});

/** A racer: for each directory it reads, tries the lock, reports, and when it won holds it a while. */
const racerScript = `
const { acquireLock, releaseLock } = await import(${JSON.stringify(lockModule)});
const { readFileSync } = await import('node:fs');
const now = () => performance.timeOrigin + performance.now();
const named = (dir) => {
  try {
    return JSON.parse(readFileSync(dir + '/LOCK', 'utf8')).pid;
  } catch {
    return null; // taken away
  }
};
let partial = '';
process.stdin.on('data', (chunk) => {
  partial += chunk.toString();
  let end;
  while ((end = partial.indexOf('\\n')) >= 0) {
    const dir = partial.slice(0, end);
    partial = partial.slice(end + 1);
    try {
      acquireLock(dir, 'a racer');
    } catch (error) {
      console.log(JSON.stringify({ won: false, pid: process.pid, name: error.name, holder: error.holder?.pid }));
      continue;
    }
    const from = now();
    const first = named(dir);
    setTimeout(() => {
      const last = named(dir);
      const to = now();
      releaseLock(dir);
      console.log(JSON.stringify({ won: true, pid: process.pid, from, to, first, last }));
    }, ${holdMs});
  }
});
console.log('ready');
`;

/** A racer's report: it lost (the LockedError's holder), or it won and held the lock from `from` to `to` (ms). */
interface RaceResult {
  won: boolean;
  pid: number;
  name?: string;
  holder?: number;
  from: number;
  to: number;
  first: number | null; // the pid LOCK named just after the lock was taken
  last: number | null;  // and just before it was released
}

test.serial(`${racers} processes racing for a stale lock never hold it together (${raceRounds} rounds)`, async (t) => {
  const base = tempDir(t);
  const children = Array.from({ length: racers }, () => startChild(racerScript));
  const next = children.map(lines);
  const dead = deadPid();
  try {
    for (const line of await Promise.all(next.map((n) => n()))) t.is(line, 'ready');
    let alone = 0;
    for (let round = 0; round < raceRounds; round++) {
      const dir = join(base, `round-${round}`);
      mkdirSync(dir);
      // Stale in turn by a dead pid, by another boot, and by an old unreadable file.
      if (round % 3 === 0 || !haveProc) writeLock(dir, { pid: dead });
      else if (round % 3 === 1) writeLock(dir, { pid: process.pid, bootId: 'another boot', startTime: 1 });
      else {
        writeFileSync(join(dir, 'LOCK'), '');
        const old = new Date(Date.now() - 60_000);
        utimesSync(join(dir, 'LOCK'), old, old);
      }
      for (const child of children) child.stdin.write(`${dir}\n`);
      const results = (await Promise.all(next.map((n) => n()))).map((line) => {
        if (!line.startsWith('{')) throw new Error(`round ${round}: ${line}`);
        return JSON.parse(line) as RaceResult;
      });
      const winners = results.filter((r) => r.won).sort((a, b) => a.from - b.from);
      t.true(winners.length >= 1, `round ${round}: someone takes a stale lock`);
      for (const [i, w] of winners.entries()) {
        t.is(w.first, w.pid, `round ${round}: the winner's LOCK names it when it took the lock`);
        t.is(w.last, w.pid, `round ${round}: the winner's LOCK names it when it releases the lock`);
        const previous = winners[i - 1];
        if (previous !== undefined) {
          t.true(previous.to <= w.from, `round ${round}: pid ${previous.pid} held the lock until ${previous.to}, ` +
            `pid ${w.pid} took it at ${w.from}`);
        }
      }
      for (const loser of results.filter((r) => !r.won)) {
        t.is(loser.name, 'LockedError');
        t.true(winners.some((w) => w.pid === loser.holder), `round ${round}: a loser names a winner`);
      }
      if (winners.length === 1) alone++;
      t.deepEqual(readdirSync(dir), [], `round ${round}: nothing left behind`);
    }
    t.log(`${alone} of ${raceRounds} rounds had one winner (in the others a racer came after the release)`);
  } finally {
    for (const child of children) child.stdin.end();
    await Promise.all(children.map(exited));
  }
});

