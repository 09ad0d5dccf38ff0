/**
 * Change records for watch streams (workers/writer/changes.ts) through the Engine's onChanges, and write scopes
 * (Engine.commit's scope, checked by the planner): every op type's records as they are after the revision (equal
 * to what queries return), deletes with their keys, configs once at their first store, one record per revision, a
 * group's revisions each with its own state, replay after a reopen byte for byte (but timestamp_ms) and
 * historyFrom, a committed staged backup as a reset; scoped commits allowed and refused per op type, with nothing
 * applied and no change record when refused.
 */
import test from 'ava';
import * as flatbuffers from 'flatbuffers';
import { decodeQueryResponse, decodeTransactionResult } from '../core/codec.js';
import { Engine, type EngineOptions } from '../daemon/engine.js';
import { addFieldInt64Number } from '../core/record-encoder.js';
import type { ChangeRevision } from '../workers/writer/changes.js';
import { tempDir } from './support/durable.js';
import { f, jobConfig, make, op, query, task, taskQuery, transition, txn, upsert } from './support/build.js';

const S = f.ScheduleStatus;
const T = f.RecordTable;
const configA = jobConfig('www', 'prod', 'hello');
const configB = jobConfig('www', 'prod', 'cron', { data: '{"cron":1}' });
const configOther = jobConfig('other', 'prod', 'hello');
const quiet = { snapshot: { everyMs: 0, logBytes: 0, afterReplay: 0 }, backup: { everyMs: 0 } };

interface Watched { engine: Engine; changes: ChangeRevision[]; calls: number }

async function open(t: { teardown: (fn: () => Promise<void> | void) => void }, options: EngineOptions = {}):
  Promise<Watched> {
  const watched: Watched = { engine: null as unknown as Engine, changes: [], calls: 0 };
  watched.engine = await Engine.open({ readerThreads: 1, ...options, onChanges: (revisions) => {
    watched.calls++;
    watched.changes.push(...revisions);
  } });
  t.teardown(() => watched.engine.close());
  return watched;
}

const decode = (change: ChangeRevision): f.RevisionChangesT =>
  f.RevisionChanges.getRootAsRevisionChanges(new flatbuffers.ByteBuffer(change.bytes)).unpack();

/** Commits; returns the result and the change records that came with it (decoded). */
async function step(w: Watched, bytes: Uint8Array, scope: readonly string[] | null = null):
  Promise<{ result: f.TransactionResultT; added: f.RevisionChangesT[]; raw: ChangeRevision[] }> {
  const before = w.changes.length;
  const result = decodeTransactionResult(await w.engine.commit(bytes, scope));
  const raw = w.changes.slice(before);
  return { result, added: raw.map(decode), raw };
}

/** A commit that must take a revision and yield exactly its change record. */
async function one(t: { is: (a: unknown, b: unknown, m?: string) => void; fail: (m: string) => void }, w: Watched,
  bytes: Uint8Array): Promise<{ changes: f.RevisionChangesT; raw: ChangeRevision }> {
  const { result, added, raw } = await step(w, bytes);
  if (result.error !== null) t.fail(`commit failed: ${result.error.message}`);
  t.is(added.length, 1, 'one change record per revision');
  t.is(added[0]!.revision, result.revision);
  return { changes: added[0]!, raw: raw[0]! };
}

async function answer<R>(engine: Engine, bytes: Uint8Array): Promise<R> {
  const response = decodeQueryResponse(await engine.query(bytes));
  if (response.error !== null) throw new Error(`query failed: ${response.error.message}`);
  return response.result as R;
}

const hashOnly = (ids: string[]) => taskQuery({ taskIds: ids, configDetail: f.ConfigDetail.HASH_ONLY });
const hex = (bytes: number[]) => Buffer.from(bytes).toString('hex');
const jobKey = (role: string, environment: string, name: string) => make(f.JobKeyT, { role, environment, name });
const updateKey = (role: string, id: string) => make(f.JobUpdateKeyT, { job: jobKey(role, 'prod', 'hello'), id });
const deleteTasks = (ids: string[], ignoreMissing = false) =>
  op(f.Op.DeleteTasks, make(f.DeleteTasksT, { taskIds: ids, ignoreMissing }));
const saveCron = (role: string, config: f.TaskConfigT) => op(f.Op.SaveCronJob, make(f.SaveCronJobT, {
  job: make(f.JobConfigurationT, { key: jobKey(role, config.job!.environment as string, config.job!.name as string),
    cronSchedule: '*/5 * * * *', instanceCount: 2, taskConfig: config }) }));
const removeCron = (key: f.JobKeyT) => op(f.Op.RemoveCronJob, make(f.RemoveCronJobT, { key }));
const saveUpdate = (key: f.JobUpdateKeyT, config: f.TaskConfigT) => op(f.Op.SaveJobUpdate, make(f.SaveJobUpdateT, {
  update: make(f.JobUpdateT, { summary: make(f.JobUpdateSummaryT, { key, user: 'alice' }),
    instructions: make(f.JobUpdateInstructionsT, { desiredState: make(f.InstanceTaskConfigT, { task: config,
      instances: [make(f.RangeT, { first: 0, last: 3 })] }) }) }) }));
