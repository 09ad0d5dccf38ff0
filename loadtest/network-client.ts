/**
 * A lean client of the wire protocol for the network benchmark (bench-network.ts): one WebSocket (`ws`), frames
 * built with the FlatBuffers builder API into one reused Builder, responses and pushes read with the accessors
 * (no object API on the hot path). Owner: a load generator worker thread (bench-network-worker.ts); never
 * imported by daemon/ or workers/.
 *
 * Invariants:
 * - A frame is handed to `ws.send` before the next one is built: ws masks a client frame into a fresh buffer
 *   (the bytes are read-only to it), so the Builder's memory may be reused at once.
 * - Every frame the server sends goes to `onFrame` with the absolute time it arrived (clockMs, taken first),
 *   so delivery times compare across threads.
 * - A nested FlatBuffer (a transaction, a query) starts 8-aligned in its byte vector, as the server's own
 *   encoders place them (daemon/protocol.ts).
 */
import * as flatbuffers from 'flatbuffers';
import WebSocket from 'ws';
import * as f from '../core/fbs/strata.js';

/** Absolute milliseconds, comparable between threads and processes of this machine (each thread's own origin). */
export function clockMs(): number {
  return performance.timeOrigin + performance.now();
}

export type FrameHandler = (envelope: f.Envelope, atMs: number) => void;

export const frameBytesMax = 1 << 30;  // what the client accepts: the server fragments at its own frameBytesMax

export class Connection {
  readonly ws: WebSocket;
  /** The revision the server reported in its HelloResponse. */
  revision = 0;
  private nextId = 1;
  private readonly builder = new flatbuffers.Builder(64 * 1024);
  private readonly envelope = new f.Envelope();
  private handler: FrameHandler = () => undefined;
  closeCode = 0;
  closeReason = '';
  /** Bytes of every frame received (payloads, without WebSocket framing). */
  bytesReceived = 0;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      const atMs = clockMs();
      this.bytesReceived += data.byteLength;
      // FlatBuffers' typed-array accessors (statusCountsArray...) need the buffer aligned in its ArrayBuffer; a
      // WebSocket message may start anywhere in ws's pool: copy the (rare) unaligned one.
      const bytes = data.byteOffset % 8 === 0 ? data : new Uint8Array(data);
      const envelope = f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(bytes), this.envelope);
      this.handler(envelope, atMs);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
    });
    ws.on('error', () => undefined);
  }

  set onFrame(handler: FrameHandler) {
    this.handler = handler;
  }

  /** Connects and says Hello (no token: the daemon listens on loopback without tokens). */
  static async open(url: string, clientName: string, tokenText = ''): Promise<Connection> {
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(url, { maxPayload: frameBytesMax, perMessageDeflate: false });
      socket.once('open', () => resolve(socket));
      socket.once('error', reject);
      socket.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
    });
    ws.binaryType = 'nodebuffer';
    const connection = new Connection(ws);
    await new Promise<void>((resolve, reject) => {
      connection.onFrame = (envelope) => {
        if (envelope.bodyType() !== f.Body.HelloResponse) {
          reject(new Error(`hello refused: ${errorText(envelope)}`));
          return;
        }
        connection.revision = Number((envelope.body(new f.HelloResponse()) as f.HelloResponse).revision());
        resolve();
      };
      const b = connection.builder;
      b.clear();
      const name = b.createString(clientName);
      const token = b.createString(tokenText);
      connection.finish(f.Body.Hello, f.Hello.createHello(b, 1, 1, token, name));
    });
    return connection;
  }

  /** Sends a CommitRequest of `transaction` (a finished Transaction buffer); returns the request id. */
  commit(transaction: Uint8Array): number {
    const b = this.builder;
    b.clear();
    const bytes = nestedVector(b, transaction);
    return this.finish(f.Body.CommitRequest, f.CommitRequest.createCommitRequest(b, bytes));
  }

  /** Sends a QueryRequestMessage of `request` (a finished QueryRequest buffer); returns the request id. */
  query(request: Uint8Array): number {
    const b = this.builder;
    b.clear();
    const bytes = nestedVector(b, request);
    return this.finish(f.Body.QueryRequestMessage, f.QueryRequestMessage.createQueryRequestMessage(b, bytes, false));
  }

  /** Subscribes to every table's changes after `afterRevision` (-1: from the current revision). */
  watch(afterRevision: number): number {
    const b = this.builder;
    b.clear();
    const filter = f.WatchFilter.createWatchFilter(b, 0, 0, 0, 0, 0);
    return this.finish(f.Body.WatchRequest, f.WatchRequest.createWatchRequest(b, filter, BigInt(afterRevision), false, 0));
  }

  /** Sends a request whose body `build` writes into the cleared builder (status, snapshot, backup...). */
  request(type: f.Body, build: (b: flatbuffers.Builder) => flatbuffers.Offset): number {
    this.builder.clear();
    return this.finish(type, build(this.builder));
  }

  close(): void {
    this.ws.close();
  }

  private finish(type: f.Body, body: flatbuffers.Offset): number {
    const id = this.nextId;
    this.nextId = id === 0xffff_ffff ? 1 : id + 1;
    const b = this.builder;
    b.finish(f.Envelope.createEnvelope(b, id, type, body));
    this.ws.send(b.asUint8Array());
    return id;
  }
}

