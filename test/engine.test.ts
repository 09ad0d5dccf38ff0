/**
 * The engine through its main-thread API, with a real writer worker and reader pool: operations, typed errors on
 * bad input (and nothing changed), idempotency, consistency of aggregates under concurrent writes, pins that
 * expire, and memory that stays bounded.
 */
import test from 'ava';
import { decodeQueryResponse, decodeTransactionResult } from '../core/codec.js';
import { taskEventsMax, transactionOpsMax, transactionTasksMax, updateEventsMax } from '../core/limits.js';
import { isActive, jobStatsBucket } from '../core/status.js';
import { Engine } from '../daemon/engine.js';
import { pinClockMs, ReaderSlot } from '../workers/reader/pin.js';
import {
  encode, f, jobConfig, make, op, query, task, taskQuery, transition, txn, upsert,
} from './support/build.js';

const S = f.ScheduleStatus;

async function commit(engine: Engine, bytes: Uint8Array): Promise<f.TransactionResultT> {
  return decodeTransactionResult(await engine.commit(bytes));
}

async function tasks(engine: Engine, fields: Partial<f.TaskQueryT> = {}): Promise<f.TasksResultT> {
  const response = decodeQueryResponse(await engine.query(taskQuery(fields)));
  if (response.error !== null) throw new Error(`query failed: ${response.error.message}`);
  return response.result as f.TasksResultT;
}

test('upsert, transition with CAS and enforcement, delete; queries see each revision', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const config = jobConfig('www', 'prod', 'hello');
  const created = await commit(engine, txn([upsert([task('t-0', config, 0), task('t-1', config, 1)])]));
  t.is(created.error, null);
  t.is(created.revision, 1n);
  const moved = await commit(engine, txn([transition('t-0', S.ASSIGNED, {
    enforce: true, hasExpectStatus: true, expectStatus: S.PENDING, slaveHost: 'host-a', slaveId: 'agent-a',
    assignedPorts: [make(f.PortT, { name: 'http', port: 31000 })], message: 'assigned',
  })]));
  t.is(moved.revision, 2n);
  const all = await tasks(engine);
  t.deepEqual(all.tasks.map((x) => x.assignedTask!.taskId), ['t-0', 't-1']);
  const t0 = all.tasks[0]!;
  t.is(t0.status, S.ASSIGNED);
  t.is(t0.assignedTask!.slaveHost, 'host-a');
  t.deepEqual(t0.assignedTask!.assignedPorts.map((p) => [p.name, p.port]), [['http', 31000]]);
  t.deepEqual(t0.taskEvents.map((e) => [e.status, e.message]), [[S.PENDING, 'created'], [S.ASSIGNED, 'assigned']]);
  t.is(t0.modRevision, 2n);
  t.is(t0.createRevision, 1n);
  t.is(all.configs.length, 1);
  t.deepEqual((await tasks(engine, { slaveHosts: ['host-a'] })).tasks.map((x) => x.assignedTask!.taskId), ['t-0']);
  t.deepEqual((await tasks(engine, { statuses: [S.PENDING] })).tasks.map((x) => x.assignedTask!.taskId), ['t-1']);
  // A transition to the current status is a no-op: no revision, no event.
  const same = await commit(engine, txn([transition('t-0', S.ASSIGNED)]));
  t.is(same.revision, 2n);
  t.true(same.ops[0]!.noop);
  const deleted = await commit(engine, txn([op(f.Op.DeleteTasks, make(f.DeleteTasksT, { taskIds: ['t-0', 't-1'] }))]));
  t.is(deleted.revision, 3n);
  t.is((await tasks(engine)).total, 0);
  t.is(engine.stats().configCount, 0, 'the config went with its last task');
});