const updateEvent = (key: f.JobUpdateKeyT, status: f.JobUpdateStatus, ms: number) => op(f.Op.SaveJobUpdateEvent,
  make(f.SaveJobUpdateEventT, { key, event: make(f.JobUpdateEventT, { status, timestampMs: BigInt(ms), user: 'bob' }) }));
const instanceEvent = (key: f.JobUpdateKeyT, ms: number) => op(f.Op.SaveJobInstanceUpdateEvent,
  make(f.SaveJobInstanceUpdateEventT, { key, event: make(f.JobInstanceUpdateEventT, { instanceId: 1,
    timestampMs: BigInt(ms), action: f.JobUpdateAction.INSTANCE_UPDATING }) }));
const removeUpdates = (keys: f.JobUpdateKeyT[]) => op(f.Op.RemoveJobUpdates, make(f.RemoveJobUpdatesT, { keys }));
const saveQuota = (role: string, cpus: number) => op(f.Op.SaveQuota, make(f.SaveQuotaT, { role,
  quota: make(f.ResourceAggregateT, { resources: [make(f.ResourceT, { type: f.ResourceType.NUM_CPUS, numCpus: cpus })] }) }));
const removeQuota = (role: string) => op(f.Op.RemoveQuota, make(f.RemoveQuotaT, { role }));
const hostAttributes = (host: string, rack: string) => make(f.HostAttributesT, { host, mode: f.MaintenanceMode.NONE,
  attributes: [make(f.AttributeT, { name: 'rack', values: [rack] })] });
const saveHosts = (hosts: f.HostAttributesT[]) => op(f.Op.SaveHostAttributes, make(f.SaveHostAttributesT, { attributes: hosts }));
const saveMaintenance = (host: string) => op(f.Op.SaveMaintenanceRequest, make(f.SaveMaintenanceRequestT, {
  request: make(f.HostMaintenanceRequestT, { host, timeoutSecs: 60n, createdTimestampMs: 7n }) }));
const removeMaintenance = (host: string) => op(f.Op.RemoveMaintenanceRequest, make(f.RemoveMaintenanceRequestT, { host }));
const saveScheduler = (id: string) => op(f.Op.SaveSchedulerMetadata, make(f.SaveSchedulerMetadataT, {
  metadata: make(f.SchedulerMetadataT, { frameworkId: id, details: [make(f.KeyValueT, { key: 'v', value: '1' })] }) }));
const keyOf = (table: f.RecordTable, role = '', environment = '', jobName = '', taskId = '') =>
  ({ table, role, environment, jobName, taskId });

/** The bytes with timestamp_ms (field 1 of RevisionChanges, always written) set to 0. */
function withoutTimestamp(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  const bb = new flatbuffers.ByteBuffer(copy);
  const root = f.RevisionChanges.getRootAsRevisionChanges(bb);
  const field = bb.__offset(root.bb_pos, 6);
  if (field === 0) throw new Error('timestamp_ms is not written');
  bb.writeInt64(root.bb_pos + field, 0n);
  return copy;
}

// --------------------------------------------------------------------------------------------------------------

test('tasks: upsert, transition, noop transition, delete (with its job), each as queries give them', async (t) => {
  const w = await open(t);
  t.is(w.engine.historyFrom, 0);
  const before = Date.now();
  const created = await one(t, w, txn([upsert([task('t-0', configA, 0), task('t-1', configA, 1)])]));
  t.true(Number(created.changes.timestampMs) >= before && Number(created.changes.timestampMs) <= Date.now());
  t.false(created.changes.reset);
  t.deepEqual(created.changes.tasks.map((x) => [x.assignedTask!.taskId, x.modRevision, x.createRevision]),
    [['t-0', 1n, 1n], ['t-1', 1n, 1n]]);
  t.is(created.changes.tasks[0]!.assignedTask!.task, null, 'configs by hash, never inline');
  t.deepEqual(created.changes.tasks, (await answer<f.TasksResultT>(w.engine, hashOnly(['t-0', 't-1']))).tasks);
  t.is(created.changes.configs.length, 1, 'the config stored by this revision');
  t.deepEqual(created.changes.configs[0]!.hash, created.changes.tasks[0]!.assignedTask!.configHash);
  t.deepEqual(created.raw.keys, [keyOf(T.TASK, 'www', 'prod', 'hello', 't-0'), keyOf(T.TASK, 'www', 'prod', 'hello', 't-1')]);

  const moved = await one(t, w, txn([transition('t-0', S.ASSIGNED, { slaveHost: 'host-a', slaveId: 'agent-a',
    assignedPorts: [make(f.PortT, { name: 'http', port: 31000 })], message: 'assigned', scheduler: 'sched-1' })]));
  const t0 = moved.changes.tasks[0]!;
  t.is(moved.changes.tasks.length, 1);
  t.is(t0.status, S.ASSIGNED);
  t.is(t0.assignedTask!.slaveHost, 'host-a');
  t.deepEqual(t0.taskEvents.map((e) => [e.status, e.message, e.scheduler]),
    [[S.PENDING, 'created', null], [S.ASSIGNED, 'assigned', 'sched-1']]);
  t.deepEqual([t0.modRevision, t0.createRevision], [2n, 1n]);
  t.deepEqual(moved.changes.configs, [], 'a config stored before is not sent again');
  t.deepEqual(moved.changes.tasks, (await answer<f.TasksResultT>(w.engine, hashOnly(['t-0']))).tasks);

  const noop = await step(w, txn([transition('t-0', S.ASSIGNED)]));
  t.true(noop.result.ops[0]!.noop);
  t.deepEqual(noop.added, [], 'a noop transition has no revision and no change record');

  const deleted = await one(t, w, txn([deleteTasks(['t-1', 'nope'], true)]));
  t.deepEqual(deleted.changes.tasks, []);
  t.deepEqual(deleted.changes.tasksDeleted.map((r) => [r.taskId, r.job!.role, r.job!.environment, r.job!.name]),
    [['t-1', 'www', 'prod', 'hello']]);
  t.deepEqual(deleted.raw.keys, [keyOf(T.TASK, 'www', 'prod', 'hello', 't-1')]);
  t.is(w.changes.length, 3);
  t.deepEqual(w.changes.map((c) => c.revision), [1, 2, 3]);
});

