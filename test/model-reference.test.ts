/**
 * Hand-written cases for the reference model (test/model/reference.ts): each operation, each precondition kind,
 * idempotent replay, the no-op rules, config counting, and each query's order and paging. Owner: tests only.
 * Invariants: every expectation here is read off docs/semantics.md (or a choice listed at the top of
 * reference.ts), never off the model's own output.
 */
import test, { ExecutionContext } from 'ava';
import {
  ConfigDetail, CoordinatorSlaPolicyT, CronCollisionPolicy, CronJobsQueryT, CronJobsResultT, ErrorCode,
  HostAttributesQueryT, HostAttributesResultT, HostMaintenanceRequestT, JobInstanceUpdateEventT, JobKeysQueryT,
  JobUpdateSettingsT, RangeT,
  JobKeysResultT, JobSummaryQueryT, JobSummaryResultT, JobUpdateAction, JobUpdateStatus, JobUpdatesResultT,
  MaintenanceMode, MaintenanceQueryT, MaintenanceResultT, PortT, PreconditionKind, QueryRequestT, QueryResponseT,
  QuotaQueryT, QuotaResultT, RecordTable, ResourceType, Result, RoleSummaryQueryT, RoleSummaryResultT,
  ScheduleStatus, SchedulerQueryT, SchedulerResultT, SlaPolicy, TaskConfigT, TasksResultT, TransactionResultT,
  TransactionT,
} from '../core/fbs/strata.js';
import { canonicalConfig, decodeConfig } from '../core/config.js';
import {
  cronJob, hashHexOf, hashOf, hostAttributes, instanceConfig, instanceEvent, jobKey, jobUpdate, jobUpdateQuery, ops,
  precondition, request, resource, scheduledTask, taskConfig, taskEvent, taskQuery, transaction, updateEvent,
  updateKey,
} from './model/build.js';
import { Generator } from './model/generate.js';
import { describe, normalizeQueryResponse, normalizeTransactionResult } from './model/normalize.js';
import { ReferenceModel } from './model/reference.js';
import { copyConfig } from './model/reference-state.js';

const S = ScheduleStatus;
type S = ScheduleStatus;
const www = jobKey('www-data', 'prod', 'hello');
const wwwDevel = jobKey('www-data', 'devel', 'hello');
const ads = jobKey('ads', 'prod', 'serve');
const configA = taskConfig(www, { cpus: 1 });
const configB = taskConfig(www, { cpus: 2, production: true });
const configAds = taskConfig(ads, { cpus: 0.5, production: true, dedicated: 'value', gpus: 1 });

function commitOk(t: ExecutionContext, model: ReferenceModel, txn: TransactionT): TransactionResultT {
  const result = model.commit(txn);
  t.is(result.error, null, `unexpected error ${result.error?.code}: ${String(result.error?.message)}`);
  return result;
}

function commitError(t: ExecutionContext, model: ReferenceModel, txn: TransactionT, code: ErrorCode,
  opIndex = -1, preconditionIndex = -1): void {
  const revision = model.revision;
  const result = model.commit(txn);
  t.truthy(result.error, 'expected an error');
  t.is(result.error?.code, code, String(result.error?.message));
  t.is(result.error?.opIndex, opIndex);
  t.is(result.error?.preconditionIndex, preconditionIndex);
  t.is(result.revision, 0n);
  t.deepEqual(result.ops, []);
  t.is(result.error?.revision, BigInt(revision));
  t.is(model.revision, revision, 'an error must not use a revision');
}

function queryResult<T>(model: ReferenceModel, query: QueryRequestT, type: Result): T {
  const response = model.query(query);
  if (response.error !== null) throw new Error(`query failed: ${String(response.error.message)}`);
  if (response.resultType !== type) throw new Error(`result type ${response.resultType}, expected ${type}`);
  return response.result as T;
}

function tasks(model: ReferenceModel, fields: Parameters<typeof taskQuery>[0] = {}): TasksResultT {
  return queryResult<TasksResultT>(model, taskQuery(fields), Result.TasksResult);
}

function taskIdsOf(result: TasksResultT): string[] {
  return result.tasks.map((task) => String(task.assignedTask?.taskId));
}

function seeded(t: ExecutionContext): ReferenceModel {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.upsert(
    scheduledTask('t-1', configA, { status: S.RUNNING, instanceId: 0, slaveHost: 'host-a' }),
    scheduledTask('t-2', configA, { status: S.PENDING, instanceId: 1 }),
    scheduledTask('t-3', configB, { status: S.FINISHED, instanceId: 2, slaveHost: 'host-b' }),
    scheduledTask('t-4', configAds, { status: S.ASSIGNED, instanceId: 0, slaveHost: 'host-a' }),
  )]));
  return model;
}

test('the empty store is at revision 0 and every query is empty', (t) => {
  const model = new ReferenceModel();
  t.is(model.revision, 0);
  t.is(model.configCount(), 0);
  const result = tasks(model);
  t.deepEqual(result.tasks, []);
  t.is(result.total, 0);
  t.is(model.query(taskQuery()).revision, 0n);
  t.is(queryResult<SchedulerResultT>(model, request(new SchedulerQueryT()), Result.SchedulerResult).metadata, null);
  t.deepEqual(queryResult<RoleSummaryResultT>(model, request(new RoleSummaryQueryT()), Result.RoleSummaryResult)
    .roles, []);
});

test('UpsertTasks with an inline config stores the task by hash, with revisions', (t) => {
  const model = new ReferenceModel();
  const result = commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA,
    { status: S.PENDING, events: [taskEvent(10, S.INIT), taskEvent(11, S.PENDING, '')], slaveHost: '' }))]));
  t.is(result.revision, 1n);
  t.is(result.ops.length, 1);
  t.is(result.ops[0]?.noop, false);
  t.is(result.ops[0]?.count, 1);
  t.is(model.configCount(), 1);
  const found = tasks(model);
  const task = found.tasks[0];
  t.is(task?.assignedTask?.task, null, 'no inline config in results');
  t.deepEqual(task?.assignedTask?.configHash, hashOf(configA));
  t.is(task?.assignedTask?.slaveHost, null, 'empty strings are absent');
  t.is(task?.taskEvents[1]?.message, null);
  t.is(task?.modRevision, 1n);
  t.is(task?.createRevision, 1n);
  const expected = canonicalConfig(copyConfig(configA));
  t.deepEqual(found.configs.map((config) => Buffer.from(config.hash).toString('hex')), [expected.hashHex]);
  t.deepEqual(found.configs[0]?.bytes, Array.from(expected.bytes));
});

test('configs by hash: Transaction.configs, stored ones, unknown ones, both or neither', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', hashOf(configA)))],
    { configs: [configA, configB] }));
  t.is(model.configCount(), 1, 'an unused config of Transaction.configs is not stored');
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-2', hashOf(configA)))]));
  t.is(model.configCount(), 1);
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-3', hashOf(configB)))]), ErrorCode.NOT_FOUND, 0);
  const both = scheduledTask('t-3', configA);
  both.assignedTask!.configHash = hashOf(configA);
  commitError(t, model, transaction([ops.upsert(both)]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-3', hashOf(configA).slice(1)))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  const neither = scheduledTask('t-3', []);
  commitError(t, model, transaction([ops.delete(['t-1']), ops.upsert(neither)]), ErrorCode.INVALID_ARGUMENT, 1);
  const badJob = taskConfig(jobKey('bad role', 'prod', 'x'));
  commitError(t, model, transaction([], { configs: [badJob] }), ErrorCode.INVALID_ARGUMENT, -1);
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-3', badJob))]), ErrorCode.INVALID_ARGUMENT, 0);
});