/** A byte vector holding a finished FlatBuffer, its first byte 8-aligned (as daemon/protocol.ts nests them). */
function nestedVector(b: flatbuffers.Builder, bytes: Uint8Array): flatbuffers.Offset {
  b.prep(8, bytes.length);
  return b.createByteVector(bytes);
}

/** An ErrorResponse's code and message, or the body type of an unexpected frame. */
export function errorText(envelope: f.Envelope): string {
  if (envelope.bodyType() !== f.Body.ErrorResponse) return `unexpected ${f.Body[envelope.bodyType()]}`;
  const error = (envelope.body(new f.ErrorResponse()) as f.ErrorResponse).error();
  return error === null ? 'ErrorResponse without error' : `${f.ErrorCode[error.code()]}: ${error.message()}`;
}

/** Reads CommitResponses without allocating beyond one ByteBuffer each. */
export class CommitReader {
  private readonly response = new f.CommitResponse();
  private readonly result = new f.TransactionResult();
  error = '';

  /** The revision committed, or -1 with `error` set (an ErrorResponse, or a TransactionResult with an error). */
  revision(envelope: f.Envelope): number {
    if (envelope.bodyType() !== f.Body.CommitResponse) {
      this.error = errorText(envelope);
      return -1;
    }
    const bytes = (envelope.body(this.response) as f.CommitResponse).resultArray();
    if (bytes === null) {
      this.error = 'CommitResponse without result';
      return -1;
    }
    const result = f.TransactionResult.getRootAsTransactionResult(new flatbuffers.ByteBuffer(bytes), this.result);
    const error = result.error();
    if (error !== null && error.code() !== f.ErrorCode.OK) {
      this.error = `${f.ErrorCode[error.code()]}: ${error.message()} (op ${error.opIndex()})`;
      return -1;
    }
    return Number(result.revision());
  }
}

/** Reads QueryResponseMessages: the QueryResponse, or null with `error` set. */
export class QueryReader {
  private readonly message = new f.QueryResponseMessage();
  private readonly response = new f.QueryResponse();
  error = '';

  read(envelope: f.Envelope): f.QueryResponse | null {
    if (envelope.bodyType() !== f.Body.QueryResponseMessage) {
      this.error = errorText(envelope);
      return null;
    }
    const bytes = (envelope.body(this.message) as f.QueryResponseMessage).responseArray();
    if (bytes === null) {
      this.error = 'QueryResponseMessage without response';
      return null;
    }
    const response = f.QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(bytes), this.response);
    const error = response.error();
    if (error !== null && error.code() !== f.ErrorCode.OK) {
      this.error = `${f.ErrorCode[error.code()]}: ${error.message()}`;
      return null;
    }
    return response;
  }
}

/**
 * Whole revisions out of WatchEvents: a fragmented revision's pieces (partial) are joined; each whole revision is
 * handed to `each` as a RevisionChanges accessor (reused: read it before the next one).
 */
export class RevisionAssembler {
  private pieces: Uint8Array[] = [];
  private readonly revisionBytes = new f.RevisionBytes();
  private readonly changes = new f.RevisionChanges();

  received(events: f.WatchEvents, each: (changes: f.RevisionChanges) => void): void {
    for (let i = 0; i < events.revisionsLength(); i++) {
      let bytes = events.revisions(i, this.revisionBytes)!.changesArray()!;
      if (events.partial()) {
        this.pieces.push(bytes.slice());
        continue;
      }
      if (this.pieces.length > 0) {
        this.pieces.push(bytes);
        bytes = Buffer.concat(this.pieces);
        this.pieces = [];
      }
      each(f.RevisionChanges.getRootAsRevisionChanges(new flatbuffers.ByteBuffer(bytes), this.changes));
    }
  }

  /** Forgets a revision cut off in the middle (the connection closed). */
  reset(): void {
    this.pieces = [];
  }
}