test('cron jobs, job updates (whole, with state), quotas, hosts, maintenance, scheduler; noop removes add nothing', async (t) => {
  const w = await open(t);
  await one(t, w, txn([upsert([task('t-0', configA, 0)])]));
  const cron = await one(t, w, txn([saveCron('www', configB)]));
  t.is(cron.changes.cronJobs.length, 1);
  t.is(cron.changes.cronJobs[0]!.taskConfig, null);
  t.is(cron.changes.cronJobs[0]!.modRevision, 2n);
  t.deepEqual(cron.changes.configs.map((c) => hex(c.hash)), [hex(cron.changes.cronJobs[0]!.configHash)]);
  t.deepEqual(cron.changes.cronJobs, (await answer<f.CronJobsResultT>(w.engine, query(f.Query.CronJobsQuery,
    make(f.CronJobsQueryT, { role: 'www' })))).jobs);
  t.deepEqual(cron.raw.keys, [keyOf(T.CRON_JOB, 'www', 'prod', 'cron')]);
  const cronGone = await one(t, w, txn([removeCron(jobKey('www', 'prod', 'cron'))]));
  t.deepEqual(cronGone.changes.cronJobsDeleted.map((k) => [k.role, k.environment, k.name]), [['www', 'prod', 'cron']]);
  t.deepEqual((await step(w, txn([removeCron(jobKey('www', 'prod', 'cron'))]))).added, [], 'removing nothing: no record');

  const key = updateKey('www', 'u-1');
  const saved = await one(t, w, txn([saveUpdate(key, configA)]));
  const queryUpdate = query(f.Query.JobUpdateQuery, make(f.JobUpdateQueryT, { key, configDetail: f.ConfigDetail.HASH_ONLY }));
  t.deepEqual(saved.changes.jobUpdates, (await answer<f.JobUpdatesResultT>(w.engine, queryUpdate)).updates);
  t.deepEqual(saved.changes.configs, [], 'the update names a config stored before');
  const evented = await one(t, w, txn([updateEvent(key, f.JobUpdateStatus.ROLL_FORWARD_PAUSED, 50), instanceEvent(key, 60),
    updateEvent(key, f.JobUpdateStatus.ROLLING_FORWARD, 40)]));
  t.is(evented.changes.jobUpdates.length, 1, 'one record however many of its events the revision added');
  const details = evented.changes.jobUpdates[0]!;
  t.deepEqual(details.updateEvents.map((e) => e.timestampMs), [40n, 50n]);
  t.deepEqual(details.instanceEvents.map((e) => e.timestampMs), [60n]);
  t.deepEqual([details.update!.summary!.state!.status, details.update!.summary!.state!.createdTimestampMs,
    details.update!.summary!.state!.lastModifiedTimestampMs], [f.JobUpdateStatus.ROLL_FORWARD_PAUSED, 40n, 60n]);
  t.deepEqual(evented.changes.jobUpdates, (await answer<f.JobUpdatesResultT>(w.engine, queryUpdate)).updates);
  t.deepEqual(evented.raw.keys, [keyOf(T.JOB_UPDATE, 'www', 'prod', 'hello')]);
  const removed = await one(t, w, txn([removeUpdates([key, updateKey('www', 'never-was')])]));
  t.deepEqual(removed.changes.jobUpdatesDeleted.map((k) => k.id), ['u-1'], 'only the update that existed');
  t.deepEqual(removed.changes.jobUpdates, []);

  const quota = await one(t, w, txn([saveQuota('www', 4)]));
  const quotaResult = await answer<f.QuotaResultT>(w.engine, query(f.Query.QuotaQuery, make(f.QuotaQueryT, { role: 'www' })));
  t.deepEqual(quota.changes.quotas.map((q) => [q.role, q.modRevision]), [['www', quotaResult.quotaRevision]]);
  t.deepEqual(quota.changes.quotas[0]!.quota, quotaResult.quota);
  t.deepEqual(quota.raw.keys, [keyOf(T.QUOTA, 'www')]);
  t.deepEqual((await one(t, w, txn([removeQuota('www')]))).changes.quotasDeleted, ['www']);
  t.deepEqual((await step(w, txn([removeQuota('www')]))).added, []);

  const hosts = await one(t, w, txn([saveHosts([hostAttributes('h1', 'r1'), hostAttributes('h2', 'r1')])]));
  t.deepEqual(hosts.changes.hosts, (await answer<f.HostAttributesResultT>(w.engine, query(f.Query.HostAttributesQuery,
    make(f.HostAttributesQueryT, {})))).hosts);
  t.deepEqual(hosts.raw.keys, [keyOf(T.HOST_ATTRIBUTES), keyOf(T.HOST_ATTRIBUTES)]);
  const oneHost = await one(t, w, txn([saveHosts([hostAttributes('h1', 'r1'), hostAttributes('h2', 'r2')])]));
  t.deepEqual(oneHost.changes.hosts.map((h) => h.host), ['h2'], 'only hosts whose attributes changed');
  t.deepEqual((await step(w, txn([saveHosts([hostAttributes('h1', 'r1')])]))).added, [], 'identical attributes: noop');

  const maintenance = await one(t, w, txn([saveMaintenance('h1')]));
  t.deepEqual(maintenance.changes.maintenance, (await answer<f.MaintenanceResultT>(w.engine,
    query(f.Query.MaintenanceQuery, make(f.MaintenanceQueryT, {})))).requests);
  t.deepEqual(maintenance.raw.keys, [keyOf(T.MAINTENANCE_REQUEST)]);
  t.deepEqual((await one(t, w, txn([removeMaintenance('h1')]))).changes.maintenanceDeleted, ['h1']);
  t.deepEqual((await step(w, txn([removeMaintenance('h1')]))).added, []);

  const scheduler = await one(t, w, txn([saveScheduler('framework-1')]));
  t.deepEqual(scheduler.changes.scheduler, (await answer<f.SchedulerResultT>(w.engine,
    query(f.Query.SchedulerQuery, make(f.SchedulerQueryT, {})))).metadata);
  t.deepEqual(scheduler.raw.keys, [keyOf(T.SCHEDULER)]);
  t.deepEqual((await step(w, txn([saveScheduler('framework-1')]))).added, [], 'the same metadata again: noop');
  t.deepEqual(w.changes.map((c) => c.revision), Array.from({ length: w.changes.length }, (_, i) => i + 1));
});

