/**
 * The bulk load of a snapshot's tasks (workers/writer/restore-tasks.ts, restore-jobs.ts): what it refuses, and the
 * paths the standard round trips (test/snapshot.test.ts) do not take: aggregates summed task by task (values too
 * large to sum per config exactly), a snapshot without tasks, tasks and cron jobs of one job in one chunk.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as flatbuffers from 'flatbuffers';
import { ArenaView } from '../core/arena.js';
import { decodeQueryResponse, decodeTransactionResult, encode } from '../core/codec.js';
import {
  CronJobsQueryT, JobSummaryQueryT, QueryRequestT, QuotaQueryT, ResourceType, RoleSummaryQueryT, ScheduleStatus,
  SnapshotChunkT, SnapshotEndT, TaskQueryT, type TransactionT,
} from '../core/fbs/strata.js';
import { FormatError } from '../core/files.js';
import * as layout from '../core/layout.js';
import * as limits from '../core/limits.js';
import { frameBytes, frameTypeChunk, frameTypeEnd, writeFrameHeader } from '../core/snapshot-format.js';
import { StoreReader } from '../core/store.js';
import { ReaderSlot } from '../workers/reader/pin.js';
import { QueryRunner } from '../workers/reader/queries.js';
import { forEachSnapshotChunk, readSnapshotInfo } from '../workers/snapshot/read.js';
import { writeSnapshot } from '../workers/snapshot/write.js';
import { loadSnapshot } from '../workers/writer/restore.js';
import { WriterCore } from '../workers/writer/writer.js';
import {
  cronJob, hashOf, jobKey, ops, request, resource, scheduledTask, taskConfig, taskEvent, transaction,
} from './model/build.js';
import { normalizeQueryResponse } from './model/normalize.js';

interface Store { writer: WriterCore; arena: SharedArrayBuffer; control: SharedArrayBuffer }

function newStore(): Store {
  const arena = new SharedArrayBuffer(16 * 1024 * 1024, { maxByteLength: 256 * 1024 * 1024 });
  const control = new SharedArrayBuffer(layout.controlBytes);
  const writer = new WriterCore({ arena, control, arenaBytesMax: 256 * 1024 * 1024, pinMsMax: limits.pinMsMaxDefault,
    now: () => 1_000_000 });
  return { writer, arena, control };
}

function commitAll(t: ExecutionContext, store: Store, transactions: TransactionT[]): void {
  for (const txn of transactions) {
    const result = decodeTransactionResult(store.writer.commit(encode(txn)));
    store.writer.publish();
    t.is(result.error, null);
  }
}

/** The normalized answers of `queries`, read under a pin of the published revision. */
function answersOf(store: Store, queries: QueryRequestT[]): unknown[] {
  const view = new ArenaView(store.arena);
  const reader = new StoreReader(view, new Uint32Array(layout.rootWords));
  const slot = new ReaderSlot(store.control, 0x7ffa_0000);
  try {
    const root = slot.pin(1_000_000);
    reader.roots.set(view.u32.subarray(root >>> 2, (root >>> 2) + layout.rootWords));
    reader.revision = view.f64[(root >>> 3) + layout.rootRevisionF64]!;
    const runner = new QueryRunner(view, reader, () => slot.expired());
    return queries.map((query) => normalizeQueryResponse(decodeQueryResponse(runner.run(encode(query)))));
  } finally {
    slot.release();
    slot.close();
  }
}

function snapshotOf(t: ExecutionContext, store: Store, chunkBytesTarget: number): string {
  const directory = mkdtempSync(join(tmpdir(), 'strata-restore-test-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  return writeSnapshot({ arena: store.arena, control: store.control, slotIndex: -1, root: 0, directory,
    revision: store.writer.revision, term: 0, idempotency: store.writer.idempotencyEntries(), chunkBytesTarget }).path;
}

const everything = [
  request(Object.assign(new TaskQueryT(), { configDetail: 1 })), request(new RoleSummaryQueryT()),
  request(new JobSummaryQueryT(null)), request(new CronJobsQueryT(null, null)),
];

function sameAfterLoad(t: ExecutionContext, store: Store, path: string, queries: QueryRequestT[]): void {
  const loaded = newStore();
  loadSnapshot(loaded.writer, path);
  t.deepEqual(answersOf(loaded, queries), answersOf(store, queries));
  t.is(loaded.writer.stats().taskCount, store.writer.stats().taskCount);
  t.is(loaded.writer.stats().strings, store.writer.stats().strings);
}

