/**
 * Snapshots: write from a long-pinned revision while the writer goes on, load into an empty writer, and compare
 * everything; damaged files; long pins; the tools. Owner: tests only.
 * Invariants: writers run in the test thread with a clock the test sets (no test depends on timing); the state
 * comes from the model-based generator (every operation kind, errors, retries) plus explicit transactions for the
 * edges (shared configs, update events out of timestamp order, ports, ancestors, hosts, maintenance, scheduler,
 * remembered errors); the reference model follows the snapshot's revision, so a loaded writer is also checked
 * against the model for transactions committed after the load.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as flatbuffers from 'flatbuffers';
import { ArenaView } from '../core/arena.js';
import { decodeQueryResponse, decodeTransactionResult, encode } from '../core/codec.js';
import { crc32c } from '../core/crc32c.js';
import {
  CronJobsQueryT, HostAttributesQueryT, HostMaintenanceRequestT, JobKeysQueryT, JobSummaryQueryT, JobUpdateQueryT,
  MaintenanceMode, MaintenanceQueryT, PortT, QueryRequestT, QuotaQueryT, ResourceType, RoleSummaryQueryT,
  ScheduleStatus, SchedulerQueryT, SnapshotEnd, TaskQueryT, type TransactionResultT, type TransactionT,
} from '../core/fbs/strata.js';
import { FormatError, magicBackup, magicSnapshot, type Magic } from '../core/files.js';
import * as layout from '../core/layout.js';
import * as limits from '../core/limits.js';
import { frameBytes, frameTypeEnd, writeFrameHeader } from '../core/snapshot-format.js';
import { StoreReader } from '../core/store.js';
import { snapshotDump } from '../cli/snapshot-tools.js';
import { bulkLoadTransactionBytes, workloadOptions } from '../loadtest/workload.js';
import { pinClockMs, pinPublishedLong, ReaderSlot } from '../workers/reader/pin.js';
import { QueryRunner } from '../workers/reader/queries.js';
import { listSnapshots, readSnapshotInfo } from '../workers/snapshot/read.js';
import { spawnSnapshot } from '../workers/snapshot/spawn.js';
import { SnapshotError, writeSnapshot, type SnapshotWriteResult } from '../workers/snapshot/write.js';
import { loadSnapshot } from '../workers/writer/restore.js';
import { WriterCore } from '../workers/writer/writer.js';
import {
  cronJob, hashOf, hostAttributes, instanceConfig, instanceEvent, jobKey, jobUpdate, ops, request, resource,
  scheduledTask, taskConfig, taskEvent, transaction, updateEvent, updateKey,
} from './model/build.js';
import { Generator } from './model/generate.js';
import { keySpaces, type KeySpace, type KeySpaceName } from './model/generate-pools.js';
import { normalizeQueryResponse, normalizeTransactionResult } from './model/normalize.js';
import { ReferenceModel } from './model/reference.js';

// --------------------------------------------------------------------------------------------------------------
// Stores, commits and queries

interface Store {
  writer: WriterCore;
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
  clock: { ms: number };
  now: () => number;
}

/** A writer over fresh shared memory; `realClock` for pins taken by other threads (pinClockMs). */
function newStore(realClock = false): Store {
  const arena = new SharedArrayBuffer(16 * 1024 * 1024, { maxByteLength: 512 * 1024 * 1024 });
  const control = new SharedArrayBuffer(layout.controlBytes);
  const clock = { ms: 1_000_000 };
  const now = realClock ? pinClockMs : () => clock.ms;
  const writer = new WriterCore({ arena, control, arenaBytesMax: 512 * 1024 * 1024, pinMsMax: limits.pinMsMaxDefault,
    now });
  return { writer, arena, control, clock, now };
}

function commit(store: Store, txn: TransactionT): TransactionResultT {
  const result = decodeTransactionResult(store.writer.commit(encode(txn)));
  store.writer.publish();
  return result;
}

/** Commits to the store and the model; both must answer the same. */
function commitBoth(t: ExecutionContext, store: Store, model: ReferenceModel, txn: TransactionT, what: string): void {
  const actual = normalizeTransactionResult(commit(store, txn));
  const expected = normalizeTransactionResult(model.commit(txn));
  t.deepEqual(actual, expected, what);
}