test('configs appear once, at their first store; one stored and dropped in the same revision does not', async (t) => {
  const w = await open(t);
  const first = await one(t, w, txn([upsert([task('t-0', configA, 0)])]));
  t.is(first.changes.configs.length, 1);
  const hash = first.changes.configs[0]!.hash;
  const stored = f.TaskConfig.getRootAsTaskConfig(new flatbuffers.ByteBuffer(Uint8Array.from(first.changes.configs[0]!.bytes)));
  t.is(stored.job()!.name(), 'hello', 'the canonical config bytes, a nested TaskConfig');
  t.deepEqual((await one(t, w, txn([upsert([task('t-1', configA, 1)])]))).changes.configs, [], 'inline again');
  const byHash = make(f.ScheduledTaskT, { assignedTask: make(f.AssignedTaskT, { taskId: 't-2', instanceId: 2, configHash: hash }) });
  t.deepEqual((await one(t, w, txn([upsert([byHash])]))).changes.configs, [], 'by hash');
  // Transaction.configs: stored when an op names it.
  const configC = jobConfig('www', 'prod', 'other-job');
  const hashed = await one(t, w, txn([upsert([task('t-3', configC, 0)])]));
  t.is(hashed.changes.configs.length, 1);
  const cHash = hashed.changes.configs[0]!.hash;
  // Stored and dropped in one transaction: nothing names it after the revision, so it is not sent.
  const configD = jobConfig('www', 'prod', 'brief');
  const brief = await one(t, w, txn([upsert([task('t-4', configD, 0)]), deleteTasks(['t-4'])]));
  t.deepEqual(brief.changes.configs, []);
  t.deepEqual(brief.changes.tasks, []);
  t.deepEqual(brief.changes.tasksDeleted.map((r) => [r.taskId, r.job!.name]), [['t-4', 'brief']]);
  // The last task of config C goes (the config with it); storing C again is a first store again.
  await one(t, w, txn([deleteTasks(['t-3'])]));
  const again = await one(t, w, txn([upsert([make(f.ScheduledTaskT, { assignedTask: make(f.AssignedTaskT, {
    taskId: 't-5', instanceId: 0, configHash: cHash }) })])], { configs: [configC] }));
  t.deepEqual(again.changes.configs.map((c) => hex(c.hash)), [hex(cHash)]);
});

