/**
 * The server's side of the wire protocol (docs/protocol.md): decoding a client's Envelope, encoding every
 * message the server sends. Owner: the main thread.
 *
 * Invariants:
 * - Client bytes are read through a bounds-checked ByteBuffer (core/checked.ts): a malformed frame throws
 *   MalformedError where it is first read, never loops or allocates without bound.
 * - Nested payloads (transactions, queries, their results, revision changes) are copied as bytes, never decoded
 *   and re-encoded here.
 * - One Builder is reused; every encoder returns a fresh copy of its bytes.
 */
import * as flatbuffers from 'flatbuffers';
import { checkedBuffer } from '../core/checked.js';
import {
  BackupCommitResponse, BackupInfo, BackupListResponse, BackupStageResponse, Body, CommitResponse, Envelope, ErrorCode,
  ErrorResponse, FileResponse, HelloResponse, Limits, OkResponse, QueryResponseMessage, RevisionBytes,
  StatusResponse, WatchEnded, QueryRequest, Query, TaskQuery, JobKey, CronJobsQuery, JobUpdateQuery, QuotaQuery,
  HostAttributesQuery, MaintenanceQuery, SchedulerQuery, TransactionResult, ConfigDetail, QueryResponse, Result,
  CronJobsResultT, JobUpdatesResultT, WatchEvents, WatchProgress, WatchResponse, WatchState, WatchStateEnd,
  Error as ErrorTable,
} from '../core/fbs/strata.js';

export const protocolVersion = 1;

const b = new flatbuffers.Builder(64 * 1024);

/** Decodes a client frame's envelope (checked reads): its id and body type; the body is read by the caller. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  return Envelope.getRootAsEnvelope(checkedBuffer(bytes));
}

function finish(id: number, type: Body, body: number): Uint8Array {
  Envelope.startEnvelope(b);
  Envelope.addId(b, id);
  Envelope.addBodyType(b, type);
  Envelope.addBody(b, body);
  b.finish(Envelope.endEnvelope(b));
  const out = b.asUint8Array().slice();
  b.clear();
  return out;
}

/** A byte vector whose contents start 8-aligned (nested FlatBuffers need it). */
function nested(bytes: Uint8Array): number {
  b.prep(8, bytes.length);
  return b.createByteVector(bytes);
}

function errorTable(code: ErrorCode, message: string, revision: number): number {
  const text = b.createString(message);
  ErrorTable.startError(b);
  ErrorTable.addCode(b, code);
  ErrorTable.addMessage(b, text);
  ErrorTable.addRevision(b, BigInt(revision));
  return ErrorTable.endError(b);
}

export function errorResponse(id: number, code: ErrorCode, message: string, revision = 0): Uint8Array {
  return finish(id, Body.ErrorResponse, ErrorResponse.createErrorResponse(b, errorTable(code, message, revision)));
}

export function okResponse(id: number): Uint8Array {
  OkResponse.startOkResponse(b);
  return finish(id, Body.OkResponse, OkResponse.endOkResponse(b));
}

export interface HelloAnswer {
  serverVersion: string; revision: number; frameBytesMax: number; requestsInFlightMax: number;
  subscriptionsMax: number; requestsPerSecondMax: number; admin: boolean; readAll: boolean; writeAll: boolean;
  readRoles: string[]; writeRoles: string[];
}

export function helloResponse(id: number, a: HelloAnswer): Uint8Array {
  const version = b.createString(a.serverVersion);
  const read = HelloResponse.createReadRolesVector(b, a.readRoles.map((r) => b.createString(r)));
  const write = HelloResponse.createWriteRolesVector(b, a.writeRoles.map((r) => b.createString(r)));
  const limits = Limits.createLimits(b, a.frameBytesMax, a.requestsInFlightMax, a.subscriptionsMax, a.requestsPerSecondMax);
  HelloResponse.startHelloResponse(b);
  HelloResponse.addProtocol(b, protocolVersion);
  HelloResponse.addServerVersion(b, version);
  HelloResponse.addRevision(b, BigInt(a.revision));
  HelloResponse.addTerm(b, 0n);
  HelloResponse.addLimits(b, limits);
  HelloResponse.addAdmin(b, a.admin);
  HelloResponse.addReadAll(b, a.readAll);
  HelloResponse.addWriteAll(b, a.writeAll);
  HelloResponse.addReadRoles(b, read);
  HelloResponse.addWriteRoles(b, write);
  return finish(id, Body.HelloResponse, HelloResponse.endHelloResponse(b));
}

