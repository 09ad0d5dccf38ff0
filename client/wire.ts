/**
 * The client's side of the wire protocol (docs/protocol.md): encoding requests into Envelopes, decoding what the
 * server sends. Owner: the client's thread.
 * Invariants:
 * - Server bytes are read only through core/checked.ts: a malformed frame throws ProtocolError where it is first
 *   read; it never loops or allocates without bound and never crashes the process.
 * - Nested payloads (Transaction, QueryRequest) are written as byte vectors whose contents start 8-aligned.
 * - One Builder is reused and cleared after every request, even when encoding throws.
 */
import * as flatbuffers from 'flatbuffers';
import { checkedBuffer } from '../core/checked.js';
import {
  BackupCommitResponse, BackupCommitResponseT, BackupListResponse, BackupListResponseT, BackupStageRequest,
  BackupStageResponse, BackupStageResponseT, Body, CommitRequest, CommitResponse, Envelope, ErrorResponse, ErrorT,
  FileResponse, FileResponseT, Hello, HelloResponse, HelloResponseT, QueryRequestMessage, QueryResponse,
  QueryResponseMessage, QueryResponseT, RevisionChanges, RevisionChangesT, StatusResponse, StatusResponseT,
  TransactionResult, TransactionResultT, WatchCancel, WatchEnded, WatchEndedT, WatchEvents, WatchProgress,
  WatchProgressRequest, WatchProgressT, WatchRequestT, WatchResponse, WatchResponseT, WatchState, WatchStateEnd,
  WatchStateEndT,
} from '../core/fbs/strata.js';
import { ProtocolError } from './errors.js';

const builder = new flatbuffers.Builder(4096);

function envelope(id: number, type: Body, body: (b: flatbuffers.Builder) => flatbuffers.Offset): Uint8Array {
  try {
    const offset = body(builder);
    Envelope.startEnvelope(builder);
    Envelope.addId(builder, id);
    Envelope.addBodyType(builder, type);
    Envelope.addBody(builder, offset);
    builder.finish(Envelope.endEnvelope(builder));
    return builder.asUint8Array().slice();
  } finally {
    builder.clear();
  }
}

/** A byte vector whose contents start 8-aligned: a nested FlatBuffer's readers may need its alignment. */
function nested(b: flatbuffers.Builder, bytes: Uint8Array): flatbuffers.Offset {
  b.prep(8, bytes.length);
  return b.createByteVector(bytes);
}

function empty(b: flatbuffers.Builder): flatbuffers.Offset {
  b.startObject(0);
  return b.endObject();
}

export function encodeHello(id: number, token: string, clientName: string, versionMin: number,
  versionMax: number): Uint8Array {
  return envelope(id, Body.Hello, (b) => Hello.createHello(b, versionMin, versionMax, b.createString(token),
    b.createString(clientName)));
}

export function encodeCommit(id: number, transaction: Uint8Array): Uint8Array {
  return envelope(id, Body.CommitRequest, (b) => CommitRequest.createCommitRequest(b, nested(b, transaction)));
}

export function encodeQuery(id: number, request: Uint8Array, staged: boolean): Uint8Array {
  return envelope(id, Body.QueryRequestMessage,
    (b) => QueryRequestMessage.createQueryRequestMessage(b, nested(b, request), staged));
}

export function encodeWatch(id: number, request: WatchRequestT): Uint8Array {
  return envelope(id, Body.WatchRequest, (b) => request.pack(b));
}

export function encodeWatchCancel(id: number, subscription: number): Uint8Array {
  return envelope(id, Body.WatchCancel, (b) => WatchCancel.createWatchCancel(b, subscription));
}

export function encodeWatchProgressRequest(id: number, subscription: number): Uint8Array {
  return envelope(id, Body.WatchProgressRequest, (b) => WatchProgressRequest.createWatchProgressRequest(b, subscription));
}

export function encodeBackupStage(id: number, name: string): Uint8Array {
  return envelope(id, Body.BackupStageRequest, (b) => BackupStageRequest.createBackupStageRequest(b, b.createString(name)));
}

/** The requests whose body is an empty table. */
export type EmptyRequest = Body.StatusRequest | Body.SnapshotRequest | Body.BackupRequest | Body.BackupListRequest |
  Body.BackupCommitRequest | Body.BackupUnloadRequest;

export function encodeEmpty(id: number, type: EmptyRequest): Uint8Array {
  return envelope(id, type, empty);
}

/** What the server sends, decoded. `id` is the request's id, 0 for a push. */
export type Incoming = { id: number } & (
  | { type: 'hello'; body: HelloResponseT }
  | { type: 'commit'; body: TransactionResultT }
  | { type: 'query'; body: QueryResponseT }
  | { type: 'watch'; body: WatchResponseT }
  | { type: 'events'; subscription: number; partial: boolean; revisions: Uint8Array[] }
  | { type: 'state'; subscription: number; partial: boolean; piece: Uint8Array }
  | { type: 'stateEnd'; body: WatchStateEndT }
  | { type: 'progress'; body: WatchProgressT }
  | { type: 'ended'; body: WatchEndedT }
  | { type: 'status'; body: StatusResponseT }
  | { type: 'file'; body: FileResponseT }
  | { type: 'backupList'; body: BackupListResponseT }
  | { type: 'backupStage'; body: BackupStageResponseT }
  | { type: 'backupCommit'; body: BackupCommitResponseT }
  | { type: 'ok' }
  | { type: 'error'; error: ErrorT }
);
export type IncomingType = Incoming['type'];