test('a group: each revision with its own state of a task; a task once per revision; bytes share one buffer', async (t) => {
  const w = await open(t);
  await one(t, w, txn([upsert([task('t-old', configA, 9)])]));
  const callsBefore = w.calls;
  const results = await Promise.all([
    w.engine.commit(txn([upsert([task('t-a', configA, 0)])])),
    w.engine.commit(txn([transition('t-a', S.ASSIGNED, { message: 'm1' })])),
    w.engine.commit(txn([transition('t-a', S.RUNNING, { message: 'm2' })])),
    w.engine.commit(txn([upsert([task('t-b', configA, 1)]), transition('t-b', S.ASSIGNED), transition('t-b', S.RUNNING),
      transition('t-a', S.FINISHED)])),
    w.engine.commit(txn([deleteTasks(['t-old']), upsert([task('t-old', configOther, 9)])])),
    w.engine.commit(txn([transition('t-a', S.FINISHED)])), // noop: already FINISHED
  ]);
  t.true(results.every((r) => decodeTransactionResult(r).error === null));
  t.is(w.calls, callsBefore + 1, 'one message for the group');
  const group = w.changes.slice(1);
  t.deepEqual(group.map((c) => c.revision), [2, 3, 4, 5, 6]);
  t.true(group.every((c) => c.bytes.buffer === group[0]!.bytes.buffer), 'one transferred buffer');
  t.true(group.every((c) => c.bytes.byteOffset % 8 === 0), 'every revision 8-aligned');
  const states = group.map(decode).map((c) => c.tasks.map((x) => [x.assignedTask!.taskId, x.status, x.taskEvents.length,
    x.modRevision]));
  t.deepEqual(states, [
    [['t-a', S.PENDING, 1, 2n]],
    [['t-a', S.ASSIGNED, 2, 3n]],
    [['t-a', S.RUNNING, 3, 4n]],
    [['t-b', S.RUNNING, 3, 5n], ['t-a', S.FINISHED, 4, 5n]],
    [['t-old', S.PENDING, 1, 6n]],
  ]);
  const replaced = decode(group[4]!);
  t.deepEqual(replaced.tasksDeleted, [], 'deleted and created again: it exists after the revision');
  t.deepEqual(group[4]!.keys, [keyOf(T.TASK, 'other', 'prod', 'hello', 't-old')]);
  t.is(replaced.configs.length, 1);
});

test('replay after a reopen gives the same bytes but timestamp_ms; historyFrom is the snapshot loaded', async (t) => {
  const dataDir = tempDir(t, 'changes');
  const live = new Map<number, ChangeRevision>();
  const run = async (w: Watched, round: number) => {
    const key = updateKey('www', `u-${round}`);
    const transactions = [
      txn([upsert([task(`r${round}-0`, configA, 0), task(`r${round}-1`, jobConfig('www', 'prod', `j${round}`), 1)])]),
      txn([transition(`r${round}-0`, S.ASSIGNED, { slaveHost: `host-${round}` })]),
      txn([transition(`r${round}-0`, S.ASSIGNED)]), // noop
      txn([transition(`r${round}-0`, S.RUNNING)], { idempotency: make(f.IdempotencyKeyT, { clientId: 'c', sequence: BigInt(round) }) }),
      txn([transition('missing', S.RUNNING)], { idempotency: make(f.IdempotencyKeyT, { clientId: 'c', sequence: 100n + BigInt(round) }) }),
      txn([saveCron('www', configB), saveUpdate(key, configA), updateEvent(key, f.JobUpdateStatus.ROLLING_FORWARD, 5)]),
      txn([instanceEvent(key, 9), saveQuota('www', round + 1), saveHosts([hostAttributes('h1', `r${round}`)])]),
      txn([saveMaintenance('h1'), saveScheduler(`fw-${round}`), deleteTasks([`r${round}-1`])]),
      txn([removeMaintenance('h1'), removeQuota('www'), removeCron(jobKey('www', 'prod', 'cron')), removeUpdates([key])]),
    ];
    for (const bytes of transactions) await w.engine.commit(bytes);
    await Promise.all(transactions.slice(3, 5).map((bytes) => w.engine.commit(bytes))); // duplicates
  };
  const remember = (w: Watched) => { for (const c of w.changes) live.set(c.revision, c); };
  const same = (replayed: ChangeRevision[]) => {
    for (const c of replayed) {
      t.deepEqual(withoutTimestamp(c.bytes), withoutTimestamp(live.get(c.revision)!.bytes), `revision ${c.revision}`);
      t.deepEqual(c.keys, live.get(c.revision)!.keys);
    }
  };

  let w = await open(t, { dataDir, ...quiet });
  await run(w, 0);
  remember(w);
  const firstEnd = w.engine.stats().revision;
  await w.engine.close();
  w = await open(t, { dataDir, ...quiet });
  t.is(w.engine.historyFrom, 0, 'no snapshot: the whole log was replayed');
  t.deepEqual(w.changes.map((c) => c.revision), Array.from({ length: firstEnd }, (_, i) => i + 1),
    'every revision, in order, before open() resolved');
  same(w.changes);
  const snap = await w.engine.snapshot();
  w.changes.length = 0;
  await run(w, 1);
  remember(w);
  const secondEnd = w.engine.stats().revision;
  await w.engine.close();
  w = await open(t, { dataDir, ...quiet });
  t.is(w.engine.historyFrom, snap.revision);
  t.deepEqual(w.changes.map((c) => c.revision), Array.from({ length: secondEnd - snap.revision }, (_, i) => snap.revision + i + 1));
  same(w.changes);
  const next = await one(t, w, txn([transition('r1-0', S.FINISHED)]));
  t.is(next.changes.revision, BigInt(secondEnd + 1));
});