// --------------------------------------------------------------------------------------------------------------

test('huge resource values: aggregates are summed task by task in file order, as the Applier sums them', (t) => {
  const store = newStore();
  // 2^51 MiB of RAM a task: 8 running tasks make 2^54, past what a sum per config may reach (2^52), but every
  // partial sum is still exact, so the original store's sums are the reference.
  const huge = taskConfig(jobKey('huge', 'prod', 'big'), { ramMb: 2 ** 51, diskMb: 2 ** 50, production: true });
  const small = taskConfig(jobKey('small', 'devel', 'web'), { cpus: 0.25 });
  const tasks = [];
  for (let i = 0; i < 8; i++) {
    tasks.push(scheduledTask(`huge-${i}`, hashOf(huge), { instanceId: i, status: ScheduleStatus.RUNNING,
      events: [taskEvent(10, ScheduleStatus.PENDING), taskEvent(20, ScheduleStatus.RUNNING)] }));
    tasks.push(scheduledTask(`small-${i}`, hashOf(small), { instanceId: i,
      status: i % 2 === 0 ? ScheduleStatus.RUNNING : ScheduleStatus.PENDING }));
  }
  commitAll(t, store, [transaction([ops.upsert(...tasks)], { configs: [huge, small] })]);
  const queries = [...everything, request(new QuotaQueryT('huge')), request(new QuotaQueryT('small'))];
  sameAfterLoad(t, store, snapshotOf(t, store, 1024), queries);
});

test('a snapshot without tasks, and one whose tasks share a chunk with their job\'s cron job', (t) => {
  const store = newStore();
  const config = taskConfig(jobKey('cron', 'prod', 'nightly'));
  commitAll(t, store, [transaction([ops.saveCron(cronJob(jobKey('cron', 'prod', 'nightly'), hashOf(config))),
    ops.saveQuota('cron', [resource(ResourceType.NUM_CPUS, 4)])], { configs: [config] })]);
  sameAfterLoad(t, store, snapshotOf(t, store, 1024), [...everything, request(new QuotaQueryT('cron'))]);
  commitAll(t, store, [transaction([ops.upsert(scheduledTask('cron-0', hashOf(config), {
    status: ScheduleStatus.RUNNING, slaveHost: 'host-1' }))])]);
  // One big chunk: configs, the task and the cron job together.
  sameAfterLoad(t, store, snapshotOf(t, store, 1024 * 1024), [...everything, request(new QuotaQueryT('cron'))]);
});

// --------------------------------------------------------------------------------------------------------------
// Refused: a snapshot whose tasks are not what the writer writes (rewritten here, checksums and counts right)

/** Rewrites a snapshot with edited chunks: frames, CRC chain and end counts made again, the header kept. */
function rewrite(path: string, out: string, edit: (chunks: SnapshotChunkT[]) => void): number[] {
  const chunks: SnapshotChunkT[] = [];
  const info = forEachSnapshotChunk(path, (chunk) => chunks.push(chunk.unpack()));
  edit(chunks);
  const header = readFileSync(path).subarray(0, 128);
  const parts: Uint8Array[] = [header];
  const offsets: number[] = [];
  let offset = header.length;
  let crc = header.readUInt32LE(124);
  const builder = new flatbuffers.Builder(1024);
  const frame = (type: number, payload: Uint8Array): void => {
    const bytes = Buffer.alloc(frameBytes(payload.length));
    crc = writeFrameHeader(bytes, 0, type, parts.length - 1, payload, 0, payload.length, crc);
    bytes.set(payload, 16);
    parts.push(bytes);
    offsets.push(offset);
    offset += bytes.length;
  };
  const sum = (count: (chunk: SnapshotChunkT) => number) => BigInt(chunks.reduce((total, chunk) => total + count(chunk), 0));
  for (const chunk of chunks) {
    builder.clear();
    builder.finish(chunk.pack(builder));
    frame(frameTypeChunk, builder.asUint8Array().slice());
  }
  const end = new SnapshotEndT(BigInt(info.revision), BigInt(info.term), BigInt(info.createdMs),
    sum((chunk) => chunk.configs.length), sum((chunk) => chunk.tasks.length), sum((chunk) => chunk.cronJobs.length),
    sum((chunk) => chunk.jobUpdates.filter((entry) => entry.update?.instructions !== null).length),
    sum((chunk) => chunk.quotas.length), sum((chunk) => chunk.hosts.length), sum((chunk) => chunk.maintenance.length),
    sum((chunk) => chunk.idempotency.length));
  builder.clear();
  builder.finish(end.pack(builder));
  frame(frameTypeEnd, builder.asUint8Array().slice());
  writeFileSync(out, Buffer.concat(parts));
  return offsets;
}

