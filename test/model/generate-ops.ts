/**
 * Random operations for the model-based test, one generator per member of the Op union. Owner: tests only.
 * Invariants: values come from the key space of the context (generate-pools.ts); each item gets at most one
 * deliberate mistake (chosen by `mistake`, scaled by the key space's rareScale), so that error codes do not depend
 * on the order of checks inside one item; task operations tell the context's TaskTracker what they leave.
 */
import {
  AssignedTaskT, AttributeT, BatchJobUpdateStrategyT, CoordinatorSlaPolicyT, CountSlaPolicyT, HostAttributesT,
  HostMaintenanceRequestT, IdentityT, InstanceTaskConfigT, JobConfigurationT, JobInstanceUpdateEventT,
  JobUpdateEventT, JobUpdateInstructionsT, JobUpdateSettingsT, JobUpdateStateT, JobUpdateStrategy, JobUpdateSummaryT,
  JobUpdateT, JobKeyT, MetadataT, OperationT, PercentageSlaPolicyT, PortT, QueueJobUpdateStrategyT, RangeT,
  ResourceT, ResourceType, ScheduledTaskT, ScheduleStatus, SlaPolicy, TaskEventT, TransitionTaskT,
} from '../../core/fbs/strata.js';
import { jobKey, ops, resource, transitionOp, updateKey } from './build.js';
import { allowedTransitions } from './reference-common.js';
import type { GeneratorContext } from './generate.js';
import { badHosts, badIdentifiers, badTaskIds, invalidStatuses } from './generate-pools.js';

type OperationMaker = (g: GeneratorContext) => OperationT;

/** Picks one of the named mistakes with probability `probability`, else null. */
function mistake<T extends string>(g: GeneratorContext, probability: number, kinds: readonly T[]): T | null {
  return g.rare(probability) ? g.prng.pick(kinds) : null;
}

function ports(g: GeneratorContext): PortT[] {
  return g.some(['http', 'admin', 'health'], 2).map((name) => new PortT(name, 31000 + g.prng.int(10)));
}

/** The text mistakes of docs/semantics.md: an over-long message, a name with a control character or too long. */
type TextFault = 'message' | 'scheduler' | 'slaveId' | 'slaveHost' | 'ancestor' | 'port';
const textFaults: readonly TextFault[] = ['message', 'scheduler', 'slaveId', 'slaveHost', 'ancestor', 'port'];

/** A message: mostly short or absent; sometimes exactly 4096 bytes (ASCII or 2-byte characters), or one over. */
function message(g: GeneratorContext, values: readonly string[], bad: boolean): string | null {
  if (bad) return g.prng.chance(0.5) ? 'm'.repeat(4097) : '\u00e9'.repeat(2048) + 'm';
  if (g.rare(0.02)) return g.prng.chance(0.5) ? 'm'.repeat(4096) : '\u00e9'.repeat(2048);
  return optionalText(g, values);
}

/** A name that breaks the text rule: a control character, or 257 bytes (the longest valid one is 256). */
function badName(g: GeneratorContext): string {
  return g.prng.pick(['agent\u0001', '\u007f', 'x'.repeat(257), '\u00e9'.repeat(128) + 'x']);
}

/** A text field: optionalText's values, sometimes the longest valid name, or a bad one. */
function name(g: GeneratorContext, values: readonly string[], bad: boolean): string | null {
  if (bad) return badName(g);
  return g.rare(0.02) ? '\u00e9'.repeat(128) : optionalText(g, values);
}

/** Assigned ports: sometimes a port without a name (or a bad one), rarely 1025 ports (1024 is the limit). */
function portsWith(g: GeneratorContext, bad: boolean): PortT[] {
  const list = ports(g);
  if (!bad) return g.rare(0.005) ? manyPorts(1024) : list;
  if (g.prng.chance(0.1)) return manyPorts(1025);
  list.splice(g.prng.int(list.length + 1), 0, new PortT(g.prng.pick(['', null, badName(g)]), 31000));
  return list;
}

function manyPorts(count: number): PortT[] {
  return Array.from({ length: count }, (_, index) => new PortT(`p${index}`, 20000 + index));
}