test('bad input gets a typed error and changes nothing', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const config = jobConfig('www', 'prod', 'hello');
  await commit(engine, txn([upsert([task('t-0', config, 0, S.RUNNING)])]));
  const before = await tasks(engine);
  const cases: [string, Uint8Array, f.ErrorCode][] = [
    ['unknown status', txn([transition('t-0', 8 as f.ScheduleStatus)]), f.ErrorCode.INVALID_ARGUMENT],
    ['unknown status on upsert', txn([upsert([task('t-9', config, 9, 14 as f.ScheduleStatus)])]), f.ErrorCode.INVALID_ARGUMENT],
    ['illegal transition when enforced', txn([transition('t-0', S.PENDING, { enforce: true })]), f.ErrorCode.ILLEGAL_TRANSITION],
    ['CAS on the wrong status', txn([transition('t-0', S.FINISHED, { hasExpectStatus: true, expectStatus: S.PENDING })]),
      f.ErrorCode.PRECONDITION_FAILED],
    ['failed precondition', txn([transition('t-0', S.FINISHED)], { preconditions: [make(f.PreconditionT, {
      table: f.RecordTable.TASK, kind: f.PreconditionKind.ABSENT, taskId: 't-0' })] }), f.ErrorCode.PRECONDITION_FAILED],
    ['missing task', txn([transition('nope', S.FINISHED)]), f.ErrorCode.NOT_FOUND],
    ['oversized config', txn([upsert([task('t-1', jobConfig('www', 'prod', 'big', { data: 'x'.repeat(300_000) }), 1)])]),
      f.ErrorCode.INVALID_ARGUMENT],
    ['bad job key', txn([upsert([task('t-1', jobConfig('w w', 'prod', 'x'), 1)])]), f.ErrorCode.INVALID_ARGUMENT],
    ['volume mode that is not a VolumeMode', txn([upsert([task('t-1', make(f.TaskConfigT, {
      ...jobConfig('www', 'prod', 'hello'), containerType: f.Container.MesosContainer,
      container: make(f.MesosContainerT, { volumes: [make(f.VolumeT, { containerPath: '/d', mode: 3 as f.VolumeMode })] }),
    }), 1)])]), f.ErrorCode.INVALID_ARGUMENT],
    ['unknown config hash', txn([upsert([make(f.ScheduledTaskT, { assignedTask: make(f.AssignedTaskT, {
      taskId: 't-2', configHash: new Array(16).fill(7) }) })])]), f.ErrorCode.NOT_FOUND],
    ['too many tasks', txn([op(f.Op.DeleteTasks, make(f.DeleteTasksT, {
      taskIds: Array.from({ length: transactionTasksMax + 1 }, (_, i) => `x-${i}`), ignoreMissing: true }))]),
      f.ErrorCode.INVALID_ARGUMENT],
    ['not a flatbuffer', new Uint8Array([1, 2, 3]), f.ErrorCode.INVALID_ARGUMENT],
  ];
  for (const [name, bytes, code] of cases) {
    const result = await commit(engine, bytes);
    t.is(result.error?.code, code, name);
    t.is(result.revision, 0n, name);
  }
  // The first op succeeds, the second fails: all or nothing.
  const partial = await commit(engine, txn([transition('t-0', S.KILLING), transition('nope', S.KILLED)]));
  t.is(partial.error?.code, f.ErrorCode.NOT_FOUND);
  t.is(partial.error?.opIndex, 1);
  const after = await tasks(engine);
  t.deepEqual(after, before);
  t.is(engine.stats().revision, 1);
});

test('random garbage never breaks the writer or a reader', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const good = txn([upsert([task('t-0', jobConfig('www', 'prod', 'hello'), 0)])]);
  let seed = 42;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 500; i++) {
    const bytes = good.slice();
    for (let flips = 1 + Math.floor(random() * 8); flips > 0; flips--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    const result = await commit(engine, bytes);
    t.true(result.error === null || result.error.code !== f.ErrorCode.OK);
    const response = decodeQueryResponse(await engine.query(bytes));
    t.truthy(response);
  }
  const result = await commit(engine, txn([upsert([task('t-last', jobConfig('www', 'prod', 'hello'), 1)])]));
  t.is(result.error, null);
});

