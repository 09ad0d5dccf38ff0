/**
 * The transaction builder: operations and preconditions collected with the object API (TransactionT), encoded
 * once, committed through the client. Owner: the caller's thread.
 * Invariants:
 * - A builder gets its idempotency key (the client's random id, the client's next sequence) the first time it
 *   is built, and keeps it: committing the same builder again (a manual retry) sends the same key, so the server
 *   applies it at most once. After the first build the builder is frozen: adding to it throws.
 * - The op and precondition counts stay within core/limits.ts (checked at build, before anything is sent).
 */
import { encode } from '../core/codec.js';
import {
  DeleteTasksT, ErrorCode, HostAttributesT, HostMaintenanceRequestT, IdempotencyKeyT, JobConfigurationT,
  JobInstanceUpdateEventT, JobUpdateEventT, JobUpdateT, Op, OperationT, PortT, PreconditionKind, PreconditionT,
  RecordTable, RemoveCronJobT, RemoveJobUpdatesT, RemoveMaintenanceRequestT, RemoveQuotaT, ResourceAggregateT,
  ResourceT, SaveCronJobT, SaveHostAttributesT, SaveJobInstanceUpdateEventT, SaveJobUpdateEventT, SaveJobUpdateT,
  SaveMaintenanceRequestT, SaveQuotaT, SaveSchedulerMetadataT, ScheduledTaskT, ScheduleStatus, SchedulerMetadataT,
  TaskConfigT, TransactionResultT, TransactionT, TransitionTaskT, UpsertTasksT,
} from '../core/fbs/strata.js';
import { transactionConfigsMax, transactionOpsMax, transactionPreconditionsMax } from '../core/limits.js';
import { StrataError } from './errors.js';
import { jobKey, type JobKeyLike, jobUpdateKey, type JobUpdateKeyLike, revisionOf } from './keys.js';

/** One record, named for a precondition. */
export type RecordRef =
  | { task: string }
  | { cronJob: JobKeyLike }
  | { jobUpdate: JobUpdateKeyLike }
  | { quota: string }
  | { hostAttributes: string }
  | { maintenance: string }
  | { scheduler: true };

export interface TransitionOptions {
  /** Compare-and-set: the transition fails (PRECONDITION_FAILED) unless the task is in this status. */
  expectStatus?: ScheduleStatus;
  /** Refuse a transition Aurora's state machine does not allow (ILLEGAL_TRANSITION). */
  enforce?: boolean;
  /** The TaskEvent's timestamp (Unix ms); default: now. */
  timestamp?: bigint | number;
  message?: string;
  scheduler?: string;
  slaveId?: string;
  slaveHost?: string;
  assignedPorts?: { name: string; port: number }[];
  failureCount?: number;
  timesPartitioned?: number;
}

/** What a builder needs of its client. */
export interface TransactionHost {
  nextIdempotencyKey(): IdempotencyKeyT;
  commit(transaction: TransactionBuilder): Promise<TransactionResultT>;
}

export class TransactionBuilder {
  private readonly transaction = new TransactionT();
  private keyMode: 'auto' | 'none' | 'given' = 'auto';
  private encoded: Uint8Array | null = null;

  constructor(private readonly host: TransactionHost | null) {}

  private op(type: Op, value: OperationT['op']): this {
    this.mutable();
    this.transaction.ops.push(new OperationT(type, value));
    return this;
  }

  private mutable(): void {
    if (this.encoded !== null) {
      throw new StrataError(ErrorCode.INVALID_ARGUMENT, 'this transaction was built already (its key names it): start a new one');
    }
  }

  upsertTasks(tasks: ScheduledTaskT[]): this {
    return this.op(Op.UpsertTasks, new UpsertTasksT(tasks));
  }