function optionalText(g: GeneratorContext, values: readonly string[]): string | null {
  const roll = g.prng.float();
  return roll < 0.2 ? null : roll < 0.3 ? '' : g.prng.pick(values);
}

export const taskFaults = ['id', 'config', 'instance', 'status', 'event', 'text'] as const;
export type TaskFault = typeof taskFaults[number];

/** A task with id `taskId` (of a random job unless `job` is given), with at most the one mistake `fault`. */
export function randomTask(g: GeneratorContext, fault: TaskFault | null, taskId: string, job?: JobKeyT):
  ScheduledTaskT {
  const text = fault === 'text' ? g.prng.pick(textFaults) : null;
  const config = g.config(job, fault === 'config');
  const eventCount = g.prng.int(4) + (text === 'message' || text === 'scheduler' ? 1 : 0);
  const badEvent = eventCount > 0 ? g.prng.int(eventCount) : 0;
  const events = Array.from({ length: eventCount }, (_, index) =>
    new TaskEventT(g.timestamp(), fault === 'event' ? g.prng.pick(invalidStatuses) : g.prng.pick([0, 9, 1, 2]),
      message(g, ['started', 'assigned'], text === 'message' && index === badEvent),
      name(g, ['scheduler-1'], text === 'scheduler' && index === badEvent)));
  const assigned = new AssignedTaskT(fault === 'id' ? g.prng.pick(badTaskIds) : taskId,
    name(g, ['agent-1', 'agent-2'], text === 'slaveId'), name(g, g.keys.hosts, text === 'slaveHost'), config.inline,
    g.prng.chance(0.3) || text === 'port' ? portsWith(g, text === 'port') : [],
    fault === 'instance' ? -1 : g.prng.int(g.keys.instanceCount), config.hash);
  return new ScheduledTaskT(assigned, fault === 'status' ? g.prng.pick(invalidStatuses) : g.status(false),
    g.prng.int(3), g.prng.int(2), events, name(g, ['t-0', 't-1'], text === 'ancestor'));
}

/** Distinct task ids, except for the occasional deliberate "same id twice" (or, rarely, no task at all). */
export function upsertOf(g: GeneratorContext, tasks: readonly ScheduledTaskT[]): OperationT {
  const seen = new Set<string>();
  const unique = tasks.filter((task) => {
    const taskId = String(task.assignedTask?.taskId);
    const fresh = !seen.has(taskId);
    seen.add(taskId);
    return fresh;
  });
  if (g.rare(0.03) && unique[0] !== undefined) {
    unique.push(randomTask(g, null, String(unique[0].assignedTask!.taskId)));
  }
  if (g.rare(0.03)) unique.length = 0;
  for (const task of unique) g.tasks.note(String(task.assignedTask?.taskId), task.status);
  return ops.upsert(...unique);
}

const upsertTasks: OperationMaker = (g) => upsertOf(g, Array.from({ length: 1 + g.prng.int(3) }, () =>
  randomTask(g, mistake(g, 0.08, taskFaults), g.taskId(false))));

/**
 * Mostly a status the task may move to (or its current one, a no-op); with `enforce`, a task in a terminal
 * state mostly stays (only deletion leaves those), and sometimes any status is asked (ILLEGAL_TRANSITION).
 */
function nextStatus(g: GeneratorContext, taskId: string, enforce: boolean): ScheduleStatus {
  const current = g.tasks.status(taskId);
  if (current !== null && g.prng.chance(0.15)) return current;
  const allowed = current === null ? [] : allowedTransitions.get(current) ?? [];
  if (enforce && allowed.length > 0 && !g.rare(0.2)) return g.prng.pick(allowed);
  if (enforce && current !== null && allowed.length === 0 && !g.rare(0.8)) return current;
  return g.status(false);
}

const transitionTask: OperationMaker = (g) => transitionOf(g, g.existingTaskId(false));

/**
 * A transition of `storedId` from the status the transaction leaves it in; mistakes of a transition's inputs
 * (checked before the lookup) come each alone in its operation.
 */