test('idempotency: a repeated key returns the first outcome and applies nothing', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const key = make(f.IdempotencyKeyT, { clientId: 'scheduler-1', sequence: 7n });
  const bytes = txn([upsert([task('t-0', jobConfig('www', 'prod', 'hello'), 0)])], { idempotency: key });
  const first = await commit(engine, bytes);
  const again = await commit(engine, bytes);
  t.is(first.revision, 1n);
  t.false(first.duplicate);
  t.is(again.revision, 1n);
  t.true(again.duplicate);
  t.is(engine.stats().revision, 1);
  const failing = txn([transition('none', S.RUNNING)], { idempotency: make(f.IdempotencyKeyT, { clientId: 'scheduler-1', sequence: 8n }) });
  t.is((await commit(engine, failing)).error?.code, f.ErrorCode.NOT_FOUND);
  const replay = await commit(engine, failing);
  t.true(replay.duplicate);
  t.is(replay.error?.code, f.ErrorCode.NOT_FOUND);
});

test('TransitionTask checks its inputs before looking the task up', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const invalid: Partial<f.TransitionTaskT>[] = [
    { hasExpectStatus: true, expectStatus: 15 as f.ScheduleStatus }, { message: 'm'.repeat(4097) },
    { scheduler: 's\u0001' }, { slaveId: 'x'.repeat(257) }, { slaveHost: 'h\u007f' },
    { assignedPorts: [make(f.PortT, { name: '', port: 1 })] },
  ];
  for (const fields of invalid) {
    const result = await commit(engine, txn([transition('missing', S.RUNNING, fields)]));
    t.is(result.error?.code, f.ErrorCode.INVALID_ARGUMENT, JSON.stringify(Object.keys(fields)));
  }
});

test('state limits count the events earlier operations of the same transaction appended', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const full = task('t-0', jobConfig('www', 'prod', 'hello'), 0);
  full.taskEvents = Array.from({ length: taskEventsMax - 1 }, (_, i) => make(f.TaskEventT, { timestamp: BigInt(i),
    status: S.PENDING }));
  t.is((await commit(engine, txn([upsert([full])]))).error, null);
  const twice = await commit(engine, txn([transition('t-0', S.ASSIGNED), transition('t-0', S.RUNNING)]));
  t.is(twice.error?.code, f.ErrorCode.RESOURCE_EXHAUSTED);
  t.is(twice.error?.opIndex, 1);
  const afterUpsert = await commit(engine, txn([upsert([full]), transition('t-0', S.ASSIGNED),
    transition('t-0', S.RUNNING)]));
  t.is(afterUpsert.error?.code, f.ErrorCode.RESOURCE_EXHAUSTED);
  t.is(afterUpsert.error?.opIndex, 2);
  const key = make(f.JobUpdateKeyT, { job: make(f.JobKeyT, { role: 'www', environment: 'prod', name: 'hello' }),
    id: 'u-1' });
  const save = op(f.Op.SaveJobUpdate, make(f.SaveJobUpdateT, { update: make(f.JobUpdateT, {
    summary: make(f.JobUpdateSummaryT, { key }), instructions: make(f.JobUpdateInstructionsT, {
      desiredState: make(f.InstanceTaskConfigT, { task: jobConfig('www', 'prod', 'hello') }) }) }) }));
  const event = op(f.Op.SaveJobUpdateEvent, make(f.SaveJobUpdateEventT, { key, event: make(f.JobUpdateEventT, {
    status: f.JobUpdateStatus.ROLLING_FORWARD, timestampMs: 5n }) }));
  t.is((await commit(engine, txn([save]))).error, null);
  for (let stored = 0; stored < updateEventsMax - 1; stored += transactionOpsMax) {
    const count = Math.min(transactionOpsMax, updateEventsMax - 1 - stored);
    t.is((await commit(engine, txn(Array.from({ length: count }, () => event)))).error, null);
  }
  for (const ops of [[event, event], [save, event, event]]) {
    const result = await commit(engine, txn(ops));
    t.is(result.error?.code, f.ErrorCode.RESOURCE_EXHAUSTED);
    t.is(result.error?.opIndex, ops.length - 1);
  }
  const removeThenSave = op(f.Op.RemoveJobUpdates, make(f.RemoveJobUpdatesT, { keys: [key] }));
  t.is((await commit(engine, txn([removeThenSave, save, event, event]))).error, null, 'a removed update has no events');
});

