/**
 * Reference model: a second, plain implementation of docs/semantics.md over JS Maps, for the model-based test
 * (test/model-engine.test.ts). Owner: tests only; it shares no code with the engine except the generated
 * FlatBuffers classes, the codec and core/config.ts (canonical config bytes and hashes).
 * Invariants: a transaction either fails whole (state and revision unchanged) or applies whole; the revision
 * grows by exactly 1 per transaction that changed something; every input is first round-tripped through
 * FlatBuffers, so the model sees exactly the bytes the engine sees, and every output is a fresh copy.
 *
 * Where docs/semantics.md leaves a question open, the model answers it as follows (each is a choice to align
 * the engine and the page on):
 *  1. (Settled by the page, step 3.) A config_hash resolves against the configs stored before the transaction
 *     and Transaction.configs only. Consequence the page does not spell out: a config given inline by an earlier
 *     item or operation of the same transaction (and not stored before) is NOT_FOUND when referred to by hash.
 *  2. Check order inside an operation: items (tasks, ids, hosts, keys, instance configs) in input order; within
 *     an item, in the order the page lists the checks, a key's validity first (nothing can be looked up without
 *     it). UpsertTasks, per task: assigned_task present, task_id, config (both/neither, hash length, inline
 *     validity, unknown hash), instance_id, status, event statuses, then "twice in one operation".
 *     TransitionTask: task_id, the task exists, status, expect_status (when has_expect_status), CAS, same status
 *     (no-op), enforce, event limit. Event ops: key, the update exists, event present and its enums, event limit.
 *     SaveCronJob: key, cron_schedule, instance_count, cron_collision_policy, config, config job == key.
 *     SaveJobUpdate: key, instructions, then per InstanceTaskConfig (initial_state in order, then desired_state):
 *     config, ranges. DeleteTasks, per id: valid, twice, missing.
 *  3. Limits (step 2) run before configs and preconditions and include inline configs. The count limits have
 *     op_index -1, except transactionTasksMax, which blames the operation at which the running count first
 *     exceeds it; an oversized config of Transaction.configs has op_index -1; an oversized inline config, or an
 *     upserted task with more than taskEventsMax events, has the op_index of its operation.
 *  4. transactionConfigsMax counts Transaction.configs only; transactionTasksMax counts upserted tasks, deleted
 *     ids and one per TransitionTask.
 *  5. A TransitionTask that would give a task more than taskEventsMax events is INVALID_ARGUMENT ("over a limit"),
 *     op_index set, checked after the no-op and enforce checks (a no-op transition never fails on it); the same
 *     for a job update's updateEventsMax.
 *  6. TransitionTask.assigned_ports: the object API always writes the vector (pack cannot leave it out), so for
 *     any transaction built with it the ports are always replaced; an empty list clears them.
 *  7. Idempotency: an empty client_id means no idempotency; an invalid client_id (control characters, > 256 bytes)
 *     is INVALID_ARGUMENT and is not remembered. Keys are forgotten oldest-first by first sight; a replay does
 *     not refresh a key. The replay is the first outcome verbatim (its revision, ops or error) with duplicate.
 *  8. Preconditions are taken one at a time, in order: kind and table enums, TASK_STATUS only on TASK, the status
 *     enum (TASK_STATUS only; the field is ignored otherwise), key fields, then the check itself; so an invalid
 *     precondition after a failing one is never reached (PRECONDITION_FAILED wins) and vice versa.
 *  9. Enum values: schema.fbs's UNSET placeholders (ResourceType, VolumeMode, JobUpdateAction 0) are not valid
 *     values (Aurora has no such value). Config validation is a valid job key, valid enums, and the size limit;
 *     Transaction.configs are validated even when no operation uses them (op_index -1).
 * 10. A config_hash of the wrong length (not 16 bytes) is INVALID_ARGUMENT; a 16-byte one that matches no config
 *     is NOT_FOUND.
 * 11. Empty UpsertTasks, DeleteTasks, SaveHostAttributes and RemoveJobUpdates are no-ops (count 0).
 * 12. Only the listed no-op rules exist: re-saving an identical task, cron job, job update, quota or maintenance
 *     request is a write (new revision, new mod_revision); events are always appended.
 * 13. SaveJobUpdate does not require its instance configs' job to equal the update's job (only cron jobs do).
 * 14. Configs of JobUpdatesResult, in order of first use: per update, initial_state in order, then desired_state.
 * 15. Dedicated (QuotaQuery): any constraint named "dedicated", as docs/semantics.md says; schema.fbs says "a
 *     value constraint named dedicated". A limit constraint named dedicated counts as dedicated here.
 * 16. Queries: a value that is not a member of its enum (TaskQuery.statuses, JobUpdateQuery.update_statuses,
 *     config_detail) is INVALID_ARGUMENT, like everywhere else. Other filters are not validated: a malformed role
 *     matches nothing. QuotaQuery needs a non-empty role but not a valid identifier. A request with no query is
 *     INVALID_ARGUMENT. An invalid query's response carries the current revision (tests do not compare it).
 * 17. "When set" for string filters means non-empty; only TaskQuery.role also ignores all-whitespace values.
 *     JobUpdateQuery.key, .job_key and CronJobsQuery.job apply when the table is present (exact match). Vector
 *     filters are sets: an entry given twice matches a record once.
 * 18. Host attributes are stored canonically: values as a sorted set, identical attributes once, attributes
 *     with the same name and different values kept apart (sorted by name, then values). Host queries list each
 *     asked host once, skip unknown ones.
 * 19. SaveQuota without an aggregate stores an empty aggregate; resources are kept in the given order.
 *     QuotaResult always carries the four consumption totals, zeros included.
 * 20. Malformed keys in removals (DeleteTasks ids, RemoveCronJob, RemoveJobUpdates, RemoveQuota,
 *     RemoveMaintenanceRequest) are INVALID_ARGUMENT, not no-ops; a key twice in RemoveJobUpdates is fine.
 * 21. slave_host, slave_id, ancestor_id, messages, port names, instance ids of instance events are stored as given
 *     (only "empty is absent" applies, in nested tables too); task events keep the given order.
 * 22. A failed transaction's result has revision 0 and no ops (schema.fbs); error.revision is the current one.
 */