  transition(taskId: string, status: ScheduleStatus, options: TransitionOptions = {}): this {
    const t = new TransitionTaskT();
    t.taskId = taskId;
    t.status = status;
    if (options.expectStatus !== undefined) {
      t.hasExpectStatus = true;
      t.expectStatus = options.expectStatus;
    }
    t.enforce = options.enforce ?? false;
    t.timestamp = revisionOf(options.timestamp ?? Date.now());
    t.message = options.message ?? null;
    t.scheduler = options.scheduler ?? null;
    t.slaveId = options.slaveId ?? null;
    t.slaveHost = options.slaveHost ?? null;
    t.assignedPorts = (options.assignedPorts ?? []).map((p) => new PortT(p.name, p.port));
    t.failureCount = options.failureCount ?? -1;
    t.timesPartitioned = options.timesPartitioned ?? -1;
    return this.op(Op.TransitionTask, t);
  }

  deleteTasks(taskIds: string[], options: { ignoreMissing?: boolean } = {}): this {
    return this.op(Op.DeleteTasks, new DeleteTasksT(taskIds, options.ignoreMissing ?? false));
  }

  saveCronJob(job: JobConfigurationT): this {
    return this.op(Op.SaveCronJob, new SaveCronJobT(job));
  }

  removeCronJob(key: JobKeyLike): this {
    return this.op(Op.RemoveCronJob, new RemoveCronJobT(jobKey(key)));
  }

  saveJobUpdate(update: JobUpdateT): this {
    return this.op(Op.SaveJobUpdate, new SaveJobUpdateT(update));
  }

  saveJobUpdateEvent(key: JobUpdateKeyLike, event: JobUpdateEventT): this {
    return this.op(Op.SaveJobUpdateEvent, new SaveJobUpdateEventT(jobUpdateKey(key), event));
  }

  saveJobInstanceUpdateEvent(key: JobUpdateKeyLike, event: JobInstanceUpdateEventT): this {
    return this.op(Op.SaveJobInstanceUpdateEvent, new SaveJobInstanceUpdateEventT(jobUpdateKey(key), event));
  }

  removeJobUpdates(keys: JobUpdateKeyLike[]): this {
    return this.op(Op.RemoveJobUpdates, new RemoveJobUpdatesT(keys.map(jobUpdateKey)));
  }

  saveQuota(role: string, quota: ResourceAggregateT | ResourceT[]): this {
    const aggregate = Array.isArray(quota) ? new ResourceAggregateT(quota) : quota;
    return this.op(Op.SaveQuota, new SaveQuotaT(role, aggregate));
  }

  removeQuota(role: string): this {
    return this.op(Op.RemoveQuota, new RemoveQuotaT(role));
  }

  saveHostAttributes(attributes: HostAttributesT[]): this {
    return this.op(Op.SaveHostAttributes, new SaveHostAttributesT(attributes));
  }

  saveMaintenanceRequest(request: HostMaintenanceRequestT): this {
    return this.op(Op.SaveMaintenanceRequest, new SaveMaintenanceRequestT(request));
  }

  removeMaintenanceRequest(host: string): this {
    return this.op(Op.RemoveMaintenanceRequest, new RemoveMaintenanceRequestT(host));
  }

  saveSchedulerMetadata(metadata: SchedulerMetadataT): this {
    return this.op(Op.SaveSchedulerMetadata, new SaveSchedulerMetadataT(metadata));
  }

  /** A config that operations of this transaction name by config_hash (stored once). */
  addConfig(config: TaskConfigT): this {
    this.mutable();
    this.transaction.configs.push(config);
    return this;
  }