export function transitionOf(g: GeneratorContext, storedId: string): OperationT {
  const fault = mistake(g, 0.06, ['id', 'status', 'expect', 'text'] as const);
  const text = fault === 'text' ? g.prng.pick(textFaults) : null;
  const taskId = fault === 'id' ? g.prng.pick(badTaskIds) : storedId;
  const enforce = g.prng.chance(0.5);
  const fields: Partial<TransitionTaskT> = {
    enforce, timestamp: g.timestamp(), message: message(g, ['moved', 'killed by user'], text === 'message'),
    scheduler: name(g, ['scheduler-1'], text === 'scheduler'),
  };
  if (g.prng.chance(0.3) || fault === 'expect') {
    const current = g.tasks.status(taskId);
    fields.hasExpectStatus = true;
    fields.expectStatus = fault === 'expect' ? g.prng.pick(invalidStatuses) :
      current !== null && !g.rare(0.25) ? current : g.status(false);
  }
  if (g.prng.chance(0.3) || text === 'slaveHost') fields.slaveHost = name(g, g.keys.hosts, text === 'slaveHost');
  if (g.prng.chance(0.2) || text === 'slaveId') fields.slaveId = name(g, ['agent-1', 'agent-3'], text === 'slaveId');
  // Ports: non-empty ones replace the stored ports, an empty list keeps them.
  if (g.prng.chance(0.4) || text === 'port') fields.assignedPorts = portsWith(g, text === 'port');
  if (g.prng.chance(0.3)) fields.failureCount = g.prng.int(4);
  if (g.prng.chance(0.2)) fields.timesPartitioned = g.prng.int(3);
  const status = fault === 'status' ? g.prng.pick(invalidStatuses) : nextStatus(g, taskId, enforce);
  if (g.tasks.status(taskId) !== null) g.tasks.note(taskId, status);
  return transitionOp(taskId, status, fields);
}

/** Deletes distinct ids, but for the occasional id twice or bad id. */
export function deleteOf(g: GeneratorContext, ids: string[], ignoreMissing: boolean): OperationT {
  const fault = mistake(g, 0.04, ['twice', 'id'] as const);
  for (const taskId of ids) g.tasks.note(taskId, null);
  if (fault === 'twice' && ids[0] !== undefined) ids.push(ids[0]);
  if (fault === 'id') ids.splice(g.prng.int(ids.length + 1), 0, g.prng.pick(badTaskIds));
  return ops.delete(ids, ignoreMissing);
}

const deleteTasks: OperationMaker = (g) => deleteOf(g,
  [...new Set(Array.from({ length: 1 + g.prng.int(3) }, () => g.existingTaskId(false)))], g.prng.chance(0.5));

function cronJobKey(g: GeneratorContext): JobKeyT {
  return g.rare(0.02) ? jobKey(g.prng.pick(badIdentifiers), 'prod', 'hello') : g.jobKey();
}

const saveCronJob: OperationMaker = (g) => {
  const fault = mistake(g, 0.1, ['key', 'schedule', 'instances', 'policy', 'job', 'config'] as const);
  const key = fault === 'key' ? jobKey(g.prng.pick(badIdentifiers), 'prod', 'hello') : g.jobKey();
  const config = g.config(fault === 'job' ? g.jobKey() : key, fault === 'config');
  const job = new JobConfigurationT(key, g.prng.chance(0.7) ? new IdentityT(null, 'owner') : null,
    fault === 'schedule' ? '' : g.prng.pick(['*/5 * * * *', '0 * * * *']),
    fault === 'policy' ? 3 : g.prng.int(3), config.inline, fault === 'instances' ? 0 : 1 + g.prng.int(3),
    config.hash);
  return ops.saveCron(job);
};

const removeCronJob: OperationMaker = (g) => ops.removeCron(cronJobKey(g));

function randomUpdateKey(g: GeneratorContext, existing = false) {
  if (g.rare(0.02)) return updateKey(g.jobKey(), g.prng.pick(['bad id', '']));
  if (existing) return g.existingUpdateKey();
  const key = g.prng.pick(g.keys.updateKeys);
  return updateKey(key.job!, String(key.id));
}

function instanceConfig(g: GeneratorContext, job: JobKeyT, badRange: boolean): InstanceTaskConfigT {
  const config = g.config(g.prng.chance(0.9) ? job : g.jobKey(), !badRange);
  const ranges = Array.from({ length: g.prng.int(3) }, () => {
    const first = g.prng.int(g.keys.instanceCount);
    return new RangeT(first, first + g.prng.int(2));
  });
  if (badRange) ranges.push(g.prng.chance(0.5) ? new RangeT(2, 1) : new RangeT(-1, 0));
  return new InstanceTaskConfigT(config.inline, ranges, config.hash);
}