import { text } from '../../core/config.js';
import {
  decodeQueryRequest, decodeQueryResponse, decodeTransaction, decodeTransactionResult, encode,
} from '../../core/codec.js';
import {
  ErrorCode, ErrorT, PreconditionT, QueryRequestT, QueryResponseT, Result, ScheduleStatus, TaskConfigT,
  TransactionResultT, TransactionT,
} from '../../core/fbs/strata.js';
import { invalid, isName, modelLimits, ModelError } from './reference-common.js';
import { runQuery } from './reference-queries.js';
import { ConfigRecord, copyState, dropUnreferencedConfigs, emptyState, State } from './reference-state.js';
import {
  applyOperation, checkLimits, checkPrecondition, checkTransactionConfigs, preconditionRecord,
} from './reference-transaction.js';

export class ReferenceModel {
  revision = 0;
  private state: State = emptyState();
  /** First outcomes by idempotency key, as TransactionResult bytes; Map order is first-sight order. */
  private readonly outcomes = new Map<string, Uint8Array>();

  commit(transactionInput: TransactionT): TransactionResultT {
    const transaction = decodeTransaction(encode(transactionInput));
    const clientId = text(transaction.idempotency?.clientId);
    if (clientId === '') return copyResult(this.apply(transaction));
    if (!isName(clientId)) return copyResult(this.errorResult(invalid('invalid idempotency client_id')));
    const key = `${clientId}\u0000${transaction.idempotency?.sequence ?? 0n}`;
    const first = this.outcomes.get(key);
    if (first !== undefined) {
      const replay = decodeTransactionResult(first);
      replay.duplicate = true;
      return replay;
    }
    const result = this.apply(transaction);
    if (result.error?.code !== ErrorCode.RESOURCE_EXHAUSTED) this.remember(key, result);
    return copyResult(result);
  }

  query(requestInput: QueryRequestT): QueryResponseT {
    const request = decodeQueryRequest(encode(requestInput));
    const revision = BigInt(this.revision);
    try {
      const { resultType, result } = runQuery(this.state, request);
      return decodeQueryResponse(encode(new QueryResponseT(revision, resultType, result, null)));
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      const failure = new ErrorT(error.code, error.message, -1, -1, revision);
      return decodeQueryResponse(encode(new QueryResponseT(revision, Result.NONE, null, failure)));
    }
  }

  /** Stored configs (count > 0). */
  configCount(): number {
    return this.state.configs.size;
  }

  taskCount(): number {
    return this.state.tasks.size;
  }

  // Read helpers for the generator (to write preconditions that hold and hashes that resolve).

  /** The mod_revision of the record a precondition names, or null when absent or when its key is invalid. */
  recordRevision(precondition: PreconditionT): bigint | null {
    try {
      return preconditionRecord(this.state, precondition, 0)?.modRevision ?? null;
    } catch {
      return null;
    }
  }

  taskStatus(taskId: string): ScheduleStatus | null {
    return this.state.tasks.get(taskId)?.task.status ?? null;
  }

  taskIds(): string[] {
    return [...this.state.tasks.keys()];
  }

  hasConfig(hashHex: string): boolean {
    return this.state.configs.has(hashHex);
  }

  /** Total references held on configs: each task, cron job and instance config once. */
  configReferenceCount(): number {
    let refs = 0;
    for (const record of this.state.configs.values()) refs += record.refs;
    return refs;
  }

  private apply(transaction: TransactionT): TransactionResultT {
    try {
      const inlineConfigs = new Map<TaskConfigT, ConfigRecord>();
      const transactionConfigs = checkLimits(transaction, inlineConfigs);
      checkTransactionConfigs(transactionConfigs);
      transaction.preconditions.forEach((precondition, index) => checkPrecondition(this.state, precondition, index));
      const context = {
        state: copyState(this.state), configsBefore: this.state.configs, revisionNext: BigInt(this.revision + 1),
        transactionConfigs, inlineConfigs,
      };
      const ops = transaction.ops.map((operation, opIndex) => applyOperation(context, operation, opIndex));
      if (ops.every((op) => op.noop)) return new TransactionResultT(BigInt(this.revision), null, ops, false);
      dropUnreferencedConfigs(context.state);
      this.state = context.state;
      this.revision += 1;
      return new TransactionResultT(BigInt(this.revision), null, ops, false);
    } catch (error) {
      if (error instanceof ModelError) return this.errorResult(error);
      throw error;
    }
  }

  private errorResult(error: ModelError): TransactionResultT {
    const failure = new ErrorT(error.code, error.message, error.opIndex, error.preconditionIndex,
      BigInt(this.revision));
    return new TransactionResultT(0n, failure, [], false);
  }

  private remember(key: string, result: TransactionResultT): void {
    this.outcomes.set(key, encode(result));
    if (this.outcomes.size <= modelLimits.idempotencyKeysMax) return;
    const oldest = this.outcomes.keys().next();
    if (oldest.done !== true) this.outcomes.delete(oldest.value);
  }
}

function copyResult(result: TransactionResultT): TransactionResultT {
  return decodeTransactionResult(encode(result));
}