test('a committed staged backup is a reset record, live and replayed; the engine reopens after it', async (t) => {
  const dataDir = tempDir(t, 'changes-restore');
  const w = await open(t, { dataDir, ...quiet });
  await one(t, w, txn([upsert([task('a-0', configA, 0)])]));
  await w.engine.backup();
  await one(t, w, txn([upsert([task('b-0', configA, 1)])]));
  await w.engine.stageBackup(w.engine.listBackups()[0]!.name);
  const { revision } = await w.engine.commitStaged();
  const reset = w.changes.at(-1)!;
  t.is(reset.revision, revision);
  t.true(reset.reset);
  t.deepEqual(reset.keys, []);
  const decoded = decode(reset);
  t.true(decoded.reset);
  t.is(decoded.revision, BigInt(revision));
  t.deepEqual([decoded.tasks, decoded.tasksDeleted, decoded.configs, decoded.scheduler], [[], [], [], null]);
  const reopened = await open(t, { dataDir, ...quiet });
  t.is(reopened.engine.historyFrom, 0);
  t.deepEqual(reopened.changes.map((c) => [c.revision, c.reset]), [[1, false], [2, false], [3, true]]);
  t.deepEqual(withoutTimestamp(reopened.changes[2]!.bytes), withoutTimestamp(reset.bytes));
  const after = await one(t, reopened, txn([transition('a-0', S.ASSIGNED)]));
  t.is(after.changes.revision, BigInt(revision + 1));
});

test('bad input and failed transactions give no change record; an engine without onChanges works alike', async (t) => {
  const w = await open(t);
  await one(t, w, txn([upsert([task('t-0', configA, 0, S.RUNNING)])]));
  const bad = [
    new Uint8Array([1, 2, 3]),
    txn([transition('t-0', 8 as f.ScheduleStatus)]),
    txn([transition('t-0', S.KILLING), transition('nope', S.KILLED)]),
    txn([upsert([task('t-1', configA, 1)])], { preconditions: [make(f.PreconditionT, { table: T.TASK,
      kind: f.PreconditionKind.ABSENT, taskId: 't-0' })] }),
    txn([saveHosts([hostAttributes('', 'r')])]),
    txn([removeUpdates([updateKey('w w', 'x')])]),
  ];
  for (const bytes of bad) {
    const { result, added } = await step(w, bytes);
    t.not(result.error, null);
    t.deepEqual(added, []);
  }
  let seed = 7;
  const good = txn([upsert([task('t-2', configA, 2)]), transition('t-0', S.FINISHED)]);
  for (let i = 0; i < 200; i++) {
    const bytes = good.slice();
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    bytes[seed % bytes.length] = seed >>> 24;
    const { result, added } = await step(w, bytes);
    t.is(added.length, result.error === null && result.ops.some((o) => !o.noop) ? 1 : 0);
    if (added.length === 1) t.is(added[0]!.revision, result.revision);
  }
  t.deepEqual(w.changes.map((c) => c.revision), Array.from({ length: w.changes.length }, (_, i) => i + 1));
  const plain = await Engine.open({ readerThreads: 1 });
  t.teardown(() => plain.close());
  t.is(decodeTransactionResult(await plain.commit(txn([upsert([task('t-0', configA, 0)])]))).revision, 1n);
  t.is(plain.historyFrom, 0);
});

// --------------------------------------------------------------------------------------------------------------
// Write scopes

async function scoped(t: { teardown: (fn: () => Promise<void> | void) => void }): Promise<Watched> {
  const w = await open(t);
  const setup = txn([
    upsert([task('w-0', configA, 0), task('w-1', configA, 1), task('o-0', configOther, 0), task('o-1', configOther, 1)]),
    saveCron('www', configB), saveCron('other', jobConfig('other', 'prod', 'cron')),
    saveUpdate(updateKey('www', 'u'), configA), saveUpdate(updateKey('other', 'u'), configOther),
    saveQuota('www', 1), saveQuota('other', 1), saveHosts([hostAttributes('h1', 'r1')]), saveMaintenance('h1'),
  ]);
  const result = decodeTransactionResult(await w.engine.commit(setup));
  if (result.error !== null) throw new Error(String(result.error.message));
  return w;
}

