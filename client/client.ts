/**
 * StrataClient: the typed requests of the protocol (docs/protocol.md) on top of Connection. Owner: the caller's
 * thread.
 * Invariants: which requests are resent after a lost connection is decided here, once per request kind:
 * queries, status, backup listings and commits with an idempotency key are (the same bytes, so the same key:
 * the server applies it at most once); a commit without a key and the admin actions are not.
 */
import { randomUUID } from 'node:crypto';
import { checkedBuffer } from '../core/checked.js';
import { encode } from '../core/codec.js';
import {
  BackupCommitResponseT, BackupInfoT, BackupStageResponseT, Body, CronJobsResultT, FileResponseT,
  HostAttributesResultT, IdempotencyKeyT, JobKeysResultT, JobSummaryResultT, JobUpdatesResultT, MaintenanceResultT,
  QueryRequestT, QueryResponseT, QuotaResultT, Result, RoleSummaryResultT, SchedulerResultT, StatusResponseT,
  TasksResultT, Transaction, TransactionResultT, TransactionT,
} from '../core/fbs/strata.js';
import { type ClientOptions, Connection } from './connection.js';
import {
  cronJobsQuery, type CronJobsQueryFields, hostAttributesQuery, jobKeysQuery, jobSummaryQuery, jobUpdateQuery,
  type JobUpdateQueryFields, maintenanceQuery, type QueryResult, quotaQuery, resultOf, roleSummaryQuery,
  schedulerQuery, taskQuery, type TaskQueryFields,
} from './queries.js';
import { TransactionBuilder, type TransactionHost } from './transaction.js';
import {
  type EmptyRequest, encodeBackupStage, encodeCommit, encodeEmpty, encodeQuery, type Incoming,
} from './wire.js';

export class StrataClient extends Connection implements TransactionHost {
  /** This client's idempotency id: random per instance, so two clients never share keys. */
  readonly idempotencyClientId: string = randomUUID();
  private idempotencySequence = 0n;

  private constructor(options: ClientOptions) {
    super(options);
  }

  /**
   * Connects and says Hello. Rejects if that first attempt fails (StrataError UNAUTHENTICATED or INVALID_ARGUMENT
   * for a refused Hello, UnavailableError otherwise); later losses reconnect by themselves.
   */
  static async connect(options: ClientOptions): Promise<StrataClient> {
    const client = new StrataClient(options);
    await client.start();
    return client;
  }

  // --- commits ---------------------------------------------------------------------------------------------

  /** A new transaction builder with this client's automatic idempotency key. */
  txn(): TransactionBuilder {
    return new TransactionBuilder(this);
  }

  nextIdempotencyKey(): IdempotencyKeyT {
    this.idempotencySequence++;
    return new IdempotencyKeyT(this.idempotencyClientId, this.idempotencySequence);
  }

