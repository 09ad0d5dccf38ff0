/**
 * Reference model: a second, plain implementation of docs/semantics.md over JS Maps, for the model-based test
 * (test/model-engine.test.ts). Owner: tests only; it shares no code with the engine except the generated
 * FlatBuffers classes, the codec and core/config.ts (canonical config bytes and hashes).
 * Invariants: a transaction either fails whole (state and revision unchanged) or applies whole; the revision
 * grows by exactly 1 per transaction that changed something; every input is first round-tripped through
 * FlatBuffers, so the model sees exactly the bytes the engine sees, and every output is a fresh copy.
 *
 * Where docs/semantics.md leaves a question open, the model answers it as follows (each is a choice the engine
 * shares; the settled ones are on the page now: hash refs, limit order, state limits, ports, inputs first, text
 * rules, UNSET placeholders, dedicated, set semantics of query vectors):
 *  1. Check order inside an operation, where the page gives none: items (tasks, ids, hosts, keys, instance
 *     configs) in input order, the first failing item decides; within an item, a key's validity first (nothing
 *     can be looked up without it), then the checks in the order the page lists them. UpsertTasks, per task:
 *     assigned_task present, task_id, config (both/neither, hash length, inline validity, unknown hash),
 *     instance_id, status, event count, each event (status, message, scheduler), slave_id, slave_host,
 *     ancestor_id, ports, then "twice in one operation". SaveCronJob: key, cron_schedule, instance_count,
 *     cron_collision_policy, config, config job == key. SaveJobUpdate: key, instructions, instance config count,
 *     per InstanceTaskConfig (initial_state in order, then desired_state) config then ranges,
 *     update_only_these_instances, metadata keys. DeleteTasks, per id: valid, twice, missing. SaveHostAttributes:
 *     host count, then per host: host, twice, attributes, mode. Different codes only meet across items (e.g. a
 *     NOT_FOUND item before an INVALID_ARGUMENT one), as the generator puts at most one mistake in an item.
 *  2. Idempotency: an invalid client_id (control characters, > 256 bytes) is INVALID_ARGUMENT and is not
 *     remembered. Keys are forgotten oldest-first by first sight; a replay does not refresh a key. The replay is
 *     the first outcome verbatim (its revision, ops or error) with duplicate = true.
 *  3. Preconditions are taken one at a time, in order: kind and table enums, TASK_STATUS only on TASK, the status
 *     enum (TASK_STATUS only; the field is ignored otherwise), key fields, then the check itself; so an invalid
 *     precondition after a failing one is never reached (PRECONDITION_FAILED wins) and vice versa.
 *  4. Empty UpsertTasks, DeleteTasks, SaveHostAttributes and RemoveJobUpdates are no-ops (count 0).
 *  5. Only the listed no-op rules exist: re-saving an identical task, cron job, job update, quota or maintenance
 *     request is a write (new revision, new mod_revision); events are always appended.
 *  6. SaveJobUpdate does not require its instance configs' job to equal the update's job (only cron jobs do).
 *  7. Configs of JobUpdatesResult, in order of first use: per update, initial_state in order, then desired_state.
 *  8. Queries: JobUpdateQuery.update_statuses and config_detail values that are not members are
 *     INVALID_ARGUMENT, like TaskQuery.statuses. Other filters are not validated: a malformed role matches nothing.
 *     QuotaQuery needs a non-empty role but not a valid identifier. A request with no query is INVALID_ARGUMENT.
 *     An invalid query's response carries the current revision (tests do not compare it).
 *  9. "When set" for string filters means non-empty; only TaskQuery.role also ignores all-whitespace values.
 *     JobUpdateQuery.key, .job_key and CronJobsQuery.job apply when the table is present (exact match); every
 *     vector filter is a set.
 * 10. Host attributes are stored canonically: values as a sorted set ('' kept), identical attributes once,
 *     attributes with the same name and different values kept apart (sorted by name, then values). Host queries
 *     list each asked host once, skip unknown ones.
 * 11. SaveQuota without an aggregate stores an empty aggregate; resources are kept in the given order.
 *     QuotaResult always carries the four consumption totals, zeros included.
 * 12. Malformed keys in removals (DeleteTasks ids, RemoveCronJob, RemoveJobUpdates, RemoveQuota,
 *     RemoveMaintenanceRequest) are INVALID_ARGUMENT, not no-ops; a key twice in RemoveJobUpdates is fine.
 * 13. What passes validation is stored as given (only "empty is absent" applies, in nested tables too): task
 *     events and ports in the given order, instance ids of instance events, job update users and messages (no
 *     length or text rule: the page's text rules are those of tasks, task events and transitions), host
 *     attributes' slave_id.
 * 14. A failed transaction's result has revision 0 and no ops (schema.fbs); error.revision is the current one.
 */
import { text } from '../../core/text.js';
import {
  decodeQueryRequest, decodeQueryResponse, decodeTransaction, decodeTransactionResult, encode,
} from '../../core/codec.js';
import {
  ErrorCode, ErrorT, PreconditionT, QueryRequestT, QueryResponseT, Result, ScheduleStatus, TransactionResultT,
  TransactionT,
} from '../../core/fbs/strata.js';
import { invalid, isName, modelLimits, ModelError } from './reference-common.js';
import { runQuery } from './reference-queries.js';
import { copyState, dropUnreferencedConfigs, emptyState, State } from './reference-state.js';
import { Context } from './reference-configs.js';
import {
  applyOperation, checkPrecondition, checkTransactionLimits, preconditionRecord, transactionConfigsOf,
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
      checkTransactionLimits(transaction);
      const transactionConfigs = transactionConfigsOf(transaction);
      transaction.preconditions.forEach((precondition, index) => checkPrecondition(this.state, precondition, index));
      const context: Context = {
        state: copyState(this.state), configsBefore: this.state.configs, revisionNext: BigInt(this.revision + 1),
        transactionConfigs, tasksCounted: 0,
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