test('a transition to the host the task is already on keeps the host string counted once', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const before = (await engine.writerStats())['strings'];
  t.is((await commit(engine, txn([upsert([task('t-0', jobConfig('www', 'prod', 'hello'), 0, S.ASSIGNED,
    'host-a')])]))).error, null);
  t.is((await commit(engine, txn([transition('t-0', S.RUNNING, { slaveHost: 'host-a' })]))).error, null);
  t.is((await commit(engine, txn([op(f.Op.DeleteTasks, make(f.DeleteTasksT, { taskIds: ['t-0'] }))]))).error, null);
  t.is((await engine.writerStats())['strings'], before, 'every string went with the task');
});

/** Commits lifecycle transitions on a fixed set of tasks: a steady state where every commit frees memory. */
async function churn(engine: Engine, ids: string[], rounds: number): Promise<void> {
  const cycle = [S.ASSIGNED, S.STARTING, S.RUNNING, S.KILLING, S.KILLED];
  for (let round = 0; round < rounds; round++) {
    const results = await Promise.all(ids.map((id, i) => {
      const status = cycle[(round + i) % cycle.length]!;
      return engine.commit(txn([upsert([task(id, jobConfig('churn', 'prod', `job-${i % 5}`, { cpus: 0.25 * (1 + (i % 4)) }),
        i, status, status === S.PENDING ? null : `host-${i % 7}`)])]));
    }));
    for (const bytes of results) if (decodeTransactionResult(bytes).error !== null) throw new Error('churn commit failed');
  }
}

test('concurrent readers see aggregates equal to a recount of the tasks at the revision they read', async (t) => {
  const engine = await Engine.open({ readerThreads: 2 });
  t.teardown(() => engine.close());
  const ids = Array.from({ length: 200 }, (_, i) => `c-${String(i).padStart(4, '0')}`);
  let writing = true;
  const writer = churn(engine, ids, 40).finally(() => { writing = false; });
  let checks = 0;
  let violations = 0;
  const readers = Array.from({ length: 4 }, async () => {
    while (writing) {
      const [summaryBytes, quotaBytes, tasksBytes] = await engine.queryBatch([
        query(f.Query.JobSummaryQuery, make(f.JobSummaryQueryT, { role: 'churn' })),
        query(f.Query.QuotaQuery, make(f.QuotaQueryT, { role: 'churn' })),
        taskQuery({ role: 'churn', configDetail: f.ConfigDetail.FULL })]);
      const summary = decodeQueryResponse(summaryBytes!);
      const quota = decodeQueryResponse(quotaBytes!);
      const all = decodeQueryResponse(tasksBytes!);
      if (summary.revision !== all.revision || quota.revision !== all.revision) violations++;
      const recount = new Map<string, number[]>();
      let cpus = 0;
      const cpusOf = new Map<string, number>();
      for (const stored of (all.result as f.TasksResultT).configs) {
        const config = f.TaskConfig.getRootAsTaskConfig(new (await import('flatbuffers')).ByteBuffer(Uint8Array.from(stored.bytes))).unpack();
        cpusOf.set(Buffer.from(stored.hash).toString('hex'), config.resources.find((r) => r.type === f.ResourceType.NUM_CPUS)!.numCpus);
      }
      for (const x of (all.result as f.TasksResultT).tasks) {
        const name = x.assignedTask!.configHash.length;
        t.is(name, 16);
        const stats = recount.get(String(x.assignedTask!.instanceId % 5)) ?? [0, 0, 0, 0];
        stats[jobStatsBucket(x.status)]!++;
        recount.set(String(x.assignedTask!.instanceId % 5), stats);
        if (isActive(x.status)) cpus += cpusOf.get(Buffer.from(x.assignedTask!.configHash).toString('hex'))!;
      }
      for (const job of (summary.result as f.JobSummaryResultT).jobs) {
        const expected = recount.get(String(job.job!.name).slice(4)) ?? [0, 0, 0, 0];
        const s = job.stats!;
        if (s.pending !== expected[0] || s.active !== expected[1] || s.finished !== expected[2] || s.failed !== expected[3]) violations++;
      }
      const consumed = (quota.result as f.QuotaResultT).prodShared!.numCpus;
      if (Math.abs(consumed - cpus) > 1e-9) violations++;
      checks++;
    }
  });
  await Promise.all([writer, ...readers]);
  t.log(`${checks} consistent-read checks at ${engine.stats().revision} revisions`);
  t.true(checks > 10);
  t.is(violations, 0);
});

