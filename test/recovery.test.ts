/**
 * Recovery = newest valid snapshot + the log after it, through the Engine: snapshots on request, by log size,
 * with retention (old snapshots and the log segments before them deleted), a damaged newest snapshot set aside
 * for an older one, a crash while a snapshot is written, commits acknowledged while a snapshot is written.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import test from 'ava';
import { commitOk, tempDir as tempDirOf } from './support/durable.js';
import { decodeQueryResponse, decodeTransactionResult } from '../core/codec.js';
import { listSegments } from '../core/wal.js';
import { Engine } from '../daemon/engine.js';
import { f, jobConfig, make, task, taskQuery, transition, txn, upsert } from './support/build.js';

const segmentBytes = 64 * 1024;
const config = jobConfig('www', 'prod', 'hello', { data: 'z'.repeat(300) });

const tempDir = (t: { teardown: (fn: () => void) => void }): string => tempDirOf(t, 'recovery');

/** Creates tasks first..last-1, then moves every third to ASSIGNED, each in its own transaction. */
async function load(engine: Engine, first: number, last: number): Promise<void> {
  const pending: Promise<unknown>[] = [];
  for (let i = first; i < last; i++) pending.push(commitOk(engine, txn([upsert([task(`t-${i}`, config, i)])])));
  await Promise.all(pending);
  pending.length = 0;
  for (let i = first; i < last; i += 3) {
    pending.push(commitOk(engine, txn([transition(`t-${i}`, f.ScheduleStatus.ASSIGNED, { message: `m${i}` })],
      { idempotency: make(f.IdempotencyKeyT, { clientId: 'loader', sequence: BigInt(i) }) })));
  }
  await Promise.all(pending);
}

/** Every task with its status, mod and create revision and events: what must survive recovery exactly. */
async function everything(engine: Engine): Promise<string> {
  const response = decodeQueryResponse(await engine.query(taskQuery({ configDetail: f.ConfigDetail.HASH_ONLY })));
  const tasks = (response.result as f.TasksResultT).tasks.map((x) => [String(x.assignedTask!.taskId), x.status,
    String(x.modRevision), String(x.createRevision), x.taskEvents.map((e) => String(e.message)).join('|')]);
  return JSON.stringify({ revision: String(response.revision), tasks });
}

test('snapshot + log tail: recovery loads the snapshot and replays only what came after it', async (t) => {
  const dir = tempDir(t);
  let engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1, snapshot: { everyMs: 0, logBytes: 0 } });
  await load(engine, 0, 400);
  const snap = await engine.snapshot();
  t.is(snap.revision, engine.stats().revision);
  await load(engine, 400, 500);
  const before = await everything(engine);
  await engine.close();
  engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  t.is(engine.recovery?.snapshot?.revision, snap.revision);
  t.is(engine.recovery?.replayed, engine.stats().revision - snap.revision);
  t.is(await everything(engine), before);
  // The idempotency window spans the snapshot: a key remembered before it is still answered as a duplicate.
  const retry = decodeTransactionResult(await engine.commit(txn([transition('t-0', f.ScheduleStatus.ASSIGNED)],
    { idempotency: make(f.IdempotencyKeyT, { clientId: 'loader', sequence: 0n }) })));
  t.true(retry.duplicate);
  await engine.close();
});

test('snapshots by log size keep the newest two; the log segments before the older one are deleted', async (t) => {
  const dir = tempDir(t);
  let engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1,
    snapshot: { everyMs: 0, logBytes: 32 * 1024, retained: 2 } });
  for (let round = 0; round < 6; round++) {
    const before = (await engine.writerStats()).snapshotsTaken!;
    await load(engine, round * 200, round * 200 + 200);
    // Each round writes more than logBytes: its snapshot starts by size; wait for it (however busy the machine).
    for (let waited = 0; (await engine.writerStats()).snapshotsTaken! <= before && waited < 60_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await engine.snapshot();
  const stats = await engine.writerStats();
  t.true(stats.snapshotsTaken! >= 6, `snapshots: ${stats.snapshotsTaken}`);
  t.true(stats.segmentsRemoved! > 0, 'old log segments were deleted');
  const snapshots = readdirSync(join(dir, 'snapshots')).filter((name) => name.endsWith('.snap'));
  t.is(snapshots.length, 2);
  const before = await everything(engine);
  await engine.close();
  const first = listSegments(join(dir, 'log'))[0]!;
  t.true(first.firstRevision > 1, 'the log no longer starts at revision 1');
  engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  t.is(await everything(engine), before);
  await engine.close();
});

