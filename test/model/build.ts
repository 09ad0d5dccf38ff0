/**
 * Small builders for transactions and queries in the object API, shared by the hand-written tests and the
 * random generator. Owner: tests only.
 * Invariants: builders only construct values (no validation), so tests can build invalid input on purpose;
 * a config is given inline (a TaskConfigT) or by hash (a number[]).
 */
import { canonicalConfig } from '../../core/config.js';
import {
  AssignedTaskT, ConstraintT, DeleteTasksT, ExecutorConfigT, HostAttributesT, HostMaintenanceRequestT, IdentityT,
  IdempotencyKeyT, InstanceTaskConfigT, JobConfigurationT, JobInstanceUpdateEventT, JobKeyT, JobUpdateEventT,
  JobUpdateInstructionsT, JobUpdateKeyT, JobUpdateSummaryT, JobUpdateT, LimitConstraintT, Op, OperationT, PortT,
  PreconditionKind, PreconditionT, Query, QueryRequestT, RangeT, RecordTable, RemoveCronJobT, RemoveJobUpdatesT,
  RemoveMaintenanceRequestT, RemoveQuotaT, ResourceAggregateT, ResourceT, ResourceType, SaveCronJobT,
  SaveHostAttributesT, SaveJobInstanceUpdateEventT, SaveJobUpdateEventT, SaveJobUpdateT, SaveMaintenanceRequestT,
  SaveQuotaT, SaveSchedulerMetadataT, ScheduledTaskT, SchedulerMetadataT, ScheduleStatus, TaskConfigT,
  TaskConstraint, TaskEventT, TransactionT, TransitionTaskT, UpsertTasksT, ValueConstraintT, KeyValueT, AttributeT,
  TaskQueryT, JobKeysQueryT, RoleSummaryQueryT, JobSummaryQueryT, QuotaQueryT, CronJobsQueryT, JobUpdateQueryT,
  HostAttributesQueryT, MaintenanceQueryT, SchedulerQueryT, MetadataT, Container, Image, MesosContainerT, VolumeT,
  VolumeMode,
} from '../../core/fbs/strata.js';
import { copyConfig } from './reference-state.js';

/** A config inline, or by hash. */
export type ConfigRef = TaskConfigT | number[];

export function jobKey(role: string, environment: string, name: string): JobKeyT {
  return new JobKeyT(role, environment, name);
}

export function updateKey(job: JobKeyT, id: string): JobUpdateKeyT {
  return new JobUpdateKeyT(new JobKeyT(job.role, job.environment, job.name), id);
}

export interface ConfigOptions {
  cpus?: number;
  ramMb?: number;
  diskMb?: number;
  gpus?: number;
  production?: boolean;
  dedicated?: 'value' | 'limit';
  executorData?: string;
  priority?: number;
  /** A Mesos container with one volume of this mode (RW 1, RO 2; anything else is not a VolumeMode). */
  volumeMode?: number;
}

export function resource(type: ResourceType, amount: number): ResourceT {
  const value = new ResourceT(type);
  if (type === ResourceType.NUM_CPUS) value.numCpus = amount;
  if (type === ResourceType.RAM_MB) value.ramMb = BigInt(amount);
  if (type === ResourceType.DISK_MB) value.diskMb = BigInt(amount);
  if (type === ResourceType.NUM_GPUS) value.numGpus = BigInt(amount);
  return value;
}

function dedicatedConstraint(kind: 'value' | 'limit'): ConstraintT {
  return kind === 'value' ?
    new ConstraintT('dedicated', TaskConstraint.ValueConstraint, new ValueConstraintT(false, ['ads/db'])) :
    new ConstraintT('dedicated', TaskConstraint.LimitConstraint, new LimitConstraintT(1));
}

export function taskConfig(job: JobKeyT, options: ConfigOptions = {}): TaskConfigT {
  const config = new TaskConfigT(new JobKeyT(job.role, job.environment, job.name), new IdentityT(null, 'owner'));
  config.production = options.production ?? false;
  config.priority = options.priority ?? 0;
  config.resources = [resource(ResourceType.NUM_CPUS, options.cpus ?? 1), resource(ResourceType.RAM_MB,
    options.ramMb ?? 128), resource(ResourceType.DISK_MB, options.diskMb ?? 256)];
  if (options.gpus !== undefined) config.resources.push(resource(ResourceType.NUM_GPUS, options.gpus));
  config.constraints = [new ConstraintT('host', TaskConstraint.LimitConstraint, new LimitConstraintT(1))];
  if (options.dedicated !== undefined) config.constraints.push(dedicatedConstraint(options.dedicated));
  config.executorConfig = new ExecutorConfigT('AuroraExecutor', options.executorData ?? '{"task":"hello"}');
  if (options.volumeMode !== undefined) {
    config.containerType = Container.MesosContainer;
    config.container = new MesosContainerT(Image.NONE, null, [new VolumeT('/data', '/srv/data',
      options.volumeMode as VolumeMode)]);
  }
  return config;
}