test('memory stays bounded under churn with readers, and a held pin holds memory until released', async (t) => {
  const engine = await Engine.open({ readerThreads: 1, arenaBytesInitial: 64 * 1024 * 1024 });
  t.teardown(() => engine.close());
  const ids = Array.from({ length: 100 }, (_, i) => `m-${i}`);
  await churn(engine, ids, 20);
  const settled = engine.stats().arenaBytesUsed;
  await churn(engine, ids, 60);
  const later = engine.stats().arenaBytesUsed;
  t.log(`arena bytes in use after warm-up ${settled}, after 60 more rounds ${later}`);
  t.true(later < settled * 1.5, 'steady-state churn does not grow memory');
  // Pin from this thread, as a reader would: what later commits retire cannot be reused while it is held.
  const slot = new ReaderSlot(engine.control, 1000);
  slot.pin(pinClockMs());
  await churn(engine, ids, 30);
  const pinned = (await engine.writerStats()).retired!;
  t.true(slot.release());
  await churn(engine, ids, 2);
  const released = (await engine.writerStats()).retired!;
  t.log(`retired blocks waiting: ${pinned} while pinned, ${released} after release`);
  t.true(pinned > released * 5);
  slot.close();
});

test('a pin held past pinMsMax expires: the writer does not wait, and the reader learns it', async (t) => {
  const engine = await Engine.open({ readerThreads: 1, pinMsMax: 50 });
  t.teardown(() => engine.close());
  const ids = Array.from({ length: 20 }, (_, i) => `p-${i}`);
  await churn(engine, ids, 2);
  const slot = new ReaderSlot(engine.control, 1001);
  slot.pin(pinClockMs());
  await new Promise((resolve) => setTimeout(resolve, 120));
  await churn(engine, ids, 3);
  t.true(slot.expired());
  t.false(slot.release(), 'release reports the expired pin');
  t.true((await engine.writerStats()).pinsExpired! >= 1);
  t.is((await engine.writerStats()).retired, 0, 'nothing is held back by the expired pin');
  slot.close();
});

test('a writer that dies fails every later call, and reports it once (fail-stop)', async (t) => {
  const failures: Error[] = [];
  const engine = await Engine.open({ readerThreads: 1, onFailure: (error) => failures.push(error) });
  t.teardown(() => engine.close());
  await commit(engine, txn([upsert([task('t-0', jobConfig('www', 'prod', 'hello'), 0)])]));
  await engine.killWriterForTest();
  await t.throwsAsync(engine.commit(txn([transition('t-0', S.ASSIGNED)])));
  await t.throwsAsync(engine.commit(txn([transition('t-0', S.RUNNING)])));
  t.is(failures.length, 1);
});