/** Every answer, normalized, read under a pin of the published revision. */
function answers(store: Store, requests: QueryRequestT[]): unknown[] {
  const view = new ArenaView(store.arena);
  const reader = new StoreReader(view, new Uint32Array(layout.rootWords));
  const slot = new ReaderSlot(store.control, 0x7ffb_0000);
  try {
    const root = slot.pin(store.now());
    reader.roots.set(view.u32.subarray(root >>> 2, (root >>> 2) + layout.rootWords));
    reader.revision = view.f64[(root >>> 3) + layout.rootRevisionF64]!;
    const runner = new QueryRunner(view, reader, () => slot.expired());
    return requests.map((query) => normalizeQueryResponse(decodeQueryResponse(runner.run(encode(query)))));
  } finally {
    slot.release();
    slot.close();
  }
}

/** Queries that together read every record of every table, each way an index serves them. */
function wholeStoreQueries(keys: KeySpace = keySpaces.small): QueryRequestT[] {
  const task = (fields: Partial<TaskQueryT>) => request(Object.assign(new TaskQueryT(), fields));
  const queries = [0, 1, 2].map((configDetail) => task({ configDetail }));
  for (const role of [...keys.roles, 'snap', 'nobody']) {
    queries.push(task({ role }), request(new JobKeysQueryT(role)), request(new JobSummaryQueryT(role)),
      request(new QuotaQueryT(role)), request(new CronJobsQueryT(role, null)),
      request(Object.assign(new JobUpdateQueryT(), { role })));
    for (const environment of keys.environments) queries.push(task({ role, environment }));
  }
  for (const host of [...keys.hosts.slice(0, 20), 'snap-host-1']) queries.push(task({ slaveHosts: [host] }));
  for (let status = 0; status <= 18; status++) {
    if (status !== 8) queries.push(task({ statuses: [status as ScheduleStatus] }));
  }
  for (const job of keys.jobKeys.slice(0, 30)) queries.push(task({ jobKeys: [job] }));
  queries.push(request(new JobKeysQueryT(null)), request(new RoleSummaryQueryT()), request(new JobSummaryQueryT(null)),
    request(new CronJobsQueryT(null, null)), request(new JobUpdateQueryT()), request(new HostAttributesQueryT([])),
    request(new MaintenanceQueryT([])), request(new SchedulerQueryT()));
  return queries;
}

/** Equal answers: compared as JSON first (ava's deepEqual of thousands of tasks takes seconds), diffed if not. */
function sameAnswers(t: ExecutionContext, actual: unknown[], expected: unknown[], message: string): void {
  if (JSON.stringify(actual) === JSON.stringify(expected)) t.pass(message);
  else t.deepEqual(actual, expected, message);
}