test('a damaged newest snapshot is set aside (.broken) and the older one plus the log recover everything', async (t) => {
  const dir = tempDir(t);
  let engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1,
    snapshot: { everyMs: 0, logBytes: 0, retained: 2 } });
  await load(engine, 0, 200);
  await engine.snapshot();
  await load(engine, 200, 400);
  const newest = await engine.snapshot();
  await load(engine, 400, 450);
  const before = await everything(engine);
  await engine.close();
  const bytes = readFileSync(newest.path);
  bytes[Math.floor(bytes.length / 2)] = bytes[Math.floor(bytes.length / 2)]! ^ 0x40;
  writeFileSync(newest.path, bytes);
  engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  t.true(engine.recovery!.snapshot!.revision < newest.revision);
  t.is(engine.recovery!.brokenSnapshots?.length, 1);
  t.is(await everything(engine), before);
  t.true(readdirSync(join(dir, 'snapshots')).some((name) => name.endsWith('.broken')));
  await engine.close();
});

test('a damaged only snapshot with no log to get past it is refused (FORMAT), every time, and stays in place', async (t) => {
  const dir = tempDir(t);
  let engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1, snapshot: { everyMs: 0, logBytes: 0 } });
  await load(engine, 0, 200);
  const only = await engine.snapshot();
  await engine.close();
  rmSync(join(dir, 'log'), { recursive: true }); // a directory restored offline that never ran: no log yet
  const bytes = readFileSync(only.path);
  bytes[Math.floor(bytes.length / 2)] = bytes[Math.floor(bytes.length / 2)]! ^ 0x10;
  writeFileSync(only.path, bytes);
  for (let attempt = 0; attempt < 2; attempt++) {
    const error = await t.throwsAsync(Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 }));
    t.is((error as { code?: string }).code, 'FORMAT');
    t.regex(error!.message, new RegExp(`snapshot at revision ${only.revision} is damaged .* recover only up to revision 0`));
    t.true(readdirSync(join(dir, 'snapshots')).includes(basename(only.path)), 'not renamed: the next start refuses too');
  }
});

test('commits are acknowledged while a snapshot is written, and the snapshot holds exactly its revision', async (t) => {
  const dir = tempDir(t);
  const engine = await Engine.open({ dataDir: dir, segmentBytes: 1024 * 1024, readerThreads: 1,
    snapshot: { everyMs: 0, logBytes: 0 } });
  await load(engine, 0, 3000);
  let during = 0;
  let snapshotDone = false;
  const writes = (async () => {
    for (let i = 0; !snapshotDone; i++) {
      await commitOk(engine, txn([transition(`t-${i * 3 + 1}`, f.ScheduleStatus.ASSIGNED)]));
      during++;
    }
  })();
  const snap = await engine.snapshot();
  snapshotDone = true;
  await writes;
  t.true(during > 0, 'commits were acknowledged during the snapshot');
  t.true(engine.stats().revision > snap.revision || during <= 1);
  await engine.close();
  // Recover from that snapshot alone (log kept): the state is the final one.
  const reopened = await Engine.open({ dataDir: dir, segmentBytes: 1024 * 1024, readerThreads: 1 });
  t.is(reopened.recovery?.snapshot?.revision, snap.revision);
  await reopened.close();
});

test('a recovery that replayed a long tail takes a snapshot, so the next one replays nothing', async (t) => {
  const dir = tempDir(t);
  const options = { dataDir: dir, segmentBytes, readerThreads: 1, snapshot: { everyMs: 0, logBytes: 0, afterReplay: 50 } };
  let engine = await Engine.open(options);
  await load(engine, 0, 100);
  const revision = engine.stats().revision;
  await engine.close();
  engine = await Engine.open(options);
  t.true(engine.recovery!.replayed >= 50);
  for (let waited = 0; (await engine.writerStats()).snapshotsTaken! < 1 && waited < 60_000; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await engine.close();
  engine = await Engine.open(options);
  t.is(engine.recovery!.snapshot?.revision, revision);
  t.is(engine.recovery!.replayed, 0);
  await engine.close();
});