test('a small message that names one table many times (shared offsets) is malformed, not a hang', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const flatbuffers = await import('flatbuffers');
  const b = new flatbuffers.Builder(1024);
  const value = b.createString('v');
  const values = f.Attribute.createValuesVector(b, new Array(4000).fill(value));
  const attribute = f.Attribute.createAttribute(b, b.createString('rack'), values);
  const attributes = f.HostAttributes.createAttributesVector(b, new Array(4000).fill(attribute));
  const host = f.HostAttributes.createHostAttributes(b, b.createString('host-1'), attributes, f.MaintenanceMode.NONE, 0, 0n);
  const save = f.SaveHostAttributes.createSaveHostAttributes(b, f.SaveHostAttributes.createAttributesVector(b, [host]));
  const operation = f.Operation.createOperation(b, f.Op.SaveHostAttributes, save);
  b.finish(f.Transaction.createTransaction(b, 0, 0, 0, f.Transaction.createOpsVector(b, [operation])));
  const bytes = b.asUint8Array().slice();
  t.true(bytes.length < 64 * 1024, `${bytes.length} bytes name 16M strings`);
  const started = Date.now();
  const result = await commit(engine, bytes);
  t.is(result.error?.code, f.ErrorCode.INVALID_ARGUMENT);
  t.true(Date.now() - started < 10_000);
  t.is(engine.stats().revision, 0);
});

test('resource amounts must be finite, non-negative and exact', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  for (const cpus of [Number.NaN, Number.POSITIVE_INFINITY, -1, 2 ** 60]) {
    const result = await commit(engine, txn([upsert([task('t-0', jobConfig('www', 'prod', 'hello', { cpus }), 0)])]));
    t.is(result.error?.code, f.ErrorCode.INVALID_ARGUMENT, String(cpus));
  }
  const quota = await commit(engine, txn([op(f.Op.SaveQuota, make(f.SaveQuotaT, { role: 'www', quota: make(f.ResourceAggregateT, {
    resources: [make(f.ResourceT, { type: f.ResourceType.NUM_CPUS, numCpus: Number.NaN })] }) }))]));
  t.is(quota.error?.code, f.ErrorCode.INVALID_ARGUMENT);
  t.is(engine.stats().revision, 0);
});

test('task ids are bytes: an id that is not UTF-8 is refused, and deletes never decode ids', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const config = jobConfig('www', 'prod', 'hello');
  await commit(engine, txn([upsert([task('a\ufffd', config, 0)])]));
  const flatbuffers = await import('flatbuffers');
  const b = new flatbuffers.Builder(256);
  const id = b.createString(Uint8Array.from([0x61, 0xff]));
  const remove = f.DeleteTasks.createDeleteTasks(b, f.DeleteTasks.createTaskIdsVector(b, [id]), false);
  const operation = f.Operation.createOperation(b, f.Op.DeleteTasks, remove);
  b.finish(f.Transaction.createTransaction(b, 0, 0, 0, f.Transaction.createOpsVector(b, [operation])));
  const result = await commit(engine, b.asUint8Array().slice());
  t.is(result.error?.code, f.ErrorCode.INVALID_ARGUMENT);
  t.deepEqual((await tasks(engine)).tasks.map((x) => x.assignedTask!.taskId), ['a\ufffd']);
});

test('a transaction the arena cannot surely hold is RESOURCE_EXHAUSTED before anything is applied', async (t) => {
  const engine = await Engine.open({ readerThreads: 1, arenaBytesInitial: 4 * 1024 * 1024, arenaBytesMax: 8 * 1024 * 1024 });
  t.teardown(() => engine.close());
  const config = jobConfig('www', 'prod', 'hello');
  let stored = 0;
  let exhausted: f.TransactionResultT | null = null;
  for (let batch = 0; batch < 200 && exhausted === null; batch++) {
    const tasks = Array.from({ length: 200 }, (_, i) => task(`t-${batch}-${i}`, config, i));
    const result = await commit(engine, txn([upsert(tasks)]));
    if (result.error === null) stored += 200;
    else exhausted = result;
  }
  t.truthy(exhausted, 'the arena filled up');
  t.is(exhausted!.error!.code, f.ErrorCode.RESOURCE_EXHAUSTED);
  t.is((await tasks(engine, { limit: 1 })).total, stored);
  // The writer is alive: deletes (which need little room) still work.
  const removed = await commit(engine, txn([op(f.Op.DeleteTasks, make(f.DeleteTasksT, { taskIds: ['t-0-0', 't-0-1'] }))]));
  t.is(removed.error, null);
});