test('a write scope allows every op and precondition on its roles\' records', async (t) => {
  const w = await scoped(t);
  const www = ['www'];
  const allowed: [string, Uint8Array][] = [
    ['upsert new', txn([upsert([task('w-9', configA, 9)])])],
    ['upsert replacing', txn([upsert([task('w-0', configA, 0, S.ASSIGNED)])])],
    ['transition', txn([transition('w-1', S.ASSIGNED)])],
    ['created then moved', txn([upsert([task('w-8', configA, 8)]), transition('w-8', S.ASSIGNED)])],
    ['delete', txn([deleteTasks(['w-9', 'o-missing'], true)])],
    ['cron', txn([saveCron('www', configB), removeCron(jobKey('www', 'prod', 'cron'))])],
    ['update', txn([updateEvent(updateKey('www', 'u'), f.JobUpdateStatus.ROLLING_FORWARD, 1),
      instanceEvent(updateKey('www', 'u'), 2), removeUpdates([updateKey('www', 'u')])])],
    ['quota', txn([saveQuota('www', 2), removeQuota('www')])],
    ['preconditions', txn([transition('w-0', S.RUNNING)], { preconditions: [
      make(f.PreconditionT, { table: T.TASK, kind: f.PreconditionKind.PRESENT, taskId: 'w-0' }),
      make(f.PreconditionT, { table: T.TASK, kind: f.PreconditionKind.ABSENT, taskId: 'nobody' }),
      make(f.PreconditionT, { table: T.QUOTA, kind: f.PreconditionKind.ABSENT, role: 'www' }),
      make(f.PreconditionT, { table: T.CRON_JOB, kind: f.PreconditionKind.ABSENT, job: jobKey('www', 'prod', 'cron') }),
    ] })],
  ];
  for (const [name, bytes] of allowed) {
    const { result, added } = await step(w, bytes, www);
    t.is(result.error, null, name);
    t.is(added.length, 1, name);
  }
  t.is(decodeTransactionResult(await w.engine.commit(txn([transition('o-0', S.ASSIGNED)]), ['other', 'www'])).error, null,
    'a scope of several roles');
  t.is(decodeTransactionResult(await w.engine.commit(txn([saveHosts([hostAttributes('h2', 'r')])]), null)).error, null,
    'no scope: everything');
});