test('a string past its chunk, tasks out of task id order, twice, with a bad status or after a later kind: FormatError', (t) => {
  const store = newStore();
  const config = taskConfig(jobKey('order', 'prod', 'web'));
  const tasks = Array.from({ length: 40 }, (_, i) => scheduledTask(`order-${String(i).padStart(2, '0')}`,
    hashOf(config), { instanceId: i, slaveHost: `host-${i % 3}` }));
  commitAll(t, store, [transaction([ops.upsert(...tasks),
    ops.saveCron(cronJob(jobKey('order', 'prod', 'web'), hashOf(config)))], { configs: [config] })]);
  const path = snapshotOf(t, store, 1024);
  t.true(readSnapshotInfo(path).chunks >= 3, 'tasks over several chunks');
  sameAfterLoad(t, store, path, everything);
  const withTasks = (chunks: SnapshotChunkT[]): number => chunks.findIndex((chunk) => chunk.tasks.length >= 2);
  const cases: [string, (chunks: SnapshotChunkT[]) => number, RegExp][] = [
    ['two tasks swapped', (chunks) => {
      const index = withTasks(chunks);
      const tasksOf = chunks[index]!.tasks;
      [tasksOf[0], tasksOf[1]] = [tasksOf[1]!, tasksOf[0]!];
      return index;
    }, /task order-\d\d is out of task id order/],
    ['a task twice', (chunks) => {
      const index = withTasks(chunks);
      chunks[index]!.tasks[1] = chunks[index]!.tasks[0]!;
      return index;
    }, /task order-\d\d is twice in the snapshot/],
    ['a status out of range', (chunks) => {
      const index = withTasks(chunks);
      chunks[index]!.tasks[1]!.status = 40 as ScheduleStatus;
      return index;
    }, /a task has status 40/],
    ['a task after a cron job', (chunks) => {
      const last = chunks.findLastIndex((chunk) => chunk.tasks.length > 0);
      const moved = chunks[last]!.tasks.pop()!;
      chunks.push(new SnapshotChunkT([], [], [moved]));
      return chunks.length - 1;
    }, /a task after records of a later kind/],
  ];
  // A string's length word past the end of its chunk (bytes patched, the CRC chain made again from that frame on).
  const patched = Buffer.from(readFileSync(path));
  const id = patched.indexOf(Buffer.from('order-00'));
  const frames: number[] = [];
  for (let at = 128; at < patched.length; at += frameBytes(patched.readUInt32LE(at))) frames.push(at);
  const frame = frames.filter((at) => at < id).pop()!;
  patched.writeInt32LE(0x7fff_0000, id - 4);
  let crc = patched.readUInt32LE(124);
  for (const at of frames) {
    const length = patched.readUInt32LE(at);
    crc = writeFrameHeader(patched, at, patched[at + 4]!, patched.readUInt32LE(at + 12), patched, at + 16,
      at + 16 + length, crc);
  }
  const scratch = mkdtempSync(join(tmpdir(), 'strata-restore-test-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const pastEnd = join(scratch, 'past-end.snap');
  writeFileSync(pastEnd, patched);
  const error = t.throws(() => loadSnapshot(newStore().writer, pastEnd), { instanceOf: FormatError });
  t.regex(error?.message ?? '', /runs past the end of the chunk/);
  t.is((error as FormatError | undefined)?.offset, frame, 'the offset of the chunk');
  for (const [name, edit, message] of cases) {
    const out = join(scratch, `${name.replaceAll(' ', '-')}.snap`);
    let damaged = -1;
    const offsets = rewrite(path, out, (chunks) => {
      damaged = edit(chunks);
    });
    const error = t.throws(() => loadSnapshot(newStore().writer, out), { instanceOf: FormatError }, name);
    t.regex(error?.message ?? '', message, name);
    t.is((error as FormatError | undefined)?.offset, offsets[damaged], `${name}: the damaged chunk's offset`);
  }
});