test('job update events with old timestamps copy each list node at most once per group', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const config = jobConfig('www', 'prod', 'hello');
  const key = make(f.JobUpdateKeyT, { job: make(f.JobKeyT, { role: 'www', environment: 'prod', name: 'hello' }), id: 'u1' });
  const update = make(f.JobUpdateT, { summary: make(f.JobUpdateSummaryT, { key, user: 'alice' }),
    instructions: make(f.JobUpdateInstructionsT, { desiredState: make(f.InstanceTaskConfigT, { task: config,
      instances: [make(f.RangeT, { first: 0, last: 9 })] }) }) });
  t.is((await commit(engine, txn([op(f.Op.SaveJobUpdate, make(f.SaveJobUpdateT, { update }))]))).error, null);
  const event = (ts: number) => op(f.Op.SaveJobInstanceUpdateEvent, make(f.SaveJobInstanceUpdateEventT, { key,
    event: make(f.JobInstanceUpdateEventT, { instanceId: 0, timestampMs: BigInt(ts), action: f.JobUpdateAction.INSTANCE_UPDATED }) }));
  const newer = Array.from({ length: 2000 }, (_, i) => event(1_000_000 + i));
  t.is((await commit(engine, txn(newer))).error, null);
  const usedBefore = engine.stats().arenaBytesUsed;
  const older = Array.from({ length: 2000 }, (_, i) => event(i)); // each older than all 2000 stored
  t.is((await commit(engine, txn(older))).error, null);
  const grown = engine.stats().arenaBytesUsed - usedBefore;
  t.true(grown < 2 * 1024 * 1024, `grew ${grown} bytes (a copy per insert would be ~64 MB)`);
  const response = decodeQueryResponse(await engine.query(query(f.Query.JobUpdateQuery, make(f.JobUpdateQueryT, {}))));
  const details = (response.result as f.JobUpdatesResultT).updates[0]!;
  t.is(details.instanceEvents.length, 4000);
  const stamps = details.instanceEvents.map((e) => Number(e.timestampMs));
  t.deepEqual(stamps, [...stamps].sort((a, b) => a - b));
});

test('quota consumption of fractional cpus stays exact through many adds and removes', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const keep = jobConfig('www', 'prod', 'keep', { cpus: 1 });
  await commit(engine, txn([upsert([task('keep', keep, 0, S.RUNNING)])]));
  for (let round = 0; round < 30; round++) {
    const config = jobConfig('www', 'prod', `job-${round % 3}`, { cpus: 0.1 * (1 + (round % 7)) });
    const ids = [`a-${round}`, `b-${round}`, `c-${round}`];
    await commit(engine, txn([upsert(ids.map((id, i) => task(id, config, i, S.RUNNING)))]));
    await commit(engine, txn([op(f.Op.DeleteTasks, make(f.DeleteTasksT, { taskIds: ids }))]));
  }
  const three = jobConfig('www', 'prod', 'three', { cpus: 0.1 });
  await commit(engine, txn([upsert([0, 1, 2].map((i) => task(`t-${i}`, three, i, S.RUNNING)))]));
  const quota = decodeQueryResponse(await engine.query(query(f.Query.QuotaQuery, make(f.QuotaQueryT, { role: 'www' }))));
  t.is((quota.result as f.QuotaResultT).prodShared!.numCpus, 1.3);
});