  private precondition(ref: RecordRef, kind: PreconditionKind, revision = 0n, status = ScheduleStatus.PENDING): this {
    this.mutable();
    const p = new PreconditionT();
    p.kind = kind;
    p.revision = revision;
    p.status = status;
    if ('task' in ref) {
      p.table = RecordTable.TASK;
      p.taskId = ref.task;
    } else if ('cronJob' in ref) {
      p.table = RecordTable.CRON_JOB;
      p.job = jobKey(ref.cronJob);
    } else if ('jobUpdate' in ref) {
      p.table = RecordTable.JOB_UPDATE;
      p.updateKey = jobUpdateKey(ref.jobUpdate);
    } else if ('quota' in ref) {
      p.table = RecordTable.QUOTA;
      p.role = ref.quota;
    } else if ('hostAttributes' in ref) {
      p.table = RecordTable.HOST_ATTRIBUTES;
      p.host = ref.hostAttributes;
    } else if ('maintenance' in ref) {
      p.table = RecordTable.MAINTENANCE_REQUEST;
      p.host = ref.maintenance;
    } else {
      p.table = RecordTable.SCHEDULER;
    }
    this.transaction.preconditions.push(p);
    return this;
  }

  /** The record must not exist. */
  expectAbsent(ref: RecordRef): this {
    return this.precondition(ref, PreconditionKind.ABSENT);
  }

  /** The record must exist. */
  expectPresent(ref: RecordRef): this {
    return this.precondition(ref, PreconditionKind.PRESENT);
  }

  /** The record must exist and have been last changed at `revision` (its mod_revision). */
  expectRevision(ref: RecordRef, revision: bigint | number): this {
    return this.precondition(ref, PreconditionKind.AT_REVISION, revisionOf(revision));
  }

  /** The task must exist and be in `status`. */
  expectTaskStatus(taskId: string, status: ScheduleStatus): this {
    return this.precondition({ task: taskId }, PreconditionKind.TASK_STATUS, 0n, status);
  }

  /** Use this key instead of the automatic one (e.g. one persisted across a restart of the caller). */
  idempotencyKey(clientId: string, sequence: bigint | number): this {
    this.mutable();
    this.keyMode = 'given';
    this.transaction.idempotency = new IdempotencyKeyT(clientId, revisionOf(sequence));
    return this;
  }

  /** No key: a commit lost with its connection then fails with UnavailableError (outcome unknown). */
  withoutIdempotencyKey(): this {
    this.mutable();
    this.keyMode = 'none';
    this.transaction.idempotency = null;
    return this;
  }

  get opCount(): number {
    return this.transaction.ops.length;
  }

  get keyed(): boolean {
    return this.keyMode !== 'none';
  }

  /** The transaction (with its key assigned); the builder is frozen from here on. */
  build(): TransactionT {
    this.encode();
    return this.transaction;
  }

  /** The Transaction's FlatBuffers bytes (computed once). */
  encode(): Uint8Array {
    if (this.encoded !== null) return this.encoded;
    const t = this.transaction;
    const invalid = (message: string) => new StrataError(ErrorCode.INVALID_ARGUMENT, message);
    if (t.ops.length === 0) throw invalid('a transaction needs at least one operation');
    if (t.ops.length > transactionOpsMax) throw invalid(`${t.ops.length} operations (at most ${transactionOpsMax})`);
    if (t.preconditions.length > transactionPreconditionsMax) {
      throw invalid(`${t.preconditions.length} preconditions (at most ${transactionPreconditionsMax})`);
    }
    if (t.configs.length > transactionConfigsMax) throw invalid(`${t.configs.length} configs (at most ${transactionConfigsMax})`);
    if (this.keyMode === 'auto') {
      if (this.host === null) throw invalid('a builder without a client needs idempotencyKey() or withoutIdempotencyKey()');
      t.idempotency = this.host.nextIdempotencyKey();
    }
    this.encoded = encode(t, 4096);
    return this.encoded;
  }

  /** Commits through the client that made this builder: the decoded TransactionResult (errors are inside it). */
  commit(): Promise<TransactionResultT> {
    if (this.host === null) return Promise.reject(new StrataError(ErrorCode.INVALID_ARGUMENT, 'this builder has no client'));
    return this.host.commit(this);
  }
}