export function commitResponse(id: number, result: Uint8Array): Uint8Array {
  return finish(id, Body.CommitResponse, CommitResponse.createCommitResponse(b, nested(result)));
}

export function queryResponse(id: number, response: Uint8Array): Uint8Array {
  return finish(id, Body.QueryResponseMessage, QueryResponseMessage.createQueryResponseMessage(b, nested(response)));
}

export interface StatusAnswer {
  revision: number; tasks: number; configs: number; serverVersion: string; uptimeMs: number; websocket: string;
  oldestWatchRevision: number; connections: number; subscriptions: number; staged: string;
}

export function statusResponse(id: number, s: StatusAnswer): Uint8Array {
  const version = b.createString(s.serverVersion);
  const websocket = b.createString(s.websocket);
  const staged = b.createString(s.staged);
  StatusResponse.startStatusResponse(b);
  StatusResponse.addRevision(b, BigInt(s.revision));
  StatusResponse.addTerm(b, 0n);
  StatusResponse.addTasks(b, BigInt(s.tasks));
  StatusResponse.addConfigs(b, BigInt(s.configs));
  StatusResponse.addServerVersion(b, version);
  StatusResponse.addUptimeMs(b, BigInt(Math.round(s.uptimeMs)));
  StatusResponse.addWebsocket(b, websocket);
  StatusResponse.addOldestWatchRevision(b, BigInt(s.oldestWatchRevision));
  StatusResponse.addConnections(b, s.connections);
  StatusResponse.addSubscriptions(b, s.subscriptions);
  StatusResponse.addStaged(b, staged);
  return finish(id, Body.StatusResponse, StatusResponse.endStatusResponse(b));
}

export function fileResponse(id: number, path: string, revision: number, bytes: number, tasks: number): Uint8Array {
  return finish(id, Body.FileResponse,
    FileResponse.createFileResponse(b, b.createString(path), BigInt(revision), BigInt(bytes), BigInt(tasks)));
}

export function backupListResponse(id: number, backups: { name: string; bytes: number; revision: number; createdMs: number }[]): Uint8Array {
  const entries = backups.map((x) =>
    BackupInfo.createBackupInfo(b, b.createString(x.name), BigInt(x.bytes), BigInt(x.revision), BigInt(x.createdMs)));
  return finish(id, Body.BackupListResponse,
    BackupListResponse.createBackupListResponse(b, BackupListResponse.createBackupsVector(b, entries)));
}

export function backupStageResponse(id: number, name: string, revision: number, tasks: number): Uint8Array {
  return finish(id, Body.BackupStageResponse,
    BackupStageResponse.createBackupStageResponse(b, b.createString(name), BigInt(revision), BigInt(tasks)));
}

export function backupCommitResponse(id: number, revision: number, file: string): Uint8Array {
  return finish(id, Body.BackupCommitResponse,
    BackupCommitResponse.createBackupCommitResponse(b, BigInt(revision), b.createString(file)));
}

export function watchResponse(id: number, subscription: number, revision: number, oldest: number): Uint8Array {
  return finish(id, Body.WatchResponse, WatchResponse.createWatchResponse(b, subscription, BigInt(revision), BigInt(oldest)));
}

export function watchProgress(subscription: number, revision: number): Uint8Array {
  return finish(0, Body.WatchProgress, WatchProgress.createWatchProgress(b, subscription, BigInt(revision)));
}

export function watchStateEnd(subscription: number, revision: number): Uint8Array {
  return finish(0, Body.WatchStateEnd, WatchStateEnd.createWatchStateEnd(b, subscription, BigInt(revision)));
}