test('a hash resolves against configs stored before the transaction, even after an earlier op freed it', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA))]));
  commitOk(t, model, transaction([ops.delete(['t-1']), ops.upsert(scheduledTask('t-2', hashOf(configA)))]));
  t.is(model.configCount(), 1);
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-3', configB)),
    ops.upsert(scheduledTask('t-4', hashOf(configB)))]), ErrorCode.NOT_FOUND, 1);
});

test('replacing a task keeps create_revision and moves the config reference', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA))]));
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-2', configA))]));
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configB, { status: S.RUNNING }))]));
  t.is(model.configCount(), 2);
  const task = tasks(model, { taskIds: ['t-1'] }).tasks[0];
  t.is(task?.createRevision, 1n);
  t.is(task?.modRevision, 3n);
  t.is(task?.status, S.RUNNING);
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-2', configB))]));
  t.is(model.configCount(), 1, 'configA lost its last reference');
  const again = commitOk(t, model, transaction([ops.upsert(scheduledTask('t-2', configB))]));
  t.is(again.revision, 5n, 'an identical upsert is still a write');
});

test('UpsertTasks validation: each problem is INVALID_ARGUMENT at its op index, and nothing applies', (t) => {
  const model = new ReferenceModel();
  const good = ops.upsert(scheduledTask('ok', configA));
  const cases = [
    ops.upsert(scheduledTask('t-1', configA), scheduledTask('t-1', configA)),
    ops.upsert(scheduledTask('t-1', configA, { instanceId: -1 })),
    ops.upsert(scheduledTask('t-1', configA, { status: 8 as S })),
    ops.upsert(scheduledTask('t-1', configA, { events: [taskEvent(1, 10 as S)] })),
    ops.upsert(scheduledTask('', configA)),
    ops.upsert(scheduledTask('a\u0001b', configA)),
    ops.upsert(scheduledTask('x'.repeat(257), configA)),
  ];
  for (const bad of cases) commitError(t, model, transaction([good, bad]), ErrorCode.INVALID_ARGUMENT, 1);
  t.is(tasks(model).total, 0);
  t.is(model.configCount(), 0);
  commitOk(t, model, transaction([ops.upsert(scheduledTask('x'.repeat(256), configA))]));
  commitOk(t, model, transaction([ops.upsert(scheduledTask('a\u0080b', configA))]));
});

test('TransitionTask: NOT_FOUND, no-op, compare-and-set, enforce, fields', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA, { status: S.PENDING,
    ports: [new PortT('http', 80)], slaveHost: 'old-host', failureCount: 2 }))]));
  commitError(t, model, transaction([ops.transition('nope', S.ASSIGNED)]), ErrorCode.NOT_FOUND, 0);
  const noop = commitOk(t, model, transaction([ops.transition('t-1', S.PENDING, { failureCount: 9 })]));
  t.is(noop.revision, 1n);
  t.is(noop.ops[0]?.noop, true);
  t.is(noop.ops[0]?.count, 0);
  t.is(tasks(model).tasks[0]?.failureCount, 2, 'a no-op sets nothing');
  commitError(t, model, transaction([ops.transition('t-1', S.ASSIGNED, { hasExpectStatus: true,
    expectStatus: S.RUNNING })]), ErrorCode.PRECONDITION_FAILED, 0);
  commitError(t, model, transaction([ops.transition('t-1', S.RUNNING, { enforce: true })]),
    ErrorCode.ILLEGAL_TRANSITION, 0);
  commitError(t, model, transaction([ops.transition('t-1', 8 as S)]), ErrorCode.INVALID_ARGUMENT, 0);
  const moved = commitOk(t, model, transaction([ops.transition('t-1', S.ASSIGNED, { enforce: true,
    hasExpectStatus: true, expectStatus: S.PENDING, timestamp: 77n, message: 'assigned', scheduler: 's',
    slaveHost: 'host-a', slaveId: 'agent-1', failureCount: 3 })]));
  t.is(moved.revision, 2n);
  t.is(moved.ops[0]?.count, 1);
  const task = tasks(model).tasks[0];
  t.is(task?.status, S.ASSIGNED);
  t.is(task?.assignedTask?.slaveHost, 'host-a');
  t.is(task?.assignedTask?.slaveId, 'agent-1');
  t.deepEqual(task?.assignedTask?.assignedPorts.map((port) => [port.name, port.port]), [['http', 80]],
    'an empty ports list keeps the stored ports');
  t.is(task?.failureCount, 3);
  t.is(task?.timesPartitioned, 0);
  t.is(task?.taskEvents.length, 1);
  t.is(task?.taskEvents[0]?.timestamp, 77n);
  t.is(task?.taskEvents[0]?.status, S.ASSIGNED);
  t.is(task?.modRevision, 2n);
  t.is(task?.createRevision, 1n);
  commitOk(t, model, transaction([ops.transition('t-1', S.LOST, { enforce: true })]));
  commitError(t, model, transaction([ops.transition('t-1', S.RUNNING, { enforce: true })]),
    ErrorCode.ILLEGAL_TRANSITION, 0);
  commitOk(t, model, transaction([ops.transition('t-1', S.RUNNING, { assignedPorts: [new PortT('admin', 81)] })]));
  t.is(tasks(model).tasks[0]?.assignedTask?.slaveHost, 'host-a', 'an empty slave_host keeps the stored one');
  t.deepEqual(tasks(model).tasks[0]?.assignedTask?.assignedPorts.map((port) => [port.name, port.port]),
    [['admin', 81]], 'non-empty ports replace the stored ones');
});

test('TransitionTask checks every input before looking the task up', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA, { status: S.RUNNING }))]));
  const bad: Parameters<typeof ops.transition>[2][] = [
    { hasExpectStatus: true, expectStatus: 8 as S },
    { message: 'm'.repeat(4097) },
    { message: '\u00e9'.repeat(2049) },
    { scheduler: 's\u0001' },
    { slaveId: 'x'.repeat(257) },
    { slaveHost: 'h\u007f' },
    { assignedPorts: [new PortT('', 80)] },
    { assignedPorts: Array.from({ length: 1025 }, (_, index) => new PortT(`p${index}`, index)) },
  ];
  for (const fields of bad) {
    commitError(t, model, transaction([ops.transition('nope', S.KILLING, fields)]), ErrorCode.INVALID_ARGUMENT, 0);
    commitError(t, model, transaction([ops.transition('t-1', S.RUNNING, fields)]), ErrorCode.INVALID_ARGUMENT, 0);
  }
  commitError(t, model, transaction([ops.transition('nope', 8 as S)]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.transition('\u0001', S.KILLING)]), ErrorCode.INVALID_ARGUMENT, 0);
  const edge = commitOk(t, model, transaction([ops.transition('t-1', S.KILLING, { message: '\u00e9'.repeat(2048),
    scheduler: 's'.repeat(256), assignedPorts: Array.from({ length: 1024 }, (_, index) => new PortT(`p${index}`,
      index)) })]));
  t.is(edge.revision, 2n);
  t.is(tasks(model).tasks[0]?.assignedTask?.assignedPorts.length, 1024);
});

