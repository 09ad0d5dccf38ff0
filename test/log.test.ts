/**
 * The write-ahead log: durability across close and crash, torn tails, corruption, fail-stop on I/O errors, and
 * crash consistency under load (SIGKILL at random moments and at named failpoints inside the group commit).
 * Children run test/support/crash-child.ts; every data directory is a fresh temporary one.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { commitOk, tempDir as tempDirOf } from './support/durable.js';
import { decodeTransactionResult } from '../core/codec.js';
import { headerBytes } from '../core/files.js';
import { listSegments, scanLog } from '../core/wal.js';
import { Engine } from '../daemon/engine.js';
import { exitIo } from '../daemon/exit-codes.js';
import { crashProblems, crashState, crashTransaction } from './support/crash-model.js';
import { f, jobConfig, make, task, transition, txn, upsert } from './support/build.js';
import { Prng } from '../core/prng.js';

const child = fileURLToPath(new URL('./support/crash-child.js', import.meta.url));
const segmentBytes = 64 * 1024;

const tempDir = (t: { teardown: (fn: () => void) => void }): string => tempDirOf(t, 'log');

interface ChildRun { code: number | null; signal: string | null; acked: Set<string>; lines: string[]; stderr: string }

/** Runs the crash child; kills it with SIGKILL after killMs (when given). */
function runChild(dataDir: string, clients: number, perClient: number, firstSeq: number,
  options: { killMs?: number; failpoints?: string; segmentBytes?: number } = {}): Promise<ChildRun> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [child, dataDir, String(clients), String(perClient), String(firstSeq),
      String(options.segmentBytes ?? segmentBytes)], { env: { ...process.env, STRATA_FAILPOINTS: options.failpoints ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Set<string>();
    const lines: string[] = [];
    let buffered = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (line.startsWith('ack ')) {
          const [, c, s] = line.split(' ');
          acked.add(`${c}/${s}`);
        } else if (line.startsWith('ready') && options.killMs !== undefined) {
          setTimeout(() => proc.kill('SIGKILL'), options.killMs);
        }
      }
    });
    proc.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    proc.on('close', (code, signal) => resolve({ code, signal, acked, lines, stderr }));
  });
}

function sentKeys(clients: number, firstSeq: number, perClient: number): Set<string> {
  const keys = new Set<string>();
  for (let c = 0; c < clients; c++) for (let s = firstSeq; s < firstSeq + perClient; s++) keys.add(`${c}/${s}`);
  return keys;
}

test('committed transactions survive close and reopen, with configs, revisions and idempotency', async (t) => {
  const dir = tempDir(t);
  const config = jobConfig('www', 'prod', 'hello');
  let engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  const key = make(f.IdempotencyKeyT, { clientId: 'client-1', sequence: 7n });
  for (let i = 0; i < 300; i++) await commitOk(engine, txn([upsert([task(`t-${i}`, config, i)])]));
  const keyed = await commitOk(engine, txn([transition('t-5', f.ScheduleStatus.ASSIGNED)], { idempotency: key }));
  const before = await crashStateOf(engine);
  const stats = engine.stats();
  await engine.close();
  t.true(listSegments(join(dir, 'log')).length > 1, 'small segments: the log was cut into several');

  engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  t.is(engine.recovery?.replayed, 301);
  const reopened = engine.stats();
  t.deepEqual([reopened.revision, reopened.taskCount, reopened.configCount],
    [stats.revision, stats.taskCount, stats.configCount]);
  t.deepEqual(await crashStateOf(engine), before);
  // The idempotency window came back with the log: the retry is answered, not applied again.
  const retry = decodeTransactionResult(await engine.commit(txn([transition('t-5', f.ScheduleStatus.ASSIGNED)],
    { idempotency: key })));
  t.true(retry.duplicate);
  t.is(retry.revision, keyed.revision);
  t.is(engine.stats().revision, stats.revision);
  await engine.close();
});

async function crashStateOf(engine: Engine): Promise<[string, number][]> {
  const { decodeQueryResponse } = await import('../core/codec.js');
  const { taskQuery } = await import('./support/build.js');
  const response = decodeQueryResponse(await engine.query(taskQuery({ configDetail: f.ConfigDetail.HASH_ONLY })));
  return (response.result as f.TasksResultT).tasks.map((x) => [String(x.assignedTask!.taskId), x.status]);
}