/** The WatchState frames of one query answer: one, or pieces of at most `frameBytesMax` (partial on all but the last). */
export function watchStates(subscription: number, response: Uint8Array, frameBytesMax: number): Uint8Array[] {
  const piece = frameBytesMax - eventsFrameOverhead;
  const out: Uint8Array[] = [];
  for (let at = 0; at === 0 || at < response.byteLength; at += piece) {
    const partial = at + piece < response.byteLength;
    out.push(finish(0, Body.WatchState,
      WatchState.createWatchState(b, subscription, nested(response.subarray(at, at + piece)), partial)));
  }
  return out;
}

export function watchEnded(subscription: number, code: ErrorCode, message: string, errorRevision: number,
  lastRevision: number): Uint8Array {
  const error = errorTable(code, message, errorRevision);
  WatchEnded.startWatchEnded(b);
  WatchEnded.addSubscription(b, subscription);
  WatchEnded.addError(b, error);
  WatchEnded.addLastRevision(b, BigInt(lastRevision));
  return finish(0, Body.WatchEnded, WatchEnded.endWatchEnded(b));
}

/** Bytes a WatchEvents frame adds around its revisions' bytes (envelope, tables, vector headers, alignment). */
export const eventsFrameOverhead = 128;
export const eventsPerRevisionOverhead = 32;

/**
 * A WatchEvents frame holding `parts` (whole RevisionChanges buffers, or one fragment when `partial`), addressed
 * to subscription 0xffffffff; `subscriptionAt` is where that id sits, so one frame serves many subscribers:
 * patch the id in (setSubscription), send, patch the next.
 */
export function watchEvents(parts: Uint8Array[], partial: boolean): { frame: Uint8Array; subscriptionAt: number } {
  const offsets: number[] = [];
  for (const part of parts) offsets.push(RevisionBytes.createRevisionBytes(b, nested(part)));
  const vector = WatchEvents.createRevisionsVector(b, offsets);
  WatchEvents.startWatchEvents(b);
  WatchEvents.addSubscription(b, 0xffffffff);
  WatchEvents.addRevisions(b, vector);
  if (partial) WatchEvents.addPartial(b, true);
  const frame = finish(0, Body.WatchEvents, WatchEvents.endWatchEvents(b));
  const events = Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(frame)).body(new WatchEvents()) as WatchEvents;
  const field = events.bb!.__offset(events.bb_pos, 4);
  const subscriptionAt = events.bb_pos + field;
  return { frame, subscriptionAt };
}

export function setSubscription(frame: Uint8Array, at: number, subscription: number): void {
  frame[at] = subscription & 0xff;
  frame[at + 1] = (subscription >>> 8) & 0xff;
  frame[at + 2] = (subscription >>> 16) & 0xff;
  frame[at + 3] = (subscription >>> 24) & 0xff;
}

/** Reads a nested QueryRequest with checked reads (a malformed one throws where it is first read). */
export function decodeQuery(bytes: Uint8Array): QueryRequest {
  return QueryRequest.getRootAsQueryRequest(checkedBuffer(bytes));
}

/** ok, error or duplicate: what a TransactionResult says (for metrics). */
export function resultKind(result: Uint8Array): 'ok' | 'error' | 'duplicate' {
  const r = TransactionResult.getRootAsTransactionResult(new flatbuffers.ByteBuffer(result));
  return r.duplicate() ? 'duplicate' : r.error() === null ? 'ok' : 'error';
}

interface StateFilter { role: string; environment: string; jobName: string; taskIds: ReadonlySet<string> | null }

function queryRequest(type: Query, query: number): Uint8Array {
  QueryRequest.startQueryRequest(b);
  QueryRequest.addQueryType(b, type);
  QueryRequest.addQuery(b, query);
  b.finish(QueryRequest.endQueryRequest(b));
  const out = b.asUint8Array().slice();
  b.clear();
  return out;
}

