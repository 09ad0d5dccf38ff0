/**
 * Reference model, one transaction: whole-transaction limits, Transaction.configs, preconditions, operations
 * (each with its own limits), in the order of docs/semantics.md. Owner: tests only.
 * Invariants: `applyTransaction` either throws a ModelError (and the caller drops the working copy) or returns
 * one OpResult per operation; nothing outside the working copy is touched; a precondition is judged against the
 * state before the first operation.
 */
import { text } from '../../core/text.js';
import {
  DeleteTasksT, ErrorCode, OperationT, Op, OpResultT, PreconditionKind, PreconditionT, RecordTable,
  ScheduleStatus, TransactionT, TransitionTaskT, UpsertTasksT,
} from '../../core/fbs/strata.js';
import {
  invalid, isIdentifier, isJobKey, isMember, isName, isStatus, isUpdateKey, jobKeyString, modelLimits, ModelError,
  updateKeyString,
} from './reference-common.js';
import { configProblem, Context } from './reference-configs.js';
import { saveHostAttributes, removeMaintenanceRequest, removeQuota, saveMaintenanceRequest, saveQuota,
  saveSchedulerMetadata } from './reference-hosts.js';
import { removeCronJob, removeJobUpdates, saveCronJob, saveJobInstanceUpdateEvent, saveJobUpdate,
  saveJobUpdateEvent } from './reference-jobs.js';
import { ConfigRecord, configRecord, State } from './reference-state.js';
import { deleteTasks, transitionTask, upsertTasks } from './reference-tasks.js';

/** Tasks an operation names: upserted tasks, deleted ids, one per transition. */
function taskCount(operation: OperationT): number {
  if (operation.op instanceof UpsertTasksT) return operation.op.tasks.length;
  if (operation.op instanceof DeleteTasksT) return operation.op.taskIds.length;
  return operation.op instanceof TransitionTaskT ? 1 : 0;
}

/** Step 2, limits on the transaction as a whole (no index); the others are checked with their operation. */
export function checkTransactionLimits(transaction: TransactionT): void {
  if (transaction.ops.length > modelLimits.transactionOpsMax) throw invalid('too many operations');
  if (transaction.preconditions.length > modelLimits.transactionPreconditionsMax) {
    throw invalid('too many preconditions');
  }
  if (transaction.configs.length > modelLimits.transactionConfigsMax) throw invalid('too many configs');
}

/** Step 3: each config of Transaction.configs is validated (job, enums, size; no index) and hashed. */
export function transactionConfigsOf(transaction: TransactionT): Map<string, ConfigRecord> {
  const configs = new Map<string, ConfigRecord>();
  for (const config of transaction.configs) {
    const record = configRecord(config);
    const problem = configProblem(record);
    if (problem !== null) throw invalid(`Transaction.configs: ${problem}`);
    configs.set(record.hashHex, record);
  }
  return configs;
}

export interface RecordView { modRevision: bigint; status: ScheduleStatus | null }

/** The record a precondition names, or null when it is not stored; throws on invalid key fields. */
export function preconditionRecord(state: State, precondition: PreconditionT, index: number): RecordView | null {
  const bad = (what: string): ModelError => invalid(`precondition ${index}: invalid ${what}`, -1, index);
  switch (precondition.table) {
    case RecordTable.TASK: {
      const taskId = text(precondition.taskId);
      if (!isName(taskId)) throw bad('task_id');
      const task = state.tasks.get(taskId)?.task;
      return task === undefined ? null : { modRevision: task.modRevision, status: task.status };
    }
    case RecordTable.CRON_JOB:
      if (!isJobKey(precondition.job)) throw bad('job');
      return view(state.cronJobs.get(jobKeyString(precondition.job))?.job.modRevision);
    case RecordTable.JOB_UPDATE:
      if (!isUpdateKey(precondition.updateKey)) throw bad('update_key');
      return view(state.updates.get(updateKeyString(precondition.updateKey))?.details.modRevision);
    case RecordTable.QUOTA:
      if (!isIdentifier(text(precondition.role))) throw bad('role');
      return view(state.quotas.get(text(precondition.role))?.modRevision);
    case RecordTable.HOST_ATTRIBUTES:
      if (!isName(text(precondition.host))) throw bad('host');
      return view(state.hosts.get(text(precondition.host))?.modRevision);
    case RecordTable.MAINTENANCE_REQUEST:
      if (!isName(text(precondition.host))) throw bad('host');
      return view(state.maintenance.get(text(precondition.host))?.modRevision);
    case RecordTable.SCHEDULER:
      return view(state.scheduler?.modRevision);
    default:
      throw bad('table');
  }
}