test('a config is logged once, when first stored, however many tasks carry it inline', async (t) => {
  const dir = tempDir(t);
  const config = jobConfig('www', 'prod', 'big', { data: 'y'.repeat(20_000) });
  const engine = await Engine.open({ dataDir: dir, readerThreads: 1 });
  await commitOk(engine, txn([upsert(Array.from({ length: 20 }, (_, i) => task(`big-${i}`, config, i)))]));
  for (let i = 20; i < 40; i++) await commitOk(engine, txn([upsert([task(`big-${i}`, config, i)])]));
  const stats = await engine.writerStats();
  await engine.close();
  // 40 inline copies of a 20 KB config would be 800 KB; logged once it is ~20 KB plus the tasks.
  t.true(stats.logBytesWritten! < 60_000, `log bytes ${stats.logBytesWritten}`);
  const reopened = await Engine.open({ dataDir: dir, readerThreads: 1 });
  t.is(reopened.stats().taskCount, 40);
  t.is(reopened.stats().configCount, 1);
  await reopened.close();
});

test('a second engine on the same data directory is refused while the first holds it', async (t) => {
  const dir = tempDir(t);
  const engine = await Engine.open({ dataDir: dir, readerThreads: 1 });
  await t.throwsAsync(Engine.open({ dataDir: dir, readerThreads: 1 }), { message: /in use by stratad/ });
  await engine.close();
  const again = await Engine.open({ dataDir: dir, readerThreads: 1 });
  await again.close();
  t.pass();
});

test('a torn write at the tail is cut off at the next open, the rest is kept, the cut bytes are saved', async (t) => {
  const dir = tempDir(t);
  const first = await runChild(dir, 4, 10, 0);
  t.is(first.code, 0, first.stderr);
  const torn = await runChild(dir, 4, 10, 10, { failpoints: 'log.partial-write=partial@2' });
  t.is(torn.signal, 'SIGKILL');
  const engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  t.truthy(engine.recovery?.torn, 'recovery reports the torn tail');
  const state = await crashState(engine);
  const sent = new Set([...sentKeys(4, 0, 10), ...sentKeys(4, 10, 10)]);
  t.deepEqual(crashProblems(state, sent, new Set([...first.acked, ...torn.acked])), []);
  await engine.close();
  const saved = readdirSync(join(dir, 'log')).filter((name) => name.includes('.torn-'));
  t.is(saved.length, 1, 'the cut bytes are kept beside the segment');
  const kept = readFileSync(join(dir, 'log', saved[0]!));
  t.true(kept.length > 0 && kept.length < segmentBytes - 4096, `only up to the last non-zero byte (${kept.length} bytes), not the preallocated rest`);
  t.not(kept[kept.length - 1], 0);
  // The repaired log opens cleanly again and takes new commits.
  const again = await runChild(dir, 2, 4, 100);
  t.is(again.code, 0, again.stderr);
});

test('corruption before the tail stops the open with the file, the offset and the tools to use', async (t) => {
  const dir = tempDir(t);
  const run = await runChild(dir, 8, 60, 0);
  t.is(run.code, 0, run.stderr);
  const segments = listSegments(join(dir, 'log'));
  t.true(segments.length >= 2, `segments: ${segments.length}`);
  const victim = join(dir, 'log', segments[0]!.name);
  const bytes = readFileSync(victim);
  bytes[headerBytes + 40] = bytes[headerBytes + 40]! ^ 0x10;
  writeFileSync(victim, bytes);
  const error = await t.throwsAsync(Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 }));
  t.regex(error!.message, new RegExp(segments[0]!.name));
  t.regex(error!.message, /offset \d+/);
  t.regex(error!.message, /corruption/);
  t.regex(error!.message, /after revision \d+/);
  t.regex(error!.message, /strata log verify/);
  t.regex(error!.message, /strata log truncate --after \d+/);
  t.is((error as { code?: string }).code, 'FORMAT');
  // The data directory was not changed by the refused open, and its lock was released.
  t.deepEqual(readFileSync(victim), bytes);
  t.false(existsSync(join(dir, 'LOCK')));
});

test('a bit flip in the last record of a clean log is corruption, not a torn tail', async (t) => {
  const dir = tempDir(t);
  const run = await runChild(dir, 1, 6, 0);
  t.is(run.code, 0, run.stderr);
  const segments = listSegments(join(dir, 'log'));
  const last = join(dir, 'log', segments.at(-1)!.name);
  const bytes = readFileSync(last);
  let end = bytes.length;
  while (end > headerBytes && bytes[end - 1] === 0) end--;
  bytes[end - 20] = bytes[end - 20]! ^ 0x01; // inside the last record's payload, whose sectors are all written
  writeFileSync(last, bytes);
  await t.throwsAsync(Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 }), { message: /CRC mismatch/ });
});