test('UpsertTasks text rules: messages, names, ports', (t) => {
  const model = new ReferenceModel();
  const cases = [
    scheduledTask('t-1', configA, { events: [taskEvent(1, S.PENDING, 'm'.repeat(4097))] }),
    scheduledTask('t-1', configA, { slaveId: 'a\u0000' }),
    scheduledTask('t-1', configA, { slaveHost: 'x'.repeat(257) }),
    scheduledTask('t-1', configA, { ancestorId: '\u007f' }),
    scheduledTask('t-1', configA, { ports: [new PortT(null, 1)] }),
    scheduledTask('t-1', configA, { ports: Array.from({ length: 1025 }, (_, index) => new PortT(`p${index}`, 1)) }),
  ];
  for (const bad of cases) commitError(t, model, transaction([ops.upsert(bad)]), ErrorCode.INVALID_ARGUMENT, 0);
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA, { slaveId: '', slaveHost: '',
    ancestorId: '', events: [taskEvent(1, S.PENDING, 'm'.repeat(4096))] }))]));
  const stored = tasks(model).tasks[0];
  t.is(stored?.assignedTask?.slaveId, null, 'empty is absent');
  t.is(stored?.assignedTask?.slaveHost, null);
  t.is(stored?.ancestorId, null);
});

test('TransitionTask refuses to grow a task beyond taskEventsMax events: RESOURCE_EXHAUSTED, not remembered', (t) => {
  const model = new ReferenceModel();
  const events = Array.from({ length: 1024 }, (_, index) => taskEvent(index, S.PENDING));
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA, { events }))]));
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-2', configA, { events: [...events,
    taskEvent(2000, S.PENDING)] }))]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.removeQuota('ads'), ops.transition('t-1', S.ASSIGNED)]),
    ErrorCode.RESOURCE_EXHAUSTED, 1);
  t.is(commitOk(t, model, transaction([ops.transition('t-1', S.PENDING)])).ops[0]?.noop, true);
  const full = transaction([ops.transition('t-1', S.ASSIGNED)], { idempotency: ['sched', 1] });
  commitError(t, model, full, ErrorCode.RESOURCE_EXHAUSTED, 0);
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA, { events: events.slice(1) }))]));
  const retried = commitOk(t, model, full);
  t.is(retried.duplicate, false, 'a RESOURCE_EXHAUSTED outcome is not remembered');
  t.is(tasks(model).tasks[0]?.taskEvents.length, 1024);
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-1', configA, { events: events.slice(1) })),
    ops.transition('t-1', S.ASSIGNED), ops.transition('t-1', S.KILLING)]), ErrorCode.RESOURCE_EXHAUSTED, 2);
});

test('DeleteTasks: missing, ignore_missing, twice, and config freeing', (t) => {
  const model = seeded(t);
  t.is(model.configCount(), 3);
  commitError(t, model, transaction([ops.delete(['t-1', 'nope'])]), ErrorCode.NOT_FOUND, 0);
  commitError(t, model, transaction([ops.delete(['t-1', 't-1'])]), ErrorCode.INVALID_ARGUMENT, 0);
  const none = commitOk(t, model, transaction([ops.delete(['nope'], true)]));
  t.is(none.ops[0]?.noop, true);
  t.is(none.revision, 1n);
  const removed = commitOk(t, model, transaction([ops.delete(['t-3', 'nope'], true)]));
  t.is(removed.ops[0]?.count, 1);
  t.is(removed.revision, 2n);
  t.is(model.configCount(), 2, 'configB is gone with t-3');
  t.deepEqual(taskIdsOf(tasks(model)), ['t-1', 't-2', 't-4']);
  t.is(commitOk(t, model, transaction([ops.delete([])])).ops[0]?.noop, true);
});

test('cron jobs: save, validation, replace, remove, counts', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.saveCron(cronJob(www, configA))]));
  t.is(model.configCount(), 1);
  commitError(t, model, transaction([ops.saveCron(cronJob(wwwDevel, configA))]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveCron(cronJob(www, configA, { cronSchedule: '' }))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveCron(cronJob(www, configA, { instanceCount: 0 }))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  const badPolicy = 3 as CronCollisionPolicy;
  commitError(t, model, transaction([ops.saveCron(cronJob(www, configA, { cronCollisionPolicy: badPolicy }))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveCron(cronJob(jobKey('a', 'b', 'c d'), configA))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitOk(t, model, transaction([ops.saveCron(cronJob(www, hashOf(configB)))], { configs: [configB] }));
  t.is(model.configCount(), 1, 'the replaced cron job released configA');
  const found = queryResult<CronJobsResultT>(model, request(new CronJobsQueryT()), Result.CronJobsResult);
  t.is(found.jobs.length, 1);
  t.is(found.jobs[0]?.taskConfig, null);
  t.deepEqual(found.jobs[0]?.configHash, hashOf(configB));
  t.is(found.jobs[0]?.modRevision, 2n);
  t.is(found.jobs[0]?.cronSchedule, '*/5 * * * *');
  t.deepEqual(found.configs.map((config) => config.hash), [hashOf(configB)]);
  t.is(commitOk(t, model, transaction([ops.removeCron(wwwDevel)])).ops[0]?.noop, true);
  t.is(commitOk(t, model, transaction([ops.removeCron(www)])).ops[0]?.count, 1);
  t.is(model.configCount(), 0);
  t.is(model.revision, 3);
});

test('job updates: save, validation, events in timestamp order, derived state, replace, remove', (t) => {
  const model = new ReferenceModel();
  const key = updateKey(www, 'u-1');
  const update = jobUpdate(key, [instanceConfig(configA, [[0, 1]])], instanceConfig(configB, [[0, 3]]));
  commitOk(t, model, transaction([ops.saveUpdate(update)]));
  t.is(model.configCount(), 2);
  commitError(t, model, transaction([ops.saveUpdate(jobUpdate(key, [], null))]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveUpdate(jobUpdate(key, [], instanceConfig(configA, [[2, 1]])))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveUpdate(jobUpdate(updateKey(www, 'bad id'), [], instanceConfig(
    configA, [])))]), ErrorCode.INVALID_ARGUMENT, 0);
  const onlyThese = jobUpdate(key, [], instanceConfig(configA, []));
  onlyThese.instructions!.settings = new JobUpdateSettingsT(1, 0, 0, 0, false, [new RangeT(-1, 0)]);
  commitError(t, model, transaction([ops.saveUpdate(onlyThese)]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveUpdate(jobUpdate(key, [], instanceConfig(configA, []), 'bob',
    [['', 'value']]))]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.updateEvent(updateKey(www, 'u-2'), updateEvent(0, 5))]),
    ErrorCode.NOT_FOUND, 0);
  commitError(t, model, transaction([ops.updateEvent(key, updateEvent(11, 5))]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.instanceEvent(key, instanceEvent(0, 5, 7))]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.instanceEvent(key, instanceEvent(0, 5, JobUpdateAction.UNSET))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.instanceEvent(updateKey(www, 'u-2'), instanceEvent(0, 5, 7))]),
    ErrorCode.NOT_FOUND, 0, -1);
  commitOk(t, model, transaction([
    ops.updateEvent(key, updateEvent(JobUpdateStatus.ROLLING_FORWARD, 100, 'first')),
    ops.updateEvent(key, Object.assign(updateEvent(JobUpdateStatus.ROLL_FORWARD_PAUSED, 300, ''), { message: '' })),
    ops.updateEvent(key, updateEvent(JobUpdateStatus.ROLLING_BACK, 100, 'second')),
    ops.instanceEvent(key, instanceEvent(0, 400, JobUpdateAction.INSTANCE_UPDATED)),
    ops.instanceEvent(key, instanceEvent(1, 200, JobUpdateAction.INSTANCE_UPDATING)),
  ]));
  let found = queryResult<JobUpdatesResultT>(model, jobUpdateQuery(), Result.JobUpdatesResult);
  let details = found.updates[0];
  t.deepEqual(details?.updateEvents.map((event) => [event.timestampMs, event.user]),
    [[100n, 'first'], [100n, 'second'], [300n, null]]);
  t.deepEqual(details?.instanceEvents.map((event) => event.timestampMs), [200n, 400n]);
  t.is(details?.updateEvents[2]?.message, null, 'empty strings are absent');
  t.is(details?.update?.summary?.state?.status, JobUpdateStatus.ROLL_FORWARD_PAUSED);
  t.is(details?.update?.summary?.state?.createdTimestampMs, 100n);
  t.is(details?.update?.summary?.state?.lastModifiedTimestampMs, 400n);
  t.is(details?.update?.instructions?.desiredState?.task, null);
  t.deepEqual(details?.update?.instructions?.desiredState?.configHash, hashOf(configB));
  t.deepEqual(found.configs.map((config) => config.hash), [hashOf(configA), hashOf(configB)]);
  t.is(details?.modRevision, 2n);
  commitOk(t, model, transaction([ops.saveUpdate(jobUpdate(key, [], instanceConfig(configA, [[0, 0]])))]));
  t.is(model.configCount(), 1, 'the replaced update released configB');
  found = queryResult<JobUpdatesResultT>(model, jobUpdateQuery(), Result.JobUpdatesResult);
  details = found.updates[0];
  t.is(details?.updateEvents.length, 3, 'replacing keeps the events');
  t.deepEqual(details?.update?.instructions?.initialState, []);
  const removed = commitOk(t, model, transaction([ops.removeUpdates([key, key, updateKey(ads, 'u-9')])]));
  t.is(removed.ops[0]?.count, 1);
  t.is(model.configCount(), 0);
  t.is(commitOk(t, model, transaction([ops.removeUpdates([key])])).ops[0]?.noop, true);
});