function view(modRevision: bigint | undefined): RecordView | null {
  return modRevision === undefined ? null : { modRevision, status: null };
}

export function checkPrecondition(state: State, precondition: PreconditionT, index: number): void {
  const kind = precondition.kind;
  if (!isMember(PreconditionKind, kind)) throw invalid(`precondition ${index}: kind ${kind}`, -1, index);
  if (!isMember(RecordTable, precondition.table)) {
    throw invalid(`precondition ${index}: table ${precondition.table}`, -1, index);
  }
  if (kind === PreconditionKind.TASK_STATUS && precondition.table !== RecordTable.TASK) {
    throw invalid(`precondition ${index}: TASK_STATUS on a table other than TASK`, -1, index);
  }
  if (kind === PreconditionKind.TASK_STATUS && !isStatus(precondition.status)) {
    throw invalid(`precondition ${index}: status ${precondition.status}`, -1, index);
  }
  const record = preconditionRecord(state, precondition, index);
  const holds =
    kind === PreconditionKind.ABSENT ? record === null :
    kind === PreconditionKind.PRESENT ? record !== null :
    kind === PreconditionKind.AT_REVISION ? record !== null && record.modRevision === precondition.revision :
    record !== null && record.status === precondition.status;
  if (!holds) {
    throw new ModelError(ErrorCode.PRECONDITION_FAILED, `precondition ${index} does not hold`, -1, index);
  }
}

type Apply = (context: Context, op: never, opIndex: number) => OpResultT;

const operations: ReadonlyMap<Op, Apply> = new Map<Op, Apply>([
  [Op.UpsertTasks, upsertTasks as Apply],
  [Op.TransitionTask, transitionTask as Apply],
  [Op.DeleteTasks, deleteTasks as Apply],
  [Op.SaveCronJob, saveCronJob as Apply],
  [Op.RemoveCronJob, removeCronJob as Apply],
  [Op.SaveJobUpdate, saveJobUpdate as Apply],
  [Op.SaveJobUpdateEvent, saveJobUpdateEvent as Apply],
  [Op.SaveJobInstanceUpdateEvent, saveJobInstanceUpdateEvent as Apply],
  [Op.RemoveJobUpdates, removeJobUpdates as Apply],
  [Op.SaveQuota, saveQuota as Apply],
  [Op.RemoveQuota, removeQuota as Apply],
  [Op.SaveHostAttributes, saveHostAttributes as Apply],
  [Op.SaveMaintenanceRequest, saveMaintenanceRequest as Apply],
  [Op.RemoveMaintenanceRequest, removeMaintenanceRequest as Apply],
  [Op.SaveSchedulerMetadata, saveSchedulerMetadata as Apply],
]);

/**
 * Step 5, one operation: transactionTasksMax first (the operation at which the running count first exceeds it
 * is to blame), then the operation's own checks, item by item.
 */
export function applyOperation(context: Context, operation: OperationT, opIndex: number): OpResultT {
  const apply = operations.get(operation.opType);
  if (apply === undefined || operation.op === null) throw invalid(`operation without an op`, opIndex);
  context.tasksCounted += taskCount(operation);
  if (context.tasksCounted > modelLimits.transactionTasksMax) throw invalid('too many tasks', opIndex);
  return apply(context, operation.op as never, opIndex);
}