for (const [point, code] of [['log.after-write=eio@3', 'EIO'], ['log.after-sync=enospc@2', 'ENOSPC'],
  ['log.before-write=enospc@4', 'ENOSPC'], ['log.segment-create=eio@2', 'EIO']] as const) {
  test(`an injected ${code} (${point}) is fail-stop: no acknowledgement of the group, exit ${exitIo}, restart recovers`,
    async (t) => {
      const dir = tempDir(t);
      const run = await runChild(dir, 4, 200, 0, { failpoints: point });
      t.is(run.code, exitIo, `${run.lines.slice(-3).join(' | ')} ${run.stderr}`);
      t.true(run.lines.some((line) => line === `failed ${code}`));
      const engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
      const state = await crashState(engine);
      t.deepEqual(crashProblems(state, sentKeys(4, 0, 200), run.acked), []);
      // Nothing acknowledged was lost, and no unacknowledged group is visible beyond what the log made durable.
      t.true(run.acked.size < 800);
      await engine.close();
    });
}

// Rounds of the crash test: STRATA_CRASH_ROUNDS (npm run test:crash-stress runs 500), default 50.
const crashRounds = Number.parseInt(process.env['STRATA_CRASH_ROUNDS'] ?? '50', 10);
if (!Number.isSafeInteger(crashRounds) || crashRounds < 1) throw new Error('STRATA_CRASH_ROUNDS: a count >= 1');
const crashTitle = 'crash consistency: SIGKILL at random moments and at failpoints in the group commit, ' +
  `${crashRounds} rounds`;

test(crashTitle, async (t) => {
  const dir = tempDir(t);
  const prng = new Prng(0x5eed);
  const random = () => prng.float();
  const points = ['log.before-write', 'log.after-write', 'log.after-sync', 'log.before-publish', 'log.partial-write',
    'log.segment-create'];
  const clients = 8;
  const perClient = 12;
  const sent = new Set<string>();
  const acked = new Set<string>();
  const kills: Record<string, number> = {};
  let ackedChecked = 0;
  // Small segments (8 KiB: a few groups each) so that rounds cut segments and log.segment-create fires.
  const crashSegmentBytes = 8 * 1024;
  for (let round = 0; round < crashRounds; round++) {
    if (round % 10 === 0 && round > 0) {
      // Keep replays short: every tenth round starts over on a new directory after checking the old one.
      rmSync(join(dir, 'data'), { recursive: true, force: true });
      sent.clear();
      acked.clear();
    }
    const firstSeq = (round % 10) * perClient * 2;
    const usePoint = round % 2 === 1;
    const point = points[Math.floor(random() * points.length)]!;
    const run = await runChild(join(dir, 'data'), clients, perClient, firstSeq, usePoint ?
      { failpoints: `${point}=${point === 'log.partial-write' ? 'partial' : 'kill'}@${1 + Math.floor(random() * 6)}`,
        killMs: 2000, segmentBytes: crashSegmentBytes } : { killMs: Math.floor(random() * 150),
        segmentBytes: crashSegmentBytes });
    const how = usePoint ? point : 'sigkill';
    kills[how] = (kills[how] ?? 0) + (run.signal === 'SIGKILL' ? 1 : 0);
    for (const key of sentKeys(clients, firstSeq, perClient)) sent.add(key);
    for (const key of run.acked) acked.add(key);
    ackedChecked += run.acked.size;
    const engine = await Engine.open({ dataDir: join(dir, 'data'), segmentBytes: crashSegmentBytes, readerThreads: 1 });
    const problems = crashProblems(await crashState(engine), sent, acked);
    // Exactly once: resending every transaction of the round with its key applies the missing ones and answers
    // the applied ones as duplicates; the revision then counts each transaction once.
    for (const key of sentKeys(clients, firstSeq, perClient)) {
      const [c, s] = key.split('/').map(Number) as [number, number];
      const result = decodeTransactionResult(await engine.commit(crashTransaction(c, s)));
      if (result.error !== null) problems.push(`resend of ${key}: ${String(result.error.message)}`);
      if (run.acked.has(key) && !result.duplicate) problems.push(`acknowledged ${key} was applied again`);
    }
    if (engine.stats().revision !== sent.size) {
      problems.push(`revision ${engine.stats().revision} after resending, expected ${sent.size} (one per transaction)`);
    }
    await engine.close();
    if (problems.length > 0) t.fail(`round ${round} (${how}): ${problems.slice(0, 5).join('; ')}`);
  }
  t.log(`kills by point: ${JSON.stringify(kills)}; acknowledged transactions checked: ${ackedChecked}`);
  t.pass();
});

test('a keyed transaction that failed is remembered across a restart from the log alone', async (t) => {
  const dir = tempDir(t);
  const key = make(f.IdempotencyKeyT, { clientId: 'client-9', sequence: 1n });
  let engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  const failed = decodeTransactionResult(await engine.commit(txn([transition('nope', f.ScheduleStatus.ASSIGNED)],
    { idempotency: key })));
  t.truthy(failed.error);
  await commitOk(engine, txn([upsert([task('nope', jobConfig('www', 'prod', 'x'), 0)])]));
  await engine.close();
  engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  const retry = decodeTransactionResult(await engine.commit(txn([transition('nope', f.ScheduleStatus.ASSIGNED)],
    { idempotency: key })));
  t.true(retry.duplicate, 'the retry gets the first outcome');
  t.is(retry.error?.code, failed.error!.code);
  t.is((await crashStateOf(engine))[0]![1], f.ScheduleStatus.PENDING, 'and is not applied');
  await engine.close();
});