test('an update with no events is ROLLING_FORWARD, created 0, last modified 0', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.saveUpdate(jobUpdate(updateKey(www, 'u'), [instanceConfig(configA, [])],
    null))]));
  const state = queryResult<JobUpdatesResultT>(model, jobUpdateQuery(), Result.JobUpdatesResult)
    .updates[0]?.update?.summary?.state;
  t.is(state?.status, JobUpdateStatus.ROLLING_FORWARD);
  t.is(state?.createdTimestampMs, 0n);
  t.is(state?.lastModifiedTimestampMs, 0n);
});

test('quotas: save, remove, consumption of active tasks by production and dedicated', (t) => {
  const model = seeded(t);
  commitError(t, model, transaction([ops.saveQuota('bad role', [])]), ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveQuota('ads', [resource(9 as ResourceType, 1)])]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveQuota('ads', [resource(ResourceType.UNSET, 1)])]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitOk(t, model, transaction([ops.saveQuota('www-data', [resource(ResourceType.NUM_CPUS, 10),
    resource(ResourceType.RAM_MB, 4096)])]));
  const quota = queryResult<QuotaResultT>(model, request(new QuotaQueryT('www-data')), Result.QuotaResult);
  t.is(quota.role, 'www-data');
  t.is(quota.quotaRevision, 2n);
  t.is(quota.quota?.resources.length, 2);
  t.deepEqual([quota.nonProdShared?.numCpus, quota.nonProdShared?.ramMb, quota.nonProdShared?.diskMb], [2, 256, 512],
    't-1 RUNNING and t-2 PENDING count, t-3 FINISHED does not');
  t.deepEqual([quota.prodShared?.numCpus, quota.prodDedicated?.numCpus, quota.nonProdDedicated?.numCpus], [0, 0, 0]);
  const adsQuota = queryResult<QuotaResultT>(model, request(new QuotaQueryT('ads')), Result.QuotaResult);
  t.is(adsQuota.quota, null);
  t.is(adsQuota.quotaRevision, 0n);
  t.deepEqual([adsQuota.prodDedicated?.numCpus, adsQuota.prodDedicated?.numGpus], [0.5, 1]);
  const limitDedicated = taskConfig(ads, { cpus: 4, dedicated: 'limit' });
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-5', limitDedicated, { status: S.RUNNING }))]));
  const after = queryResult<QuotaResultT>(model, request(new QuotaQueryT('ads')), Result.QuotaResult);
  t.is(after.nonProdDedicated?.numCpus, 4, 'any constraint named dedicated');
  t.truthy(model.query(request(new QuotaQueryT(''))).error);
  t.is(commitOk(t, model, transaction([ops.removeQuota('ads')])).ops[0]?.noop, true);
  t.is(commitOk(t, model, transaction([ops.removeQuota('www-data')])).ops[0]?.count, 1);
  commitOk(t, model, transaction([ops.saveQuota('mesos', null)]));
  const empty = queryResult<QuotaResultT>(model, request(new QuotaQueryT('mesos')), Result.QuotaResult);
  t.deepEqual(empty.quota?.resources, [], 'a quota saved without an aggregate is an empty aggregate');
  t.is(empty.quotaRevision, BigInt(model.revision));
});