/** The hash of a config as the engine computes it (the argument is left untouched). */
export function hashOf(config: TaskConfigT): number[] {
  return Array.from(canonicalConfig(copyConfig(config)).hash);
}

export function hashHexOf(config: TaskConfigT): string {
  return canonicalConfig(copyConfig(config)).hashHex;
}

export interface TaskOptions {
  status?: ScheduleStatus;
  instanceId?: number;
  slaveHost?: string | null;
  slaveId?: string | null;
  events?: TaskEventT[];
  ports?: PortT[];
  failureCount?: number;
  timesPartitioned?: number;
  ancestorId?: string | null;
}

export function scheduledTask(taskId: string, config: ConfigRef, options: TaskOptions = {}): ScheduledTaskT {
  const inline = Array.isArray(config) ? null : config;
  const assigned = new AssignedTaskT(taskId, options.slaveId ?? null, options.slaveHost ?? null, inline,
    options.ports ?? [], options.instanceId ?? 0, Array.isArray(config) ? config : []);
  return new ScheduledTaskT(assigned, options.status ?? ScheduleStatus.PENDING, options.failureCount ?? 0,
    options.timesPartitioned ?? 0, options.events ?? [], options.ancestorId ?? null);
}

export function taskEvent(timestamp: number, status: ScheduleStatus, message: string | null = null): TaskEventT {
  return new TaskEventT(BigInt(timestamp), status, message, 'scheduler-1');
}

type OpBody = UpsertTasksT | TransitionTaskT | DeleteTasksT | SaveCronJobT | RemoveCronJobT | SaveJobUpdateT |
  SaveJobUpdateEventT | SaveJobInstanceUpdateEventT | RemoveJobUpdatesT | SaveQuotaT | RemoveQuotaT |
  SaveHostAttributesT | SaveMaintenanceRequestT | RemoveMaintenanceRequestT | SaveSchedulerMetadataT;

const opTypes: [new (...args: never[]) => OpBody, Op][] = [
  [UpsertTasksT, Op.UpsertTasks], [TransitionTaskT, Op.TransitionTask], [DeleteTasksT, Op.DeleteTasks],
  [SaveCronJobT, Op.SaveCronJob], [RemoveCronJobT, Op.RemoveCronJob], [SaveJobUpdateT, Op.SaveJobUpdate],
  [SaveJobUpdateEventT, Op.SaveJobUpdateEvent], [SaveJobInstanceUpdateEventT, Op.SaveJobInstanceUpdateEvent],
  [RemoveJobUpdatesT, Op.RemoveJobUpdates], [SaveQuotaT, Op.SaveQuota], [RemoveQuotaT, Op.RemoveQuota],
  [SaveHostAttributesT, Op.SaveHostAttributes], [SaveMaintenanceRequestT, Op.SaveMaintenanceRequest],
  [RemoveMaintenanceRequestT, Op.RemoveMaintenanceRequest], [SaveSchedulerMetadataT, Op.SaveSchedulerMetadata],
];

export function operation(op: OpBody): OperationT {
  const entry = opTypes.find(([type]) => op instanceof type);
  if (entry === undefined) throw new Error('unknown op');
  return new OperationT(entry[1], op);
}

export function transitionOp(taskId: string, status: ScheduleStatus, fields: Partial<TransitionTaskT> = {}):
  OperationT {
  return operation(Object.assign(new TransitionTaskT(taskId, status), fields));
}

export const ops = {
  upsert: (...tasks: ScheduledTaskT[]) => operation(new UpsertTasksT(tasks)),
  transition: transitionOp,
  delete: (taskIds: string[], ignoreMissing = false) => operation(new DeleteTasksT(taskIds, ignoreMissing)),
  saveCron: (job: JobConfigurationT) => operation(new SaveCronJobT(job)),
  removeCron: (key: JobKeyT) => operation(new RemoveCronJobT(key)),
  saveUpdate: (update: JobUpdateT) => operation(new SaveJobUpdateT(update)),
  updateEvent: (key: JobUpdateKeyT, event: JobUpdateEventT) => operation(new SaveJobUpdateEventT(key, event)),
  instanceEvent: (key: JobUpdateKeyT, event: JobInstanceUpdateEventT) =>
    operation(new SaveJobInstanceUpdateEventT(key, event)),
  removeUpdates: (keys: JobUpdateKeyT[]) => operation(new RemoveJobUpdatesT(keys)),
  saveQuota: (role: string, resources: ResourceT[] | null) =>
    operation(new SaveQuotaT(role, resources === null ? null : new ResourceAggregateT(resources))),
  removeQuota: (role: string) => operation(new RemoveQuotaT(role)),
  saveHosts: (...hosts: HostAttributesT[]) => operation(new SaveHostAttributesT(hosts)),
  saveMaintenance: (request: HostMaintenanceRequestT) => operation(new SaveMaintenanceRequestT(request)),
  removeMaintenance: (host: string) => operation(new RemoveMaintenanceRequestT(host)),
  saveScheduler: (frameworkId: string, details: [string, string][] = []) => operation(new SaveSchedulerMetadataT(
    new SchedulerMetadataT(frameworkId, details.map(([key, value]) => new KeyValueT(key, value))))),
};