test('a write scope refuses every op and precondition on another role\'s records, or on records without a role', async (t) => {
  const w = await scoped(t);
  const state = async () => JSON.stringify((await answer<f.TasksResultT>(w.engine, hashOnly([]))).tasks.map((x) =>
    [x.assignedTask!.taskId, x.status, String(x.modRevision)]));
  const before = await state();
  const revision = w.engine.stats().revision;
  const precondition = (fields: Partial<f.PreconditionT>) => make(f.PreconditionT, { kind: f.PreconditionKind.PRESENT, ...fields });
  const first = transition('w-0', S.ASSIGNED); // allowed, and not applied when a later op is refused
  const refused: [string, Uint8Array, number, number][] = [
    ['upsert of another role', txn([first, upsert([task('o-9', configOther, 9)])]), 1, -1],
    ['upsert replacing another role\'s task', txn([first, upsert([task('o-0', configA, 0)])]), 1, -1],
    ['transition of another role\'s task', txn([first, transition('o-0', S.ASSIGNED)]), 1, -1],
    ['delete of another role\'s task', txn([first, deleteTasks(['o-1'])]), 1, -1],
    ['save cron', txn([first, saveCron('other', jobConfig('other', 'prod', 'cron'))]), 1, -1],
    ['remove cron', txn([first, removeCron(jobKey('other', 'prod', 'cron'))]), 1, -1],
    ['save update', txn([first, saveUpdate(updateKey('other', 'u2'), configOther)]), 1, -1],
    ['update event', txn([first, updateEvent(updateKey('other', 'u'), f.JobUpdateStatus.ROLLING_FORWARD, 3)]), 1, -1],
    ['instance event', txn([first, instanceEvent(updateKey('other', 'u'), 3)]), 1, -1],
    ['remove updates', txn([first, removeUpdates([updateKey('www', 'u'), updateKey('other', 'u')])]), 1, -1],
    ['save quota', txn([first, saveQuota('other', 9)]), 1, -1],
    ['remove quota', txn([first, removeQuota('other')]), 1, -1],
    ['host attributes', txn([first, saveHosts([hostAttributes('h1', 'r9')])]), 1, -1],
    ['save maintenance', txn([first, saveMaintenance('h2')]), 1, -1],
    ['remove maintenance', txn([first, removeMaintenance('h1')]), 1, -1],
    ['scheduler', txn([first, saveScheduler('fw')]), 1, -1],
    ['task precondition', txn([first], { preconditions: [precondition({ table: T.TASK, taskId: 'w-0' }),
      precondition({ table: T.TASK, taskId: 'o-0' })] }), -1, 1],
    ['cron precondition', txn([first], { preconditions: [precondition({ table: T.CRON_JOB, kind: f.PreconditionKind.ABSENT,
      job: jobKey('other', 'prod', 'nothing') })] }), -1, 0],
    ['update precondition', txn([first], { preconditions: [precondition({ table: T.JOB_UPDATE, updateKey: updateKey('other', 'u') })] }), -1, 0],
    ['quota precondition', txn([first], { preconditions: [precondition({ table: T.QUOTA, role: 'other' })] }), -1, 0],
    ['host precondition', txn([first], { preconditions: [precondition({ table: T.HOST_ATTRIBUTES, host: 'h1' })] }), -1, 0],
    ['maintenance precondition', txn([first], { preconditions: [precondition({ table: T.MAINTENANCE_REQUEST, host: 'h1' })] }), -1, 0],
    ['scheduler precondition', txn([first], { preconditions: [precondition({ table: T.SCHEDULER, kind: f.PreconditionKind.ABSENT })] }), -1, 0],
  ];
  for (const [name, bytes, opIndex, preconditionIndex] of refused) {
    const { result, added } = await step(w, bytes, ['www']);
    t.is(result.error?.code, f.ErrorCode.PERMISSION_DENIED, name);
    t.is(result.error?.opIndex, opIndex, name);
    t.is(result.error?.preconditionIndex, preconditionIndex, name);
    t.is(result.revision, 0n, name);
    t.deepEqual(added, [], name);
  }
  t.is(w.engine.stats().revision, revision, 'nothing applied');
  t.is(await state(), before);
  // An empty scope allows no record; a missing task is NOT_FOUND whoever asks; bad bytes stay INVALID_ARGUMENT.
  t.is(decodeTransactionResult(await w.engine.commit(txn([first]), [])).error?.code, f.ErrorCode.PERMISSION_DENIED);
  t.is(decodeTransactionResult(await w.engine.commit(txn([transition('o-missing', S.RUNNING)]), ['www'])).error?.code,
    f.ErrorCode.NOT_FOUND);
  t.is(decodeTransactionResult(await w.engine.commit(new Uint8Array([9, 9, 9]), ['www'])).error?.code,
    f.ErrorCode.INVALID_ARGUMENT);
  t.is(decodeTransactionResult(await w.engine.commit(txn([first]), ['w w', ''])).error?.code, f.ErrorCode.PERMISSION_DENIED);
  const keyed = txn([first], { idempotency: make(f.IdempotencyKeyT, { clientId: 'scoped', sequence: 1n }) });
  t.is(decodeTransactionResult(await w.engine.commit(keyed, ['www'])).error, null, 'scopes mix within one group');
  t.is(w.engine.stats().revision, revision + 1);
});

test('a job update is sent whole with every event, whatever the size; revisions of a group stay intact', async (t) => {
  const w = await open(t);
  const key = updateKey('www', 'big');
  await one(t, w, txn([saveUpdate(key, configA)]));
  const events = Array.from({ length: 3000 }, (_, i) => instanceEvent(key, 1000 + i));
  const big = await one(t, w, txn(events));
  t.true(big.raw.bytes.length > 64 * 1024, `${big.raw.bytes.length} bytes`);
  t.is(big.changes.jobUpdates[0]!.instanceEvents.length, 3000);
  const [a, b] = await Promise.all([w.engine.commit(txn([instanceEvent(key, 5)])), w.engine.commit(txn(events.slice(0, 10)))]);
  const revisions = w.changes.slice(-2).map(decode);
  t.deepEqual(revisions.map((r) => r.revision), [decodeTransactionResult(a).revision, decodeTransactionResult(b).revision]);
  t.deepEqual(revisions.map((r) => r.jobUpdates[0]!.instanceEvents.length), [3001, 3011]);
  t.is(revisions[0]!.jobUpdates[0]!.instanceEvents[0]!.timestampMs, 5n, 'events oldest first');
});

test('addFieldInt64Number writes the bytes the generated BigInt adder writes', (t) => {
  for (const value of [1, -1, 7, 2 ** 31, -(2 ** 31), 2 ** 32, -(2 ** 32) - 5, 1_764_000_000_000, 2 ** 53 - 1, -(2 ** 53) + 1, 0]) {
    const bytes = (write: (b: flatbuffers.Builder) => void) => {
      const b = new flatbuffers.Builder(16);
      b.startObject(3);
      b.addFieldInt32(0, 9, 0);
      write(b);
      b.finish(b.endObject());
      return b.asUint8Array().slice();
    };
    t.deepEqual(bytes((b) => addFieldInt64Number(b, 2, value)), bytes((b) => b.addFieldInt64(2, BigInt(value), 0n)), `${value}`);
  }
  t.throws(() => addFieldInt64Number(new flatbuffers.Builder(16), 0, 0.5));
});