test('host attributes: canonical order, identical re-saves are no-ops, per-host changed flags', (t) => {
  const model = new ReferenceModel();
  const first = commitOk(t, model, transaction([ops.saveHosts(
    hostAttributes('host-b', [['rack', ['r2', 'r1', 'r1']], ['dedicated', ['ads']]], { slaveId: 'agent-b' }),
    hostAttributes('host-a', [['rack', ['r1']]]),
  )]));
  t.deepEqual(first.ops[0]?.changed, [true, true]);
  t.is(first.ops[0]?.count, 2);
  const same = commitOk(t, model, transaction([ops.saveHosts(
    hostAttributes('host-a', [['rack', ['r1']]], { mode: MaintenanceMode.DRAINING }),
    hostAttributes('host-b', [['dedicated', ['ads']], ['rack', ['r1', 'r2']]], { slaveId: 'agent-b' }),
  )]));
  t.deepEqual(same.ops[0]?.changed, [true, false]);
  t.is(same.revision, 2n);
  const noop = commitOk(t, model, transaction([ops.saveHosts(
    hostAttributes('host-b', [['rack', ['r1', 'r2']], ['dedicated', ['ads']]], { slaveId: 'agent-b' }))]));
  t.deepEqual(noop.ops[0]?.changed, [false]);
  t.is(noop.ops[0]?.noop, true);
  t.is(noop.revision, 2n);
  commitError(t, model, transaction([ops.saveHosts(hostAttributes('h', []), hostAttributes('h', []))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveHosts(hostAttributes('h', [['rack', []]]))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveHosts(hostAttributes('h', [['', ['x']]]))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveHosts(hostAttributes('h', [], { mode: 0 as MaintenanceMode }))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  commitError(t, model, transaction([ops.saveHosts(hostAttributes('', []))]), ErrorCode.INVALID_ARGUMENT, 0);
  const hosts = queryResult<HostAttributesResultT>(model, request(new HostAttributesQueryT()),
    Result.HostAttributesResult).hosts;
  t.deepEqual(hosts.map((host) => [host.host, host.modRevision, host.mode]),
    [['host-a', 2n, MaintenanceMode.DRAINING], ['host-b', 1n, MaintenanceMode.NONE]]);
  t.deepEqual(hosts[1]?.attributes.map((attribute) => [attribute.name, attribute.values]),
    [['dedicated', ['ads']], ['rack', ['r1', 'r2']]]);
  const some = queryResult<HostAttributesResultT>(model, request(new HostAttributesQueryT(['host-b', 'nope',
    'host-b'])), Result.HostAttributesResult).hosts;
  t.deepEqual(some.map((host) => host.host), ['host-b']);
  t.is(commitOk(t, model, transaction([ops.saveHosts()])).ops[0]?.noop, true);
});

test('maintenance requests and scheduler metadata', (t) => {
  const model = new ReferenceModel();
  const request1 = new HostMaintenanceRequestT('host-b', SlaPolicy.CoordinatorSlaPolicy,
    new CoordinatorSlaPolicyT('http://coordinator', ''), 60n, 1000n);
  commitOk(t, model, transaction([ops.saveMaintenance(request1),
    ops.saveMaintenance(new HostMaintenanceRequestT('host-a'))]));
  commitError(t, model, transaction([ops.saveMaintenance(new HostMaintenanceRequestT(''))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  const again = commitOk(t, model, transaction([ops.saveMaintenance(request1)]));
  t.is(again.revision, 2n, 'an identical maintenance request is still a write');
  const found = queryResult<MaintenanceResultT>(model, request(new MaintenanceQueryT()), Result.MaintenanceResult);
  t.deepEqual(found.requests.map((item) => [item.host, item.timeoutSecs, item.modRevision]),
    [['host-a', 0n, 1n], ['host-b', 60n, 2n]]);
  t.is((found.requests[1]?.defaultSlaPolicy as CoordinatorSlaPolicyT).statusKey, null, 'empty strings are absent');
  t.is(commitOk(t, model, transaction([ops.removeMaintenance('host-c')])).ops[0]?.noop, true);
  t.is(commitOk(t, model, transaction([ops.removeMaintenance('host-a')])).ops[0]?.count, 1);
  commitError(t, model, transaction([ops.saveScheduler('')]), ErrorCode.INVALID_ARGUMENT, 0);
  commitOk(t, model, transaction([ops.saveScheduler('fw-1', [['a', '1'], ['b', '2']])]));
  const same = commitOk(t, model, transaction([ops.saveScheduler('fw-1', [['a', '1'], ['b', '2']])]));
  t.is(same.ops[0]?.noop, true);
  t.is(commitOk(t, model, transaction([ops.saveScheduler('fw-1', [['b', '2'], ['a', '1']])])).ops[0]?.noop, false,
    'details compare as a list');
  const metadata = queryResult<SchedulerResultT>(model, request(new SchedulerQueryT()), Result.SchedulerResult)
    .metadata;
  t.is(metadata?.frameworkId, 'fw-1');
  t.is(metadata?.modRevision, 5n);
});

test('preconditions: every kind, on every table, against the state before the transaction', (t) => {
  const model = seeded(t);
  commitOk(t, model, transaction([ops.saveCron(cronJob(www, configA)), ops.saveQuota('ads', []),
    ops.saveHosts(hostAttributes('host-a', [])), ops.saveMaintenance(new HostMaintenanceRequestT('host-a')),
    ops.saveScheduler('fw'), ops.saveUpdate(jobUpdate(updateKey(www, 'u'), [], instanceConfig(configA, [])))]));
  const keys = {
    [RecordTable.TASK]: { taskId: 't-1' }, [RecordTable.CRON_JOB]: { job: www },
    [RecordTable.JOB_UPDATE]: { updateKey: updateKey(www, 'u') }, [RecordTable.QUOTA]: { role: 'ads' },
    [RecordTable.HOST_ATTRIBUTES]: { host: 'host-a' }, [RecordTable.MAINTENANCE_REQUEST]: { host: 'host-a' },
    [RecordTable.SCHEDULER]: {},
  };
  const missing = {
    [RecordTable.TASK]: { taskId: 'nope' }, [RecordTable.CRON_JOB]: { job: ads },
    [RecordTable.JOB_UPDATE]: { updateKey: updateKey(www, 'v') }, [RecordTable.QUOTA]: { role: 'www-data' },
    [RecordTable.HOST_ATTRIBUTES]: { host: 'nope' }, [RecordTable.MAINTENANCE_REQUEST]: { host: 'nope' },
  };
  for (const [tableName, fields] of Object.entries(keys)) {
    const table = Number(tableName) as RecordTable;
    const expectedRevision = table === RecordTable.TASK ? 1n : 2n;
    const hold = [precondition(table, PreconditionKind.PRESENT, fields),
      precondition(table, PreconditionKind.AT_REVISION, { ...fields, revision: expectedRevision })];
    commitOk(t, model, transaction([], { preconditions: hold }));
    commitError(t, model, transaction([], { preconditions: [...hold, precondition(table, PreconditionKind.ABSENT,
      fields)] }), ErrorCode.PRECONDITION_FAILED, -1, 2);
    commitError(t, model, transaction([], { preconditions: [precondition(table, PreconditionKind.AT_REVISION,
      { ...fields, revision: 7n })] }), ErrorCode.PRECONDITION_FAILED, -1, 0);
  }
  for (const [tableName, fields] of Object.entries(missing)) {
    const table = Number(tableName) as RecordTable;
    commitOk(t, model, transaction([], { preconditions: [precondition(table, PreconditionKind.ABSENT, fields)] }));
    commitError(t, model, transaction([], { preconditions: [precondition(table, PreconditionKind.PRESENT, fields)] }),
      ErrorCode.PRECONDITION_FAILED, -1, 0);
  }
  commitOk(t, model, transaction([], { preconditions: [precondition(RecordTable.TASK, PreconditionKind.TASK_STATUS,
    { taskId: 't-1', status: S.RUNNING })] }));
  commitError(t, model, transaction([], { preconditions: [precondition(RecordTable.TASK,
    PreconditionKind.TASK_STATUS, { taskId: 't-1', status: S.PENDING })] }), ErrorCode.PRECONDITION_FAILED, -1, 0);
  commitError(t, model, transaction([], { preconditions: [precondition(RecordTable.QUOTA,
    PreconditionKind.TASK_STATUS, { role: 'ads' })] }), ErrorCode.INVALID_ARGUMENT, -1, 0);
  commitError(t, model, transaction([], { preconditions: [precondition(RecordTable.CRON_JOB,
    PreconditionKind.PRESENT, { job: jobKey('', 'prod', 'x') })] }), ErrorCode.INVALID_ARGUMENT, -1, 0);
  commitError(t, model, transaction([], { preconditions: [precondition(RecordTable.TASK,
    PreconditionKind.ABSENT, { taskId: '' })] }), ErrorCode.INVALID_ARGUMENT, -1, 0);
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-9', configA))], { preconditions: [
    precondition(RecordTable.TASK, PreconditionKind.ABSENT, { taskId: 't-9' }),
    precondition(RecordTable.TASK, PreconditionKind.PRESENT, { taskId: 't-9' })] }),
  ErrorCode.PRECONDITION_FAILED, -1, 1);
  t.is(model.revision, 2);
});

test('idempotency: a repeated key returns the first outcome, errors included', (t) => {
  const model = new ReferenceModel();
  const first = commitOk(t, model, transaction([ops.upsert(scheduledTask('t-1', configA))],
    { idempotency: ['client', 1] }));
  t.is(first.duplicate, false);
  const replay = model.commit(transaction([ops.upsert(scheduledTask('t-2', configA))],
    { idempotency: ['client', 1] }));
  t.is(replay.duplicate, true);
  t.is(replay.revision, 1n);
  t.deepEqual(replay.ops.map((op) => op.count), [1]);
  t.is(tasks(model).total, 1, 'a replay applies nothing');
  const failed = model.commit(transaction([ops.transition('nope', S.RUNNING)], { idempotency: ['client', 2] }));
  t.is(failed.error?.code, ErrorCode.NOT_FOUND);
  commitOk(t, model, transaction([ops.upsert(scheduledTask('nope', configA))]));
  const failedReplay = model.commit(transaction([], { idempotency: ['client', 2] }));
  t.is(failedReplay.duplicate, true);
  t.is(failedReplay.error?.code, ErrorCode.NOT_FOUND);
  t.is(failedReplay.error?.revision, 1n, 'the first outcome, verbatim');
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-3', configA))], { idempotency: ['other', 1] }));
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-4', configA))], { idempotency: ['', 1] }));
  commitOk(t, model, transaction([ops.upsert(scheduledTask('t-5', configA))], { idempotency: ['', 1] }));
  t.is(model.revision, 5);
  const bad = model.commit(transaction([], { idempotency: ['a\u0000b', 1] }));
  t.is(bad.error?.code, ErrorCode.INVALID_ARGUMENT);
});

test('limits: operations, preconditions, configs, tasks, config bytes', (t) => {
  const model = new ReferenceModel();
  const removes = Array.from({ length: 4097 }, () => ops.removeQuota('ads'));
  commitError(t, model, transaction(removes), ErrorCode.INVALID_ARGUMENT);
  t.is(commitOk(t, model, transaction(removes.slice(1))).ops.length, 4096);
  const preconditions = Array.from({ length: 4097 }, () => precondition(RecordTable.SCHEDULER,
    PreconditionKind.ABSENT));
  commitError(t, model, transaction([], { preconditions }), ErrorCode.INVALID_ARGUMENT);
  const configs = Array.from({ length: 1025 }, (_, index) => taskConfig(www, { priority: index }));
  commitError(t, model, transaction([], { configs }), ErrorCode.INVALID_ARGUMENT);
  const ids = Array.from({ length: 5001 }, (_, index) => `t-${index}`);
  commitError(t, model, transaction([ops.delete(ids, true), ops.removeQuota('ads'), ops.delete(ids, true)]),
    ErrorCode.INVALID_ARGUMENT, 2, -1);
  t.is(commitOk(t, model, transaction([ops.delete(ids, true), ops.delete(ids.slice(2), true)])).revision, 0n);
  const huge = taskConfig(www, { executorData: 'x'.repeat(256 * 1024) });
  commitError(t, model, transaction([], { configs: [huge] }), ErrorCode.INVALID_ARGUMENT, -1);
  commitError(t, model, transaction([ops.removeQuota('ads'), ops.upsert(scheduledTask('t-1', huge))]),
    ErrorCode.INVALID_ARGUMENT, 1);
  commitError(t, model, transaction([ops.upsert(scheduledTask('t-1', huge))], { preconditions: [
    precondition(RecordTable.SCHEDULER, PreconditionKind.PRESENT)] }), ErrorCode.PRECONDITION_FAILED, -1, 0);
  commitError(t, model, transaction([ops.removeQuota('ads')], { configs: [huge], preconditions: [
    precondition(RecordTable.SCHEDULER, PreconditionKind.PRESENT)] }), ErrorCode.INVALID_ARGUMENT, -1, -1);
  const manyConfigs = Array.from({ length: 1025 }, () => instanceConfig(configA, [[0, 0]]));
  commitError(t, model, transaction([ops.saveUpdate(jobUpdate(updateKey(www, 'u'), manyConfigs, null))]),
    ErrorCode.INVALID_ARGUMENT, 0);
  t.is(model.revision, 0);
});

test('a transaction is atomic: a failing op undoes the earlier ones; an all-no-op one uses no revision', (t) => {
  const model = seeded(t);
  commitError(t, model, transaction([ops.delete(['t-1', 't-2', 't-3', 't-4']), ops.saveQuota('ads', []),
    ops.transition('t-1', S.KILLING)]), ErrorCode.NOT_FOUND, 2);
  t.is(tasks(model).total, 4);
  t.is(model.configCount(), 3);
  const noop = commitOk(t, model, transaction([ops.removeQuota('ads'), ops.transition('t-1', S.RUNNING),
    ops.delete(['x'], true)]));
  t.is(noop.revision, 1n);
  t.deepEqual(noop.ops.map((op) => op.noop), [true, true, true]);
  const empty = commitOk(t, model, transaction([]));
  t.is(empty.revision, 1n);
  const mixed = commitOk(t, model, transaction([ops.removeQuota('ads'), ops.transition('t-1', S.KILLING)]));
  t.is(mixed.revision, 2n);
  t.deepEqual(mixed.ops.map((op) => [op.noop, op.count]), [[true, 0], [false, 1]]);
});

test('TaskQuery: UTF-8 order, every filter, paging, totals', (t) => {
  const model = seeded(t);
  commitOk(t, model, transaction([ops.upsert(
    scheduledTask('t-\uff01', configA, { instanceId: 3 }),
    scheduledTask('t-\u{1f600}', configA, { instanceId: 3 }),
    scheduledTask('t-\u00e9', taskConfig(wwwDevel), { instanceId: 3 }),
  )]));
  t.deepEqual(taskIdsOf(tasks(model)), ['t-1', 't-2', 't-3', 't-4', 't-\u00e9', 't-\uff01', 't-\u{1f600}']);
  t.deepEqual(taskIdsOf(tasks(model, { role: 'ads' })), ['t-4']);
  t.is(tasks(model, { role: ' \t' }).total, 7, 'an all-whitespace role does not apply');
  t.deepEqual(taskIdsOf(tasks(model, { environment: 'devel' })), ['t-\u00e9']);
  t.deepEqual(taskIdsOf(tasks(model, { jobName: 'serve' })), ['t-4']);
  t.deepEqual(taskIdsOf(tasks(model, { taskIds: ['t-2', 't-9', 't-1'] })), ['t-1', 't-2']);
  t.deepEqual(taskIdsOf(tasks(model, { statuses: [S.RUNNING, S.ASSIGNED] })), ['t-1', 't-4']);
  t.deepEqual(taskIdsOf(tasks(model, { instanceIds: [2, 0] })), ['t-1', 't-3', 't-4']);
  t.deepEqual(taskIdsOf(tasks(model, { slaveHosts: ['host-a'] })), ['t-1', 't-4']);
  t.deepEqual(taskIdsOf(tasks(model, { jobKeys: [ads, wwwDevel] })), ['t-4', 't-\u00e9']);
  const repeated = tasks(model, { slaveHosts: ['host-a', 'host-a'], jobKeys: [ads, ads], instanceIds: [0, 0] });
  t.deepEqual(taskIdsOf(repeated), ['t-4'], 'vector filters are sets: a repeated entry matches once');
  t.is(repeated.total, 1);
  t.deepEqual(taskIdsOf(tasks(model, { role: 'www-data', statuses: [S.PENDING], instanceIds: [1, 3] })),
    ['t-2', 't-\u00e9', 't-\uff01', 't-\u{1f600}']);
  const page = tasks(model, { offset: 2, limit: 3 });
  t.deepEqual(taskIdsOf(page), ['t-3', 't-4', 't-\u00e9']);
  t.is(page.total, 7);
  t.deepEqual(taskIdsOf(tasks(model, { offset: 5 })), ['t-\uff01', 't-\u{1f600}']);
  t.deepEqual(taskIdsOf(tasks(model, { offset: 9, limit: 1 })), []);
  for (const bad of [{ offset: -1 }, { limit: -1 }, { statuses: [8] }, { configDetail: 3 },
    { taskIds: Array.from({ length: 10_001 }, (_, index) => `t-${index}`) }]) {
    const response: QueryResponseT = model.query(taskQuery(bad));
    t.is(response.error?.code, ErrorCode.INVALID_ARGUMENT);
    t.is(response.result, null);
  }
});

test('TaskQuery configs: first use order, FULL, WITHOUT_EXECUTOR_DATA, HASH_ONLY', (t) => {
  const model = seeded(t);
  const full = tasks(model, { offset: 1 });
  t.deepEqual(full.configs.map((config) => config.hash), [hashOf(configA), hashOf(configB), hashOf(configAds)]);
  t.deepEqual(decodeConfig(Uint8Array.from(full.configs[0]!.bytes)).executorConfig?.data, '{"task":"hello"}');
  const stripped = tasks(model, { configDetail: ConfigDetail.WITHOUT_EXECUTOR_DATA, taskIds: ['t-4'] });
  t.deepEqual(stripped.configs.map((config) => config.hash), [hashOf(configAds)], 'the hash of the whole config');
  const strippedConfig: TaskConfigT = decodeConfig(Uint8Array.from(stripped.configs[0]!.bytes));
  t.is(strippedConfig.executorConfig?.data, null);
  t.is(strippedConfig.executorConfig?.name, 'AuroraExecutor');
  const copy = copyConfig(configAds);
  copy.executorConfig!.data = null;
  t.deepEqual(stripped.configs[0]?.bytes, Array.from(canonicalConfig(copy).bytes));
  const hashOnly = tasks(model, { configDetail: ConfigDetail.HASH_ONLY });
  t.deepEqual(hashOnly.configs, []);
  t.deepEqual(hashOnly.tasks[3]?.assignedTask?.configHash, hashOf(configAds));
  t.is(hashHexOf(configA), Buffer.from(hashOf(configA)).toString('hex'));
});

test('JobKeysQuery, RoleSummaryQuery, JobSummaryQuery', (t) => {
  const model = seeded(t);
  commitOk(t, model, transaction([ops.saveCron(cronJob(wwwDevel, taskConfig(wwwDevel))),
    ops.saveCron(cronJob(www, configA))]));
  const keys = queryResult<JobKeysResultT>(model, request(new JobKeysQueryT()), Result.JobKeysResult).jobs;
  t.deepEqual(keys.map((key) => [key.role, key.environment, key.name]),
    [['ads', 'prod', 'serve'], ['www-data', 'prod', 'hello']], 'only jobs with tasks');
  const wwwKeys = queryResult<JobKeysResultT>(model, request(new JobKeysQueryT('www-data')), Result.JobKeysResult);
  t.is(wwwKeys.jobs.length, 1);
  const roles = queryResult<RoleSummaryResultT>(model, request(new RoleSummaryQueryT()), Result.RoleSummaryResult)
    .roles;
  t.deepEqual(roles.map((role) => [role.role, role.jobCount, role.cronJobCount, role.taskCount]),
    [['ads', 1, 0, 1], ['www-data', 2, 2, 3]]);
  const jobs = queryResult<JobSummaryResultT>(model, request(new JobSummaryQueryT()), Result.JobSummaryResult).jobs;
  t.deepEqual(jobs.map((job) => `${String(job.job?.role)}/${String(job.job?.environment)}`),
    ['ads/prod', 'www-data/devel', 'www-data/prod']);
  const hello = jobs[2];
  t.deepEqual([hello?.job?.role, hello?.job?.environment], ['www-data', 'prod']);
  t.is(hello?.statusCounts.length, 19);
  t.is(hello?.statusCounts[S.RUNNING], 1);
  t.is(hello?.statusCounts[S.PENDING], 1);
  t.is(hello?.statusCounts[S.FINISHED], 1);
  t.deepEqual([hello?.stats?.active, hello?.stats?.pending, hello?.stats?.finished, hello?.stats?.failed],
    [1, 1, 1, 0]);
  t.deepEqual(hello?.cron?.configHash, hashOf(configA));
  t.is(hello?.cron?.taskConfig, null);
  const devel = jobs[1];
  t.is(devel?.stats?.active, 0);
  t.truthy(devel?.cron);
  t.is(jobs[0]?.cron, null);
  const adsOnly = queryResult<JobSummaryResultT>(model, request(new JobSummaryQueryT('ads')),
    Result.JobSummaryResult).jobs;
  t.is(adsOnly.length, 1);
});

test('CronJobsQuery: role and key filters, order by key', (t) => {
  const model = new ReferenceModel();
  commitOk(t, model, transaction([ops.saveCron(cronJob(www, configA)), ops.saveCron(cronJob(ads, configAds)),
    ops.saveCron(cronJob(wwwDevel, taskConfig(wwwDevel)))]));
  const all = queryResult<CronJobsResultT>(model, request(new CronJobsQueryT()), Result.CronJobsResult);
  t.deepEqual(all.jobs.map((job) => `${String(job.key?.role)}/${String(job.key?.environment)}`),
    ['ads/prod', 'www-data/devel', 'www-data/prod']);
  t.is(all.configs.length, 3);
  const role = queryResult<CronJobsResultT>(model, request(new CronJobsQueryT('www-data')), Result.CronJobsResult);
  t.is(role.jobs.length, 2);
  const one = queryResult<CronJobsResultT>(model, request(new CronJobsQueryT(null, www)), Result.CronJobsResult);
  t.deepEqual(one.jobs.map((job) => job.key?.environment), ['prod']);
  const none = queryResult<CronJobsResultT>(model, request(new CronJobsQueryT('ads', www)), Result.CronJobsResult);
  t.deepEqual(none.jobs, []);
});

test('JobUpdateQuery: last modified descending then key, filters, paging, derived status', (t) => {
  const model = new ReferenceModel();
  const k1 = updateKey(www, 'a');
  const k2 = updateKey(www, 'b');
  const k3 = updateKey(ads, 'a');
  commitOk(t, model, transaction([
    ops.saveUpdate(jobUpdate(k1, [], instanceConfig(configA, []), 'alice')),
    ops.saveUpdate(jobUpdate(k2, [], instanceConfig(configB, []), 'bob')),
    ops.saveUpdate(jobUpdate(k3, [], instanceConfig(configAds, []), 'alice')),
    ops.updateEvent(k1, updateEvent(JobUpdateStatus.ROLLED_FORWARD, 50)),
    ops.instanceEvent(k3, new JobInstanceUpdateEventT(0, 50n, JobUpdateAction.INSTANCE_UPDATED)),
    ops.updateEvent(k2, updateEvent(JobUpdateStatus.ABORTED, 10)),
  ]));
  const ids = (fields: Parameters<typeof jobUpdateQuery>[0]): string[] =>
    queryResult<JobUpdatesResultT>(model, jobUpdateQuery(fields), Result.JobUpdatesResult).updates
      .map((details) => details.update?.summary?.key ?? null)
      .map((key) => `${String(key?.job?.role)}/${String(key?.id)}`);
  t.deepEqual(ids({}), ['ads/a', 'www-data/a', 'www-data/b']);
  t.deepEqual(ids({ role: 'www-data' }), ['www-data/a', 'www-data/b']);
  t.deepEqual(ids({ user: 'alice' }), ['ads/a', 'www-data/a']);
  t.deepEqual(ids({ key: k2 }), ['www-data/b']);
  t.deepEqual(ids({ jobKey: ads }), ['ads/a']);
  t.deepEqual(ids({ updateStatuses: [JobUpdateStatus.ROLLING_FORWARD, JobUpdateStatus.ABORTED] }),
    ['ads/a', 'www-data/b']);
  t.deepEqual(ids({ offset: 1, limit: 1 }), ['www-data/a']);
  const paged = queryResult<JobUpdatesResultT>(model, jobUpdateQuery({ offset: 1, limit: 1 }), Result.JobUpdatesResult);
  t.is(paged.total, 3);
  t.deepEqual(paged.configs.map((config) => config.hash), [hashOf(configA)]);
  const hashOnly = queryResult<JobUpdatesResultT>(model, jobUpdateQuery({ configDetail: ConfigDetail.HASH_ONLY }),
    Result.JobUpdatesResult);
  t.deepEqual(hashOnly.configs, []);
  const badStatus = 11 as JobUpdateStatus;
  t.is(model.query(jobUpdateQuery({ updateStatuses: [badStatus] })).error?.code, ErrorCode.INVALID_ARGUMENT);
  t.is(model.query(jobUpdateQuery({ limit: -2 })).error?.code, ErrorCode.INVALID_ARGUMENT);
});

test('a request without a query is INVALID_ARGUMENT', (t) => {
  const model = new ReferenceModel();
  const response = model.query(new QueryRequestT());
  t.is(response.error?.code, ErrorCode.INVALID_ARGUMENT);
  t.is(response.resultType, Result.NONE);
});

test('results are fresh copies: mutating one does not change the model', (t) => {
  const model = seeded(t);
  const first = tasks(model);
  first.tasks[0]!.status = S.LOST;
  first.tasks[0]!.assignedTask!.taskId = 'changed';
  t.deepEqual(taskIdsOf(tasks(model)), ['t-1', 't-2', 't-3', 't-4']);
  t.is(tasks(model).tasks[0]?.status, S.RUNNING);
  const txn = transaction([ops.upsert(scheduledTask('t-9', configA))]);
  commitOk(t, model, txn);
  (txn.ops[0]!.op as { tasks: unknown[] }).tasks.length = 0;
  t.is(tasks(model, { taskIds: ['t-9'] }).total, 1);
});

/** The configs the stored records refer to, and how many references they hold, read back through queries. */
function referencedConfigs(model: ReferenceModel): { hashes: Set<string>; references: number } {
  const hex = (hash: number[] | undefined) => Buffer.from(hash ?? []).toString('hex');
  const hashes: string[] = [];
  for (const task of tasks(model, { configDetail: ConfigDetail.HASH_ONLY }).tasks) {
    hashes.push(hex(task.assignedTask?.configHash));
  }
  for (const job of queryResult<CronJobsResultT>(model, request(new CronJobsQueryT()), Result.CronJobsResult).jobs) {
    hashes.push(hex(job.configHash));
  }
  const updates = queryResult<JobUpdatesResultT>(model, jobUpdateQuery({ configDetail: ConfigDetail.HASH_ONLY }),
    Result.JobUpdatesResult).updates;
  for (const details of updates) {
    const instructions = details.update?.instructions;
    for (const item of [...instructions?.initialState ?? [], instructions?.desiredState ?? null]) {
      if (item !== null) hashes.push(hex(item.configHash));
    }
  }
  return { hashes: new Set(hashes), references: hashes.length };
}

test('random transactions keep the model consistent: revisions, config counts, determinism', (t) => {
  const model = new ReferenceModel();
  const twin = new ReferenceModel();
  const generator = new Generator(3, model);
  const twinGenerator = new Generator(3, twin);
  const codes = new Map<number, number>();
  let revision = 0;
  for (let step = 0; step < 600; step += 1) {
    const result = model.commit(generator.transaction());
    const twinResult = twin.commit(twinGenerator.transaction());
    const query = generator.query();
    if (describe(normalizeTransactionResult(result)) !== describe(normalizeTransactionResult(twinResult)) ||
      describe(normalizeQueryResponse(model.query(query))) !==
      describe(normalizeQueryResponse(twin.query(twinGenerator.query())))) {
      t.fail(`step ${step}: the same seed gave a different run`);
      return;
    }
    codes.set(result.error?.code ?? 0, (codes.get(result.error?.code ?? 0) ?? 0) + 1);
    if (result.error === null && !result.duplicate && result.ops.some((op) => !op.noop)) revision += 1;
    if (model.revision !== revision) {
      t.fail(`step ${step}: revision ${model.revision}, expected ${revision}`);
      return;
    }
    if (step % 50 !== 0) continue;
    const referenced = referencedConfigs(model);
    t.is(model.configCount(), referenced.hashes.size, `step ${step}: stored configs = referenced configs`);
    t.is(model.configReferenceCount(), referenced.references, `step ${step}: references`);
  }
  for (const code of [ErrorCode.OK, ErrorCode.INVALID_ARGUMENT, ErrorCode.NOT_FOUND, ErrorCode.PRECONDITION_FAILED,
    ErrorCode.ILLEGAL_TRANSITION]) {
    t.true((codes.get(code) ?? 0) > 0, `the generator produced code ${code}`);
  }
  t.true((codes.get(ErrorCode.OK) ?? 0) > 300, 'most transactions succeed');
});