export interface TransactionExtras {
  preconditions?: PreconditionT[];
  configs?: TaskConfigT[];
  idempotency?: [string, number];
}

export function transaction(operations: OperationT[], extras: TransactionExtras = {}): TransactionT {
  const idempotency = extras.idempotency === undefined ? null :
    new IdempotencyKeyT(extras.idempotency[0], BigInt(extras.idempotency[1]));
  return new TransactionT(idempotency, extras.preconditions ?? [], extras.configs ?? [], operations);
}

export function precondition(table: RecordTable, kind: PreconditionKind, fields: Partial<PreconditionT> = {}):
  PreconditionT {
  return Object.assign(new PreconditionT(table, kind), fields);
}

export function cronJob(key: JobKeyT, config: ConfigRef, fields: Partial<JobConfigurationT> = {}): JobConfigurationT {
  const job = new JobConfigurationT(new JobKeyT(key.role, key.environment, key.name), new IdentityT(null, 'owner'),
    '*/5 * * * *');
  job.instanceCount = 1;
  if (Array.isArray(config)) job.configHash = config;
  else job.taskConfig = config;
  return Object.assign(job, fields);
}

export function instanceConfig(config: ConfigRef, ranges: [number, number][]): InstanceTaskConfigT {
  return new InstanceTaskConfigT(Array.isArray(config) ? null : config,
    ranges.map(([first, last]) => new RangeT(first, last)), Array.isArray(config) ? config : []);
}

export function jobUpdate(key: JobUpdateKeyT, initial: InstanceTaskConfigT[], desired: InstanceTaskConfigT | null,
  user: string | null = 'deployer', metadata: [string, string][] = []): JobUpdateT {
  const summary = new JobUpdateSummaryT(key, user, null, metadata.map(([k, v]) => new MetadataT(k, v)));
  return new JobUpdateT(summary, new JobUpdateInstructionsT(initial, desired, null));
}

export function updateEvent(status: number, timestampMs: number, user: string | null = null): JobUpdateEventT {
  return new JobUpdateEventT(status, BigInt(timestampMs), user, null);
}

export function instanceEvent(instanceId: number, timestampMs: number, action: number): JobInstanceUpdateEventT {
  return new JobInstanceUpdateEventT(instanceId, BigInt(timestampMs), action, null);
}

export function hostAttributes(host: string, attributes: [string, string[]][], fields: Partial<HostAttributesT> = {}):
  HostAttributesT {
  const value = new HostAttributesT(host, attributes.map(([name, values]) => new AttributeT(name, values)));
  return Object.assign(value, fields);
}

type QueryBody = TaskQueryT | JobKeysQueryT | RoleSummaryQueryT | JobSummaryQueryT | QuotaQueryT | CronJobsQueryT |
  JobUpdateQueryT | HostAttributesQueryT | MaintenanceQueryT | SchedulerQueryT;

const queryTypes: [new (...args: never[]) => QueryBody, Query][] = [
  [TaskQueryT, Query.TaskQuery], [JobKeysQueryT, Query.JobKeysQuery], [RoleSummaryQueryT, Query.RoleSummaryQuery],
  [JobSummaryQueryT, Query.JobSummaryQuery], [QuotaQueryT, Query.QuotaQuery], [CronJobsQueryT, Query.CronJobsQuery],
  [JobUpdateQueryT, Query.JobUpdateQuery], [HostAttributesQueryT, Query.HostAttributesQuery],
  [MaintenanceQueryT, Query.MaintenanceQuery], [SchedulerQueryT, Query.SchedulerQuery],
];

export function request(query: QueryBody): QueryRequestT {
  const entry = queryTypes.find(([type]) => query instanceof type);
  if (entry === undefined) throw new Error('unknown query');
  return new QueryRequestT(entry[1], query);
}

export function taskQuery(fields: Partial<TaskQueryT> = {}): QueryRequestT {
  return request(Object.assign(new TaskQueryT(), fields));
}

export function jobUpdateQuery(fields: Partial<JobUpdateQueryT> = {}): QueryRequestT {
  return request(Object.assign(new JobUpdateQueryT(), fields));
}