/** Reference counts of the stored configs, by hash. */
function configRefs(store: Store): [string, number][] {
  const out: [string, number][] = [];
  for (const info of store.writer.tables.configsByRow) if (info !== undefined) out.push([info.hex, info.refs]);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function counts(store: Store): { revision: number; taskCount: number; configCount: number; strings: number } {
  const stats = store.writer.stats();
  return { revision: stats.revision, taskCount: stats.taskCount, configCount: stats.configCount,
    strings: stats.strings };
}

function temporaryDirectory(t: ExecutionContext): string {
  const directory = mkdtempSync(join(tmpdir(), 'strata-snapshot-test-'));
  t.teardown(() => rmSync(directory, { recursive: true, force: true }));
  return directory;
}

// --------------------------------------------------------------------------------------------------------------
// The state: generated transactions plus the edges, in the store and the model

const snapJob = jobKey('snap', 'prod', 'web');
const sharedConfig = taskConfig(snapJob, { cpus: 0.5, production: true, dedicated: 'value' });
const sharedHash = hashOf(sharedConfig);
const doomedConfig = taskConfig(jobKey('snap', 'devel', 'tmp'), { cpus: 0.25 });
const updateKeySnap = updateKey(snapJob, 'up1');

/** Transactions with every kind of record and edge the generator makes rarely or never. */
function edgeTransactions(): TransactionT[] {
  const events = [taskEvent(10, ScheduleStatus.PENDING, 'queued'), taskEvent(20, ScheduleStatus.ASSIGNED),
    taskEvent(30, ScheduleStatus.RUNNING, 'up and running')];
  const ports = [new PortT('http', 31000), new PortT('admin', 31001)];
  return [
    transaction([
      ops.upsert(
        scheduledTask('shared-0', sharedHash, { status: ScheduleStatus.RUNNING, instanceId: 0, slaveHost: 'snap-host-1',
          slaveId: 'agent-1', events, ports, failureCount: 2, timesPartitioned: 1, ancestorId: 'old-0' }),
        scheduledTask('shared-1', sharedHash, { instanceId: 1 })),
      ops.saveCron(cronJob(snapJob, sharedHash, { instanceCount: 2 })),
      ops.saveUpdate(jobUpdate(updateKeySnap, [instanceConfig(sharedHash, [[0, 1]])], instanceConfig(sharedHash,
        [[0, 3]]), 'deployer', [['reason', 'snapshot test']])),
    ], { configs: [sharedConfig], idempotency: ['snap-client', 1] }),
    // Events out of timestamp order and with equal timestamps: the load must rebuild the same lists.
    transaction([
      ops.updateEvent(updateKeySnap, updateEvent(1, 300, 'carol')),
      ops.updateEvent(updateKeySnap, updateEvent(2, 100, 'alice')),
      ops.updateEvent(updateKeySnap, updateEvent(3, 200, 'bob')),
      ops.updateEvent(updateKeySnap, updateEvent(4, 200, 'dave')),
      ops.instanceEvent(updateKeySnap, instanceEvent(0, 50, 1)), ops.instanceEvent(updateKeySnap, instanceEvent(1, 50, 2)),
      ops.instanceEvent(updateKeySnap, instanceEvent(2, 10, 3)),
    ], { idempotency: ['snap-client', 2] }),
    transaction([ops.upsert(scheduledTask('doomed-0', doomedConfig), scheduledTask('doomed-1', doomedConfig,
      { instanceId: 1 }))]),
    transaction([ops.delete(['doomed-0'])]),
    transaction([ops.transition('shared-1', ScheduleStatus.ASSIGNED, { slaveHost: 'snap-host-1', message: 'assigned' }),
      ops.transition('shared-1', ScheduleStatus.RUNNING, { scheduler: 'scheduler-2' })]),
    transaction([
      ops.saveQuota('snap', [resource(ResourceType.NUM_CPUS, 10), resource(ResourceType.RAM_MB, 1024)]),
      ops.saveHosts(hostAttributes('snap-host-1', [['zone', ['z']], ['rack', ['r2', 'r1']]],
        { mode: MaintenanceMode.DRAINING, slaveId: 'agent-1' })),
      ops.saveMaintenance(new HostMaintenanceRequestT('snap-host-1', undefined, undefined, 60n, 5n)),
      ops.saveScheduler('framework-snap', [['cluster', 'test'], ['region', 'x']]),
    ], { idempotency: ['snap-client', 3] }),
    // An error is remembered for its key too.
    transaction([ops.transition('missing', ScheduleStatus.KILLING)], { idempotency: ['snap-client', 4] }),
  ];
}

interface Built { store: Store; model: ReferenceModel; generator: Generator; edges: TransactionT[] }

function build(t: ExecutionContext, seed: number, steps: number, realClock = false, keySpace: KeySpaceName = 'small'):
  Built {
  const store = newStore(realClock);
  const model = new ReferenceModel();
  const generator = new Generator(seed, model, { keySpace });
  for (let step = 0; step < steps; step++) commitBoth(t, store, model, generator.transaction(), `step ${step}`);
  const edges = edgeTransactions();
  edges.forEach((txn, index) => commitBoth(t, store, model, txn, `edge transaction ${index}`));
  return { store, model, generator, edges };
}

/** Commits made while the snapshot is written (to the store only: the model stays at the snapshot's revision). */
function laterTransaction(index: number): TransactionT {
  switch (index) {
    case 0: return transaction([ops.upsert(scheduledTask('late-0', sharedHash)), ops.delete(['shared-0'])]);
    case 1: return transaction([ops.transition('shared-1', ScheduleStatus.KILLING),
      ops.saveQuota('snap', [resource(ResourceType.NUM_CPUS, 1)])]);
    case 2: return transaction([ops.removeUpdates([updateKeySnap]), ops.removeCron(snapJob)]);
    case 3: return transaction([ops.saveHosts(hostAttributes('snap-host-1', [['rack', ['r9']]])),
      ops.removeMaintenance('snap-host-1'), ops.saveScheduler('framework-late')]);
    default: return transaction([ops.upsert(scheduledTask(`late-${index}`, sharedHash)),
      ops.delete(['doomed-1'], true)], { idempotency: ['snap-client', 100 + index] });
  }
}

// --------------------------------------------------------------------------------------------------------------

interface RoundTrip { keySpace: KeySpaceName; seed: number; steps: number; stepsAfter: number }

/**
 * The round trip: state, snapshot with a commit after every chunk, load, compare every answer, the counts, the
 * config reference counts and the idempotency window, then go on from the loaded store and the model together.
 */
function roundTrip(t: ExecutionContext, plan: RoundTrip): void {
  const { store, model, generator, edges } = build(t, plan.seed, plan.steps, false, plan.keySpace);
  const directory = temporaryDirectory(t);
  const revision = store.writer.revision;
  const queries = [...wholeStoreQueries(keySpaces[plan.keySpace]), ...Array.from({ length: 150 },
    () => generator.query())];
  const before = answers(store, queries);
  sameAnswers(t, before, queries.map((query) => normalizeQueryResponse(model.query(query))), 'the store is the model');
  const countsBefore = counts(store);
  const refsBefore = configRefs(store);
  const idempotency = store.writer.idempotencyEntries();

  const pin = pinPublishedLong(store.control, store.now());
  let later = 0;
  const written = writeSnapshot({
    arena: store.arena, control: store.control, slotIndex: pin.slot.slot, root: pin.root, directory, revision,
    term: 3, idempotency, chunkBytesTarget: 2048,
    chunkWritten: () => {
      const result = commit(store, laterTransaction(later++));
      t.is(result.error, null, `commit ${later - 1} during the snapshot`);
    },
  });
  t.true(written.chunks >= 8, `many chunks (${written.chunks})`);
  t.is(later, written.chunks, 'a commit after every chunk');
  t.is(written.revision, revision);
  t.true(store.writer.revision > revision + 4, 'the writer went on');
  t.deepEqual(readdirSync(directory), [`snapshot-${revision.toString(16).padStart(16, '0')}.snap`]);

  const loaded = newStore();
  const info = loadSnapshot(loaded.writer, written.path);
  t.is(info.revision, revision);
  t.is(info.term, 3);
  t.is(info.counts.tasks, countsBefore.taskCount);
  sameAnswers(t, answers(loaded, queries), before, 'every answer as at the snapshot\'s revision');
  t.deepEqual(counts(loaded), countsBefore, 'revision, tasks, configs and interned strings');
  t.deepEqual(configRefs(loaded), refsBefore, 'config reference counts');
  t.deepEqual(loaded.writer.idempotencyEntries(), idempotency, 'the idempotency window, oldest first');

  // Retries of remembered keys are duplicates with their first outcome (a success and an error).
  for (const index of [0, 6]) {
    const replay = commit(loaded, edges[index]!);
    t.true(replay.duplicate, `edge ${index} is a duplicate after the load`);
    t.deepEqual(normalizeTransactionResult(replay), normalizeTransactionResult(model.commit(edges[index]!)));
  }
  // The loaded store goes on as the model does (the model is at the snapshot's revision).
  t.log(`${plan.keySpace} key space: revision ${revision}, ${countsBefore.taskCount} tasks, ${countsBefore.configCount} ` +
    `configs, ${written.chunks} chunks of ${written.bytes} bytes`);
  for (let step = 0; step < plan.stepsAfter; step++) {
    commitBoth(t, loaded, model, generator.transaction(), `step ${step} after the load`);
    if (step % 10 === 0) {
      const query = generator.query();
      sameAnswers(t, answers(loaded, [query]), [normalizeQueryResponse(model.query(query))], `query after step ${step}`);
    }
  }
  t.is(loaded.writer.stats().configCount, model.configCount());
  // The shared config goes once its last reference does: two tasks, the cron job and the update's two.
  const configs = model.configCount();
  commitBoth(t, loaded, model, transaction([ops.delete(['shared-0', 'shared-1'])]), 'delete the shared tasks');
  t.is(loaded.writer.stats().configCount, configs, 'still referenced');
  commitBoth(t, loaded, model, transaction([ops.removeCron(snapJob), ops.removeUpdates([updateKeySnap])]), 'remove');
  t.is(loaded.writer.stats().configCount, configs - 1, 'freed with its last reference');
  t.is(model.configCount(), configs - 1);
  commitBoth(t, loaded, model, transaction([ops.upsert(scheduledTask('again', sharedHash))]), 'NOT_FOUND by hash');
}

test('a snapshot written while commits go on loads into a store equal to its revision (small key space)',
  (t) => roundTrip(t, { keySpace: 'small', seed: 17, steps: 300, stepsAfter: 150 }));

// Thousands of tasks: trees several levels deep, many chunks, configs and job update events spread over chunks.
test('a snapshot written while commits go on loads into a store equal to its revision (large key space)',
  (t) => roundTrip(t, { keySpace: 'large', seed: 3, steps: 120, stepsAfter: 40 }));

// Serial: the other tests are synchronous and would hold the event loop while the worker runs.
test.serial('a snapshot worker writes the pinned revision while the writer thread commits', async (t) => {
  const { store } = build(t, 5, 100, true);
  for (const bytes of bulkLoadTransactionBytes(workloadOptions(5000), 1000)) {
    t.is(decodeTransactionResult(store.writer.commit(bytes)).error, null);
    store.writer.publish();
  }
  const directory = temporaryDirectory(t);
  const revision = store.writer.revision;
  const queries = wholeStoreQueries();
  const before = answers(store, queries);
  const outcome: { settled: SnapshotWriteResult | Error | null } = { settled: null };
  spawnSnapshot({ arena: store.arena, control: store.control, directory, revision, term: 0,
    idempotency: store.writer.idempotencyEntries() }).then((result) => { outcome.settled = result; },
    (error: Error) => { outcome.settled = error; });
  let commits = 0;
  const startMs = performance.now();
  while (outcome.settled === null) {
    const result = commit(store, laterTransaction(commits % 2 === 0 ? 4 + commits : 1));
    t.is(result.error, null);
    commits++;
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (outcome.settled instanceof Error) throw outcome.settled;
  const written = outcome.settled as SnapshotWriteResult;
  t.is(written.revision, revision);
  t.log(`${commits} commits in ${Math.round(performance.now() - startMs)} ms while the worker wrote ` +
    `${written.tasks} tasks in ${Math.round(written.ms)} ms`);
  const loaded = newStore();
  loadSnapshot(loaded.writer, written.path);
  sameAnswers(t, answers(loaded, queries), before, 'every answer as at the snapshot\'s revision');
  // The worker closed its slot: no pin is left.
  const control = new Int32Array(store.control);
  for (let slot = 0; slot < limits.readerSlotsMax; slot++) {
    t.not(Atomics.load(control, layout.slotWord(slot, layout.slotStateWord)), layout.slotStatePinnedLong);
  }
});

test('a long pin outlives pinMsMax and protects its revision, until snapshotPinMsMax', (t) => {
  const { store, generator } = build(t, 3, 60);
  const directory = temporaryDirectory(t);
  const revision = store.writer.revision;
  const queries = wholeStoreQueries();
  const before = answers(store, queries);
  const idempotency = store.writer.idempotencyEntries();
  const long = pinPublishedLong(store.control, store.clock.ms);
  const short = new ReaderSlot(store.control, 0x7ffa_0000);
  short.pin(store.clock.ms);
  store.clock.ms += limits.pinMsMaxDefault + 1;
  // Everything the pinned revision reaches is replaced or removed, and memory is reused meanwhile.
  for (let index = 0; index < 6; index++) t.is(commit(store, laterTransaction(index)).error, null);
  for (let step = 0; step < 100; step++) commit(store, generator.transaction()); // the model stays behind: no check
  t.true(short.expired(), 'a query pin expires after pinMsMax');
  t.false(long.slot.expired(), 'a long pin does not');
  short.release();
  short.close();
  const written = writeSnapshot({ arena: store.arena, control: store.control, slotIndex: long.slot.slot,
    root: long.root, directory, revision, term: 0, idempotency, chunkBytesTarget: 4096 });
  const loaded = newStore();
  loadSnapshot(loaded.writer, written.path);
  sameAnswers(t, answers(loaded, queries), before, 'the old revision, intact');

  const expiring = pinPublishedLong(store.control, store.clock.ms);
  store.clock.ms += limits.snapshotPinMsMax + 1;
  commit(store, laterTransaction(7));
  t.true(expiring.slot.expired(), 'a long pin expires after snapshotPinMsMax');
  const other = temporaryDirectory(t);
  t.throws(() => writeSnapshot({ arena: store.arena, control: store.control, slotIndex: expiring.slot.slot,
    root: expiring.root, directory: other, revision: store.writer.revision - 1, term: 0, idempotency: [],
    chunkBytesTarget: 4096 }), { instanceOf: SnapshotError, message: /expired/ });
  t.deepEqual(readdirSync(other), [], 'nothing installed, no temporary file left');
});

// --------------------------------------------------------------------------------------------------------------
// Damaged files

interface Frame { offset: number; length: number; type: number }

function framesOf(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  for (let at = 128; at < bytes.length; at += frameBytes(bytes.readUInt32LE(at))) {
    frames.push({ offset: at, length: bytes.readUInt32LE(at), type: bytes[at + 4]! });
  }
  return frames;
}

/** The edge transactions' state in 512-byte chunks (several chunks, an update continued over chunks). */
function smallSnapshot(t: ExecutionContext, createdMs?: number, magic?: Magic): { path: string; bytes: Buffer;
  directory: string; store: Store } {
  const store = newStore();
  const model = new ReferenceModel();
  edgeTransactions().forEach((txn, index) => commitBoth(t, store, model, txn, `edge ${index}`));
  const directory = temporaryDirectory(t);
  const written = writeSnapshot({ arena: store.arena, control: store.control, slotIndex: -1, root: 0, directory,
    revision: store.writer.revision, term: 0, idempotency: store.writer.idempotencyEntries(), chunkBytesTarget: 512,
    ...(createdMs === undefined ? {} : { createdMs }), ...(magic === undefined ? {} : { magic }) });
  return { path: written.path, bytes: readFileSync(written.path), directory, store };
}


// A format change without a version bump fails here; regenerate on purpose with UPDATE_GOLDEN=1.
for (const [kind, name, magic] of [['snapshot', 'snapshot-v1.snap', magicSnapshot], ['backup', 'backup-v1.bak', magicBackup]] as const) {
test(`the golden ${kind} (format version 1) loads, and a ${kind} of its state has the same bytes`, (t) => {
  const golden = fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
  const { bytes, store } = smallSnapshot(t, 1_700_000_000_000, magic);
  if (process.env['UPDATE_GOLDEN'] === '1') {
    mkdirSync(dirname(golden), { recursive: true });
    writeFileSync(golden, bytes);
    t.log(`wrote ${golden}`);
  }
  const old = readFileSync(golden);
  // The schema hash (bytes 16..48) changes with any edit of schema.fbs, and with it the header CRC, the CRC chain's
  // seed and so every frame's CRC: all the rest must be the same bytes.
  t.deepEqual(bytes.subarray(0, 16), old.subarray(0, 16), 'header: magic, version, size');
  t.deepEqual(bytes.subarray(48, 124), old.subarray(48, 124), 'header: revision, created, reserved');
  const frames = framesOf(bytes);
  t.deepEqual(frames, framesOf(old), 'the same frames at the same offsets');
  for (const frame of frames) {
    const end = frame.offset + frameBytes(frame.length);
    t.deepEqual(bytes.subarray(frame.offset, frame.offset + 8), old.subarray(frame.offset, frame.offset + 8));
    t.deepEqual(bytes.subarray(frame.offset + 12, end), old.subarray(frame.offset + 12, end), `frame at ${frame.offset}`);
  }
  const loaded = newStore();
  loadSnapshot(loaded.writer, golden);
  sameAnswers(t, answers(loaded, wholeStoreQueries()), answers(store, wholeStoreQueries()), 'the golden state');
  t.deepEqual(configRefs(loaded), configRefs(store));
});
}

test('a damaged snapshot throws FormatError naming the file and the offset', (t) => {
  const { bytes, directory } = smallSnapshot(t);
  const frames = framesOf(bytes);
  const end = frames[frames.length - 1]!;
  t.is(end.type, frameTypeEnd);
  t.true(frames.length >= 4, `several chunks (${frames.length})`);
  const second = frames[1]!;
  const withHeaderCrc = (edit: (copy: Buffer) => void): Buffer => {
    const copy = Buffer.from(bytes);
    edit(copy);
    copy.writeUInt32LE(crc32c(copy, 0, 0, 124), 124);
    return copy;
  };
  const flip = (at: number): Buffer => {
    const copy = Buffer.from(bytes);
    copy[at]! ^= 0x10;
    return copy;
  };
  const forgedEnd = (): Buffer => {
    const end0 = SnapshotEnd.getRootAsSnapshotEnd(new flatbuffers.ByteBuffer(
      bytes.subarray(end.offset + 16, end.offset + 16 + end.length))).unpack();
    end0.tasks += 1n;
    const builder = new flatbuffers.Builder(256);
    builder.finish(end0.pack(builder));
    const payload = builder.asUint8Array();
    const frame = Buffer.alloc(frameBytes(payload.length));
    const previous = frames[frames.length - 2]!;
    writeFrameHeader(frame, 0, frameTypeEnd, frames.length - 1, payload, 0, payload.length,
      bytes.readUInt32LE(previous.offset + 8));
    frame.set(payload, 16);
    return Buffer.concat([bytes.subarray(0, end.offset), frame]);
  };
  const cases: [string, Buffer, number, RegExp][] = [
    ['empty file', bytes.subarray(0, 0), 0, /shorter than/],
    ['truncated header', bytes.subarray(0, 100), 0, /shorter than/],
    ['header only', bytes.subarray(0, 128), 128, /no end chunk/],
    ['truncated frame header', bytes.subarray(0, 134), 128, /truncated/],
    ['truncated chunk', bytes.subarray(0, second.offset + 40), second.offset, /truncated/],
    ['no end chunk', bytes.subarray(0, end.offset), end.offset, /no end chunk/],
    ['truncated end chunk', bytes.subarray(0, bytes.length - 1), end.offset, /truncated/],
    ['bytes after the end', Buffer.concat([bytes, Buffer.alloc(8)]), bytes.length, /after the end chunk/],
    ['bit flip in a chunk', flip(second.offset + 16 + (second.length >>> 1)), second.offset, /checksum mismatch/],
    ['bit flip in a frame length', flip(second.offset + 1), second.offset, /checksum mismatch|truncated/],
    ['bit flip in a frame type', flip(second.offset + 4), second.offset + 4, /unknown type/],
    ['bit flip in the end chunk', flip(end.offset + 20), end.offset, /checksum mismatch/],
    ['bit flip in the header', flip(50), 124, /header checksum mismatch/],
    ['wrong magic', withHeaderCrc((copy) => copy.write('STRATLOG', 0, 'latin1')), 0, /magic/],
    ['future format version', withHeaderCrc((copy) => copy.writeUInt32LE(2, 8)), 8, /format version 2/],
    ['chunks swapped', Buffer.concat([bytes.subarray(0, second.offset), bytes.subarray(frames[2]!.offset,
      frames[3]!.offset), bytes.subarray(second.offset, frames[2]!.offset), bytes.subarray(frames[3]!.offset)]),
    second.offset + 12, /index/],
    ['end counts that differ', forgedEnd(), end.offset, /end chunk counts/],
  ];
  for (const [name, content, offset, message] of cases) {
    const path = join(directory, `${name.replaceAll(' ', '-')}.snap`);
    writeFileSync(path, content);
    const error = t.throws(() => loadSnapshot(newStore().writer, path), { instanceOf: FormatError }, name);
    if (error === undefined) continue;
    t.is((error as FormatError).file, path, `${name}: the file`);
    t.is((error as FormatError).offset, offset, `${name}: the offset (${error.message})`);
    t.regex(error.message, message, name);
    t.true(error.message.startsWith(path), `${name}: the message names the file`);
  }
});

// --------------------------------------------------------------------------------------------------------------
// Tools

test('readSnapshotInfo, listSnapshots and snapshotDump', (t) => {
  const { path, directory } = smallSnapshot(t);
  const info = readSnapshotInfo(path);
  const loaded = loadSnapshot(newStore().writer, path);
  t.deepEqual(info.counts, loaded.counts);
  t.is(info.revision, loaded.revision);
  t.deepEqual(info.counts, { configs: 2, tasks: 3, cronJobs: 1, jobUpdates: 1, quotas: 1, hosts: 1, maintenance: 1,
    idempotency: 4 });
  for (const revision of [5, 0x1_0000_0000]) {
    copyFileSync(path, join(directory, `snapshot-${revision.toString(16).padStart(16, '0')}.snap`));
  }
  writeFileSync(join(directory, 'snapshot-00000000000000ff.snap.tmp'), '');
  t.deepEqual(listSnapshots(directory).map((entry) => entry.revision), [0x1_0000_0000, loaded.revision, 5]);

  const lines: string[] = [];
  snapshotDump(path, { json: false }, (line) => lines.push(line));
  t.regex(lines[0]!, /^header STRATSNP version 1 revision \d+/);
  const taskLine = /^task shared-0 RUNNING instance 0 config [0-9a-f]{8} host snap-host-1 events 3 mod \d+ create \d+$/;
  t.true(lines.some((line) => taskLine.test(line)),
    lines.filter((line) => line.startsWith('task')).join('\n'));
  // With 512-byte chunks the update's events continue over several entries.
  const updateLines = lines.filter((line) => line.startsWith('update snap/prod/web/up1'));
  t.true(updateLines.length > 1, updateLines.join('\n'));
  t.false(updateLines[0]!.includes('(continued)'));
  t.true(updateLines.slice(1).every((line) => line.includes('(continued)')), updateLines.join('\n'));
  const eventsOf = (pattern: RegExp) => updateLines.reduce((sum, line) => sum + Number(pattern.exec(line)![1]), 0);
  t.is(eventsOf(/ events (\d+) instance/), 4);
  t.is(eventsOf(/instance events (\d+)/), 3);
  t.regex(lines[lines.length - 1]!, /^end revision \d+ term 0 chunks \d+ bytes \d+ configs 2 tasks 3/);
  const json: { kind: string; [field: string]: unknown }[] = [];
  snapshotDump(path, { json: true }, (line) => json.push(JSON.parse(line) as { kind: string }));
  t.deepEqual([...new Set(json.map((line) => line.kind))].sort(), ['chunk', 'config', 'cron', 'end', 'header',
    'host', 'idempotency', 'maintenance', 'quota', 'scheduler', 'task', 'update']);
  type TaskJson = { modRevision: number; createRevision: number; ancestorId: string; assignedTask:
    { taskId: string; configHash: string } };
  const taskOf = (id: string): TaskJson => json.map((line) => line['task'] as TaskJson | undefined)
    .find((task) => task?.assignedTask.taskId === id)!;
  t.is(taskOf('shared-0').ancestorId, 'old-0');
  t.is(taskOf('shared-0').assignedTask.configHash, Buffer.from(sharedHash).toString('hex'));
  t.true(taskOf('shared-1').modRevision > taskOf('shared-1').createRevision, 'revisions as numbers');
});

test('an I/O error before the rename installs nothing (failpoint snapshot.before-rename)', (t) => {
  const directory = temporaryDirectory(t);
  const distTest = fileURLToPath(new URL('.', import.meta.url));
  const script = join(directory, 'child.mjs');
  writeFileSync(script, `
    import { WriterCore } from ${JSON.stringify(join(distTest, '../workers/writer/writer.js'))};
    import { writeSnapshot } from ${JSON.stringify(join(distTest, '../workers/snapshot/write.js'))};
    const arena = new SharedArrayBuffer(16 << 20, { maxByteLength: 64 << 20 });
    const control = new SharedArrayBuffer(${layout.controlBytes});
    const writer = new WriterCore({ arena, control, arenaBytesMax: 64 << 20, pinMsMax: 30000, now: () => 0 });
    try {
      writeSnapshot({ arena, control, slotIndex: -1, root: 0, directory: process.argv[2], revision: 0, term: 0,
        idempotency: [] });
      console.log('written');
    } catch (error) { console.log(error.code); }
  `);
  const child = spawnSync(process.execPath, [script, directory], {
    env: { ...process.env, STRATA_FAILPOINTS: 'snapshot.before-rename=eio' }, encoding: 'utf8',
  });
  t.is(child.stdout.trim(), 'EIO', child.stderr);
  t.deepEqual(readdirSync(directory), ['child.mjs']);
});