interface Unpackable<T> { unpack(): T }

/** Decodes one frame from the server; throws ProtocolError for anything malformed or not a server message. */
export function decodeFrame(bytes: Uint8Array): Incoming {
  try {
    return decode(bytes);
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw new ProtocolError(`undecodable frame of ${bytes.length} bytes: ${(error as Error).message}`, error);
  }
}

function decode(bytes: Uint8Array): Incoming {
  const root = Envelope.getRootAsEnvelope(checkedBuffer(bytes));
  const id = root.id();
  const type = root.bodyType();
  const body = <T>(table: object): T => {
    const value = root.body(table) as Unpackable<T> | null;
    if (value === null) throw new ProtocolError(`${Body[type]} without a body`);
    return value.unpack();
  };
  const table = <T extends object>(table: T): T => {
    const value = root.body(table) as T | null;
    if (value === null) throw new ProtocolError(`${Body[type]} without a body`);
    return value;
  };
  switch (type) {
    case Body.HelloResponse: return { id, type: 'hello', body: body<HelloResponseT>(new HelloResponse()) };
    case Body.CommitResponse: {
      const result = required(table(new CommitResponse()).resultArray(), 'CommitResponse.result');
      return { id, type: 'commit', body: TransactionResult.getRootAsTransactionResult(checkedBuffer(result)).unpack() };
    }
    case Body.QueryResponseMessage: {
      const response = required(table(new QueryResponseMessage()).responseArray(), 'QueryResponseMessage.response');
      return { id, type: 'query', body: decodeQueryResponse(response) };
    }
    case Body.WatchResponse: return { id, type: 'watch', body: body<WatchResponseT>(new WatchResponse()) };
    case Body.WatchEvents: {
      const events = table(new WatchEvents());
      const revisions: Uint8Array[] = [];
      const count = events.revisionsLength();
      for (let i = 0; i < count; i++) {
        const piece = events.revisions(i);
        revisions.push(required(piece === null ? null : piece.changesArray(), 'RevisionBytes.changes'));
      }
      return { id, type: 'events', subscription: events.subscription(), partial: events.partial(), revisions };
    }
    case Body.WatchState: {
      const state = table(new WatchState());
      // A whole answer, or one piece of a bigger one (partial): the watch joins the pieces, then decodes.
      const piece = required(state.responseArray(), 'WatchState.response');
      return { id, type: 'state', subscription: state.subscription(), partial: state.partial(), piece };
    }
    case Body.WatchStateEnd: return { id, type: 'stateEnd', body: body<WatchStateEndT>(new WatchStateEnd()) };
    case Body.WatchProgress: return { id, type: 'progress', body: body<WatchProgressT>(new WatchProgress()) };
    case Body.WatchEnded: return { id, type: 'ended', body: body<WatchEndedT>(new WatchEnded()) };
    case Body.StatusResponse: return { id, type: 'status', body: body<StatusResponseT>(new StatusResponse()) };
    case Body.FileResponse: return { id, type: 'file', body: body<FileResponseT>(new FileResponse()) };
    case Body.BackupListResponse:
      return { id, type: 'backupList', body: body<BackupListResponseT>(new BackupListResponse()) };
    case Body.BackupStageResponse:
      return { id, type: 'backupStage', body: body<BackupStageResponseT>(new BackupStageResponse()) };
    case Body.BackupCommitResponse:
      return { id, type: 'backupCommit', body: body<BackupCommitResponseT>(new BackupCommitResponse()) };
    case Body.OkResponse: return { id, type: 'ok' };
    case Body.ErrorResponse: {
      const error = table(new ErrorResponse()).error();
      if (error === null) throw new ProtocolError('ErrorResponse without an error');
      return { id, type: 'error', error: error.unpack() };
    }
    default:
      throw new ProtocolError(`unexpected body type ${Body[type] ?? type} from the server`);
  }
}

function required(bytes: Uint8Array | null, what: string): Uint8Array {
  if (bytes === null) throw new ProtocolError(`${what} missing`);
  return bytes;
}

export function decodeQueryResponse(bytes: Uint8Array): QueryResponseT {
  return QueryResponse.getRootAsQueryResponse(checkedBuffer(bytes)).unpack();
}

/** A whole RevisionChanges buffer (the concatenated fragments of a partial revision too). */
export function decodeRevisionChanges(bytes: Uint8Array): RevisionChangesT {
  try {
    return RevisionChanges.getRootAsRevisionChanges(checkedBuffer(bytes)).unpack();
  } catch (error) {
    throw new ProtocolError(`undecodable RevisionChanges of ${bytes.length} bytes: ${(error as Error).message}`, error);
  }
}