function settings(g: GeneratorContext): JobUpdateSettingsT | null {
  if (g.prng.chance(0.4)) return null;
  const value = new JobUpdateSettingsT(1 + g.prng.int(3), g.prng.int(2), g.prng.int(2), 1000 * g.prng.int(3),
    g.prng.chance(0.5), g.prng.chance(0.3) ? [new RangeT(0, 1)] : []);
  if (g.prng.chance(0.5)) {
    value.updateStrategyType = g.prng.chance(0.5) ? JobUpdateStrategy.QueueJobUpdateStrategy :
      JobUpdateStrategy.BatchJobUpdateStrategy;
    value.updateStrategy = value.updateStrategyType === JobUpdateStrategy.QueueJobUpdateStrategy ?
      new QueueJobUpdateStrategyT(2) : new BatchJobUpdateStrategyT(2, g.prng.chance(0.5));
  }
  return value;
}

const saveJobUpdate: OperationMaker = (g) => {
  const key = randomUpdateKey(g);
  const fault = mistake(g, 0.07, ['range', 'onlyThese', 'metadata'] as const);
  const initial = Array.from({ length: g.prng.int(3) }, () => instanceConfig(g, key.job!, false));
  const desired = g.prng.chance(0.75) || initial.length === 0 && g.prng.chance(0.7) ?
    instanceConfig(g, key.job!, fault === 'range') : null;
  const metadata = g.some([['ticket', 'T-1'], ['reason', 'deploy'], ['note', '']], 2)
    .map(([k, v]) => new MetadataT(k, v));
  if (fault === 'metadata') metadata.push(new MetadataT(g.prng.pick(['', null]), 'value'));
  const state = g.prng.chance(0.3) ? new JobUpdateStateT(g.prng.int(11), 5n, 6n) : null;
  const summary = new JobUpdateSummaryT(key, optionalText(g, ['alice', 'bob']), state, metadata);
  const updateSettings = settings(g) ?? (fault === 'onlyThese' ? new JobUpdateSettingsT() : null);
  if (fault === 'onlyThese') {
    updateSettings?.updateOnlyTheseInstances.push(g.prng.chance(0.5) ? new RangeT(3, 2) : new RangeT(-1, 1));
  }
  return ops.saveUpdate(new JobUpdateT(summary, new JobUpdateInstructionsT(initial, desired, updateSettings)));
};

const saveJobUpdateEvent: OperationMaker = (g) => ops.updateEvent(randomUpdateKey(g, true), new JobUpdateEventT(
  g.rare(0.02) ? 11 : g.prng.int(11), g.timestamp(), optionalText(g, ['alice', 'bob']),
  optionalText(g, ['paused by user'])));

const saveJobInstanceUpdateEvent: OperationMaker = (g) => ops.instanceEvent(randomUpdateKey(g, true),
  new JobInstanceUpdateEventT(g.prng.int(g.keys.instanceCount), g.timestamp(),
    g.rare(0.02) ? g.prng.pick([0, 7]) : 1 + g.prng.int(6),
    optionalText(g, ['instance updated'])));

const removeJobUpdates: OperationMaker = (g) =>
  ops.removeUpdates(Array.from({ length: 1 + g.prng.int(2) }, () => randomUpdateKey(g, true)));

function quotaRole(g: GeneratorContext): string {
  return g.rare(0.03) ? g.prng.pick(badIdentifiers) : g.prng.pick(g.keys.roles);
}

function quotaResources(g: GeneratorContext): ResourceT[] | null {
  if (g.prng.chance(0.05)) return null;
  const resources = g.some([ResourceType.NUM_CPUS, ResourceType.RAM_MB, ResourceType.DISK_MB,
    ResourceType.NUM_GPUS], 3).map((type) => resource(type, 1 + g.prng.int(8)));
  if (g.prng.chance(0.1)) resources.push(Object.assign(new ResourceT(ResourceType.NAMED_PORT), { namedPort: 'http' }));
  if (g.rare(0.02)) resources.push(new ResourceT(g.prng.pick([0, 9]) as ResourceType));
  return resources;
}

