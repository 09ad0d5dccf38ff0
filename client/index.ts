/**
 * The strata client SDK (docs/protocol.md describes the wire it speaks). Owner: the caller's thread.
 * Invariants: this file only re-exports; each module states its own.
 */
export { StrataClient } from './client.js';
export {
  Connection, type ClientEvents, type ClientOptions, type WebSocketConstructor, type WebSocketLike,
} from './connection.js';
export type { ReconnectOptions } from './backoff.js';
export {
  CompactedError, ProtocolError, StrataError, TimeoutError, UnavailableError,
} from './errors.js';
export type { JobKeyLike, JobUpdateKeyLike } from './keys.js';
export type { CronJobsQueryFields, JobUpdateQueryFields, QueryResult, TaskQueryFields } from './queries.js';
export { TransactionBuilder, type RecordRef, type TransitionOptions } from './transaction.js';
export { Watch, type WatchFilterFields, type WatchMessage, type WatchOptions } from './watch.js';
/** The generated FlatBuffers types (object API: TransactionResultT, QueryResponseT, RevisionChangesT, ...). */
export * as fbs from '../core/fbs/strata.js';
export { ErrorCode, RecordTable, ScheduleStatus } from '../core/fbs/strata.js';