/** A TaskQuery page for a watch filter's initial state. */
export function taskQuery(f: StateFilter, offset: number, limit: number, detail: ConfigDetail): Uint8Array {
  const ids = f.taskIds === null ? 0 : TaskQuery.createTaskIdsVector(b, [...f.taskIds].map((id) => b.createString(id)));
  const role = f.role === '' ? 0 : b.createString(f.role);
  const env = f.environment === '' ? 0 : b.createString(f.environment);
  const name = f.jobName === '' ? 0 : b.createString(f.jobName);
  TaskQuery.startTaskQuery(b);
  if (role !== 0) TaskQuery.addRole(b, role);
  if (env !== 0) TaskQuery.addEnvironment(b, env);
  if (name !== 0) TaskQuery.addJobName(b, name);
  if (ids !== 0) TaskQuery.addTaskIds(b, ids);
  TaskQuery.addOffset(b, offset);
  TaskQuery.addLimit(b, limit);
  TaskQuery.addConfigDetail(b, detail);
  return queryRequest(Query.TaskQuery, TaskQuery.endTaskQuery(b));
}

/** The query of one whole small table (restricted to the filter's role, or job) for a watch's initial state. */
export function simpleQuery(type: Query, f: StateFilter): Uint8Array {
  const role = f.role === '' ? 0 : b.createString(f.role);
  const job = f.jobName === '' ? 0 :
    JobKey.createJobKey(b, b.createString(f.role), b.createString(f.environment), b.createString(f.jobName));
  let query: number;
  switch (type) {
    case Query.CronJobsQuery:
      CronJobsQuery.startCronJobsQuery(b);
      if (role !== 0) CronJobsQuery.addRole(b, role);
      if (job !== 0) CronJobsQuery.addJob(b, job);
      query = CronJobsQuery.endCronJobsQuery(b);
      break;
    case Query.JobUpdateQuery:
      JobUpdateQuery.startJobUpdateQuery(b);
      if (role !== 0) JobUpdateQuery.addRole(b, role);
      if (job !== 0) JobUpdateQuery.addJobKey(b, job);
      query = JobUpdateQuery.endJobUpdateQuery(b);
      break;
    case Query.QuotaQuery:
      QuotaQuery.startQuotaQuery(b);
      if (role !== 0) QuotaQuery.addRole(b, role);
      query = QuotaQuery.endQuotaQuery(b);
      break;
    case Query.HostAttributesQuery:
      HostAttributesQuery.startHostAttributesQuery(b);
      query = HostAttributesQuery.endHostAttributesQuery(b);
      break;
    case Query.MaintenanceQuery:
      MaintenanceQuery.startMaintenanceQuery(b);
      query = MaintenanceQuery.endMaintenanceQuery(b);
      break;
    default:
      SchedulerQuery.startSchedulerQuery(b);
      query = SchedulerQuery.endSchedulerQuery(b);
  }
  return queryRequest(type, query);
}

/**
 * A CronJobsResult or JobUpdatesResult answer cut down to one environment (their queries filter by role or job
 * only); any other answer as it is. Used for list states, where a few cron jobs and updates are re-encoded.
 */
export function onlyEnvironment(response: Uint8Array, environment: string): Uint8Array {
  const r = QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(response));
  if (r.resultType() !== Result.CronJobsResult && r.resultType() !== Result.JobUpdatesResult) return response;
  const all = r.unpack();
  const env = (key: { environment: string | Uint8Array | null } | null | undefined) => key?.environment === environment;
  if (all.result instanceof CronJobsResultT) {
    all.result.jobs = all.result.jobs.filter((j) => env(j.key));
    const hashes = new Set(all.result.jobs.map((j) => Buffer.from(j.configHash).toString('hex')));
    all.result.configs = all.result.configs.filter((c) => hashes.has(Buffer.from(c.hash).toString('hex')));
  } else if (all.result instanceof JobUpdatesResultT) {
    all.result.updates = all.result.updates.filter((u) => env(u.update?.summary?.key?.job));
    all.result.total = all.result.updates.length;
  }
  const builder = new flatbuffers.Builder(1024);
  builder.finish(all.pack(builder));
  return builder.asUint8Array().slice();
}