  /**
   * Commits a transaction: Transaction bytes, a TransactionT or a builder. Resolves with its TransactionResult
   * (a failed transaction's error is in result.error); rejects only for request-level failures.
   */
  commit(transaction: Uint8Array | TransactionT | TransactionBuilder): Promise<TransactionResultT> {
    let bytes: Uint8Array;
    let keyed: boolean;
    try {
      if (transaction instanceof TransactionBuilder) {
        bytes = transaction.encode();
        keyed = transaction.keyed;
      } else if (transaction instanceof TransactionT) {
        bytes = encode(transaction, 4096);
        keyed = transaction.idempotency !== null;
      } else {
        bytes = transaction;
        keyed = hasIdempotencyKey(bytes);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.request(keyed ? 'commit' : 'commit without idempotency key', (id) => encodeCommit(id, bytes), keyed,
      'commit', (m) => (m as Extract<Incoming, { type: 'commit' }>).body, !keyed);
  }

  // --- queries ---------------------------------------------------------------------------------------------

  /** One query on the latest revision; its error, if any, is in the response. */
  query(request: Uint8Array | QueryRequestT): Promise<QueryResponseT> {
    return this.queryOn(request, false);
  }

  /** One query on the staged backup (admin). */
  queryStaged(request: Uint8Array | QueryRequestT): Promise<QueryResponseT> {
    return this.queryOn(request, true);
  }

  private queryOn(request: Uint8Array | QueryRequestT, staged: boolean): Promise<QueryResponseT> {
    let bytes: Uint8Array;
    try {
      bytes = request instanceof Uint8Array ? request : encode(request, 256);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.request(staged ? 'staged query' : 'query', (id) => encodeQuery(id, bytes, staged), true, 'query',
      (m) => (m as Extract<Incoming, { type: 'query' }>).body);
  }

  private typed<T>(bytes: Uint8Array, type: Result): Promise<QueryResult<T>> {
    return this.query(bytes).then((response) => resultOf<T>(response, type));
  }

  tasks(fields: TaskQueryFields = {}): Promise<QueryResult<TasksResultT>> {
    return this.typed(taskQuery(fields), Result.TasksResult);
  }

  jobKeys(role: string): Promise<QueryResult<JobKeysResultT>> {
    return this.typed(jobKeysQuery(role), Result.JobKeysResult);
  }

  roleSummary(): Promise<QueryResult<RoleSummaryResultT>> {
    return this.typed(roleSummaryQuery(), Result.RoleSummaryResult);
  }

  jobSummary(role: string): Promise<QueryResult<JobSummaryResultT>> {
    return this.typed(jobSummaryQuery(role), Result.JobSummaryResult);
  }

  quota(role: string): Promise<QueryResult<QuotaResultT>> {
    return this.typed(quotaQuery(role), Result.QuotaResult);
  }

  cronJobs(fields: CronJobsQueryFields = {}): Promise<QueryResult<CronJobsResultT>> {
    return this.typed(cronJobsQuery(fields), Result.CronJobsResult);
  }

  jobUpdates(fields: JobUpdateQueryFields = {}): Promise<QueryResult<JobUpdatesResultT>> {
    return this.typed(jobUpdateQuery(fields), Result.JobUpdatesResult);
  }

  /** Host attributes of these hosts (none: every host). */
  hosts(hosts: string[] = []): Promise<QueryResult<HostAttributesResultT>> {
    return this.typed(hostAttributesQuery(hosts), Result.HostAttributesResult);
  }

  /** Maintenance requests of these hosts (none: every host). */
  maintenance(hosts: string[] = []): Promise<QueryResult<MaintenanceResultT>> {
    return this.typed(maintenanceQuery(hosts), Result.MaintenanceResult);
  }

  scheduler(): Promise<QueryResult<SchedulerResultT>> {
    return this.typed(schedulerQuery(), Result.SchedulerResult);
  }

  // --- status and admin ------------------------------------------------------------------------------------

  private empty<T>(what: string, type: EmptyRequest, retry: boolean, expect: Incoming['type']): Promise<T> {
    return this.request(what, (id) => encodeEmpty(id, type), retry, expect, (m) => (m as unknown as { body: T }).body);
  }

  status(): Promise<StatusResponseT> {
    return this.empty('status', Body.StatusRequest, true, 'status');
  }

  /** Admin: a snapshot now. Not resent after a lost connection (UnavailableError: check status, retry). */
  snapshot(): Promise<FileResponseT> {
    return this.empty('snapshot', Body.SnapshotRequest, false, 'file');
  }

  /** Admin: a backup now. */
  backup(): Promise<FileResponseT> {
    return this.empty('backup', Body.BackupRequest, false, 'file');
  }

  listBackups(): Promise<BackupInfoT[]> {
    return this.request('backup list', (id) => encodeEmpty(id, Body.BackupListRequest), true, 'backupList',
      (m) => (m as Extract<Incoming, { type: 'backupList' }>).body.backups);
  }

  stageBackup(name: string): Promise<BackupStageResponseT> {
    return this.request('backup stage', (id) => encodeBackupStage(id, name), false, 'backupStage',
      (m) => (m as Extract<Incoming, { type: 'backupStage' }>).body);
  }

  /** Admin: replace the state with the staged backup. Live watches get a reset. */
  commitStaged(): Promise<BackupCommitResponseT> {
    return this.empty('backup commit', Body.BackupCommitRequest, false, 'backupCommit');
  }

  unloadStaged(): Promise<void> {
    return this.request('backup unload', (id) => encodeEmpty(id, Body.BackupUnloadRequest), false, 'ok', () => undefined);
  }
}

function hasIdempotencyKey(bytes: Uint8Array): boolean {
  try {
    return Transaction.getRootAsTransaction(checkedBuffer(bytes)).idempotency() !== null;
  } catch {
    return false; // malformed: the server answers INVALID_ARGUMENT; never resent
  }
}