test('a flipped bit in a record with a zero sector but data after it is corruption, not a torn tail', async (t) => {
  const dir = tempDir(t);
  const options = { readerThreads: 1, segmentBytes: 1 << 20, snapshot: { everyMs: 0, logBytes: 0 } };
  const engine = await Engine.open({ dataDir: dir, ...options });
  const plain = jobConfig('www', 'prod', 'plain');
  await commitOk(engine, txn([upsert([task('a', plain, 0)])]));
  await commitOk(engine, txn([upsert([task('b', jobConfig('www', 'prod', 'zeros', { data: '\u0000'.repeat(4096) }), 0)])]));
  for (let i = 0; i < 20; i++) await commitOk(engine, txn([upsert([task(`c-${i}`, plain, i)])]));
  await engine.close();
  const records: { offset: number; file: string }[] = [];
  scanLog(join(dir, 'log'), (record) => records.push(record));
  const bytes = readFileSync(records[1]!.file);
  bytes[records[1]!.offset + 40] = bytes[records[1]!.offset + 40]! ^ 1;
  writeFileSync(records[1]!.file, bytes);
  await t.throwsAsync(Engine.open({ dataDir: dir, ...options }), { message: /corruption, not a torn write/ });
});

test('a commit that comes while the engine closes is refused, never acknowledged and lost', async (t) => {
  const dir = tempDir(t);
  let engine = await Engine.open({ dataDir: dir, readerThreads: 1, segmentBytes });
  await commitOk(engine, txn([upsert([task('t-0', jobConfig('www', 'prod', 'x'), 0)])]));
  const closing = engine.close();
  const late = engine.commit(txn([upsert([task('late', jobConfig('www', 'prod', 'x'), 1)])]));
  await closing;
  const answer = await late.then((bytes) => decodeTransactionResult(bytes), (error: Error) => error);
  engine = await Engine.open({ dataDir: dir, readerThreads: 1, segmentBytes });
  const present = (await crashStateOf(engine)).some(([id]) => id === 'late');
  t.is(present, answer instanceof Error ? false : answer.error === null, 'acknowledged if and only if durable');
  await engine.close();
});

test('a keyed transaction with malformed bytes is answered INVALID_ARGUMENT and the writer lives', async (t) => {
  const dir = tempDir(t);
  let failure: Error | null = null;
  const engine = await Engine.open({ dataDir: dir, readerThreads: 1, segmentBytes, onFailure: (error) => { failure = error; } });
  const bytes = txn([transition('QQQQQQQQQQQQ', f.ScheduleStatus.KILLED)],
    { idempotency: make(f.IdempotencyKeyT, { clientId: 'c', sequence: 1n }) });
  const at = Buffer.from(bytes).indexOf('QQQQQQQQQQQQ');
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at - 4, 0x7fffffff, true);
  const result = decodeTransactionResult(await engine.commit(bytes));
  t.is(result.error?.code, f.ErrorCode.INVALID_ARGUMENT);
  await commitOk(engine, txn([upsert([task('after', jobConfig('www', 'prod', 'x'), 0)])]));
  t.is(failure, null);
  await engine.close();
});

test('a log copied elsewhere opens there (records are self-contained), and a stale segment is refused', async (t) => {
  const dir = tempDir(t);
  const run = await runChild(join(dir, 'a'), 4, 100, 0);
  t.is(run.code, 0, run.stderr);
  cpSync(join(dir, 'a'), join(dir, 'b'), { recursive: true });
  const engine = await Engine.open({ dataDir: join(dir, 'b'), segmentBytes, readerThreads: 1 });
  t.deepEqual(crashProblems(await crashState(engine), sentKeys(4, 0, 100), run.acked), []);
  await engine.close();
  // The first segment of another log, under the same name, is well formed on its own: the CRC chain into the
  // next segment (or the revisions) give it away.
  const other = await runChild(join(dir, 'c'), 3, 100, 0);
  t.is(other.code, 0);
  const segments = listSegments(join(dir, 'a', 'log'));
  t.true(segments.length >= 2);
  const name = segments[0]!.name;
  t.true(existsSync(join(dir, 'c', 'log', name)));
  cpSync(join(dir, 'c', 'log', name), join(dir, 'a', 'log', name));
  await t.throwsAsync(Engine.open({ dataDir: join(dir, 'a'), segmentBytes, readerThreads: 1 }),
    { message: /chain|revision|CRC/ });
});