const saveQuota: OperationMaker = (g) => ops.saveQuota(quotaRole(g), quotaResources(g));
const removeQuota: OperationMaker = (g) => ops.removeQuota(quotaRole(g));

/** A few attribute sets per host, shuffled and with repeated values, so identical re-saves are common. */
const attributeSets: [string, string[]][][] = [
  [['rack', ['r1']], ['zone', ['east']]],
  [['rack', ['r2']], ['zone', ['east', 'west']]],
  [['dedicated', ['ads/db']], ['rack', ['r1']]],
  [['tag', ['', 'gpu']], ['rack', ['r2']]], // strings inside a vector of strings are kept, empty ones too
];

function hostAttributes(g: GeneratorContext, host: string, fault: 'name' | 'values' | 'mode' | null): HostAttributesT {
  const attributes = g.prng.pick(attributeSets).map(([name, values]) =>
    new AttributeT(name, g.prng.chance(0.2) ? [...values, ...values].reverse() : values.slice()));
  if (g.prng.chance(0.5)) attributes.reverse();
  if (fault === 'name') attributes.push(new AttributeT('', ['x']));
  if (fault === 'values') attributes.push(new AttributeT('empty', []));
  const mode = fault === 'mode' ? 0 : g.prng.chance(0.7) ? 1 : 1 + g.prng.int(4);
  return new HostAttributesT(host, attributes, mode, g.prng.chance(0.8) ? `agent-${host}` : 'agent-moved');
}

const saveHostAttributes: OperationMaker = (g) => {
  const names = [...new Set(Array.from({ length: 1 + g.prng.int(2) }, () => g.host(false)))];
  const fault = mistake(g, 0.06, ['host', 'twice', 'name', 'values', 'mode'] as const);
  if (fault === 'twice' && names[0] !== undefined) names.push(names[0]);
  if (fault === 'host') names.push(g.prng.pick(badHosts));
  const faultIndex = g.prng.int(names.length);
  return ops.saveHosts(...names.map((host, index) => hostAttributes(g, host,
    (fault === 'name' || fault === 'values' || fault === 'mode') && index === faultIndex ? fault : null)));
};

const saveMaintenanceRequest: OperationMaker = (g) => {
  const request = new HostMaintenanceRequestT(g.host());
  const sla = g.prng.int(4) as SlaPolicy;
  request.defaultSlaPolicyType = sla;
  request.defaultSlaPolicy = sla === SlaPolicy.PercentageSlaPolicy ? new PercentageSlaPolicyT(95, 60n) :
    sla === SlaPolicy.CountSlaPolicy ? new CountSlaPolicyT(2n, 30n) :
    sla === SlaPolicy.CoordinatorSlaPolicy ? new CoordinatorSlaPolicyT('http://coordinator', '') : null;
  request.timeoutSecs = BigInt(60 * g.prng.int(3));
  request.createdTimestampMs = g.timestamp();
  return ops.saveMaintenance(request);
};

const removeMaintenanceRequest: OperationMaker = (g) => ops.removeMaintenance(g.host());

const saveSchedulerMetadata: OperationMaker = (g) => {
  const frameworkId = g.rare(0.03) ? '' : g.prng.pick(['fw-1', 'fw-2']);
  const details = g.prng.pick([[], [['version', '0.1']], [['version', '0.1'], ['host', 'a']], [['version', '']]]) as
    [string, string][];
  return ops.saveScheduler(frameworkId, details);
};

const makers: [OperationMaker, number][] = [
  [upsertTasks, 20], [transitionTask, 22], [deleteTasks, 8], [saveCronJob, 6], [removeCronJob, 3],
  [saveJobUpdate, 6], [saveJobUpdateEvent, 6], [saveJobInstanceUpdateEvent, 5], [removeJobUpdates, 2],
  [saveQuota, 4], [removeQuota, 2], [saveHostAttributes, 7], [saveMaintenanceRequest, 3],
  [removeMaintenanceRequest, 2], [saveSchedulerMetadata, 3],
];

export function operationOf(g: GeneratorContext): OperationT {
  return g.weighted(makers)(g);
}

