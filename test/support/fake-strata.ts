/**
 * A fake stratad for the client tests: a `ws` WebSocketServer on 127.0.0.1 (port 0) that decodes every request
 * with the object API and lets each test answer it by hand. Owner: the test's thread.
 * Invariants: nothing is answered unless the test (or the default Hello handler) answers it; every frame
 * received is recorded in order, per connection.
 */
import * as flatbuffers from 'flatbuffers';
import { WebSocketServer, type WebSocket } from 'ws';
import { encode } from '../../core/codec.js';
import * as f from '../../core/fbs/strata.js';

export { f };

export interface Received { id: number; type: f.Body; body: unknown }

type Body = f.EnvelopeT['body'];

export function frame(id: number, type: f.Body, body: Body): Uint8Array {
  return encode(new f.EnvelopeT(id, type, body), 1024);
}

export const bytesOf = (t: { pack(b: flatbuffers.Builder): number }): number[] => Array.from(encode(t, 1024));

export class FakeConnection {
  readonly received: Received[] = [];
  closed = false;
  private waiters: { predicate: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];

  constructor(readonly socket: WebSocket, readonly index: number) {}

  push(r: Received): void {
    this.received.push(r);
    this.waiters = this.waiters.filter((w) => {
      if (!w.predicate(r)) return true;
      w.resolve(r);
      return false;
    });
  }

  /** The first request (already received or still to come) that matches. */
  waitFor(type: f.Body, predicate: (r: Received) => boolean = () => true): Promise<Received> {
    const match = (r: Received) => r.type === type && predicate(r);
    const found = this.received.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ predicate: match, resolve }));
  }

  send(bytes: Uint8Array | string): void {
    if (!this.closed) this.socket.send(bytes);
  }

  reply(id: number, type: f.Body, body: Body): void {
    this.send(frame(id, type, body));
  }

  error(id: number, code: f.ErrorCode, message: string, revision = 0n): void {
    this.reply(id, f.Body.ErrorResponse, new f.ErrorResponseT(new f.ErrorT(code, message, -1, -1, revision)));
  }

  hello(id: number, limits = new f.LimitsT(16 * 1024 * 1024, 1024, 64, 0)): void {
    this.reply(id, f.Body.HelloResponse,
      new f.HelloResponseT(1, 'fake', 5n, 0n, limits, true, true, true, [], []));
  }

  commitResult(id: number, result: f.TransactionResultT): void {
    this.reply(id, f.Body.CommitResponse, new f.CommitResponseT(bytesOf(result)));
  }

  queryResult(id: number, response: f.QueryResponseT): void {
    this.reply(id, f.Body.QueryResponseMessage, new f.QueryResponseMessageT(bytesOf(response)));
  }

  watchResponse(id: number, subscription: number, revision: bigint, oldest = 1n): void {
    this.reply(id, f.Body.WatchResponse, new f.WatchResponseT(subscription, revision, oldest));
  }

  /** WatchEvents with whole revisions (RevisionChanges at these revisions, one task each). */
  events(subscription: number, revisions: bigint[]): void {
    this.eventBytes(subscription, revisions.map((r) => encode(changes(r), 1024)), false);
  }

  eventBytes(subscription: number, pieces: Uint8Array[], partial: boolean): void {
    this.reply(0, f.Body.WatchEvents, new f.WatchEventsT(subscription,
      pieces.map((p) => new f.RevisionBytesT(Array.from(p))), partial));
  }

  progress(subscription: number, revision: bigint): void {
    this.reply(0, f.Body.WatchProgress, new f.WatchProgressT(subscription, revision));
  }

  ended(subscription: number, code: f.ErrorCode, errorRevision: bigint, lastRevision: bigint): void {
    this.reply(0, f.Body.WatchEnded, new f.WatchEndedT(subscription, new f.ErrorT(code, 'ended', -1, -1, errorRevision), lastRevision));
  }

  close(code: number, reason = ''): void {
    this.closed = true;
    this.socket.close(code, reason);
  }

  terminate(): void {
    this.closed = true;
    this.socket.terminate();
  }
}

/** A RevisionChanges at `revision` holding one task `t-<revision>`. */
export function changes(revision: bigint, extra: Partial<f.RevisionChangesT> = {}): f.RevisionChangesT {
  const task = new f.ScheduledTaskT();
  task.assignedTask = new f.AssignedTaskT();
  task.assignedTask.taskId = `t-${revision}`;
  return Object.assign(new f.RevisionChangesT(), { revision, timestampMs: 1000n, tasks: [task] }, extra);
}

export class FakeStrata {
  readonly connections: FakeConnection[] = [];
  /** Called for every connection; the default answers Hello. Replace it to refuse or drop connections. */
  onConnection: (connection: FakeConnection) => void = (c) => this.answerHello(c);
  /** Called for every request after the Hello (the default Hello handler answers that one). */
  onRequest: (connection: FakeConnection, request: Received) => void = () => undefined;
  private connectionWaiters: ((c: FakeConnection) => void)[] = [];

  private constructor(private readonly server: WebSocketServer, readonly url: string) {
    server.on('connection', (socket) => {
      const connection = new FakeConnection(socket, this.connections.length);
      this.connections.push(connection);
      socket.on('message', (data, isBinary) => {
        if (!isBinary) return;
        const bytes = data instanceof Buffer ? data : Buffer.concat(data as Buffer[]);
        const envelope = f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(new Uint8Array(bytes))).unpack();
        const received = { id: envelope.id, type: envelope.bodyType, body: envelope.body };
        connection.push(received);
        if (received.type !== f.Body.Hello) this.onRequest(connection, received);
      });
      socket.on('close', () => {
        connection.closed = true;
      });
      socket.on('error', () => undefined);
      this.onConnection(connection);
      for (const w of this.connectionWaiters.splice(0)) w(connection);
    });
  }

  static start(): Promise<FakeStrata> {
    return new Promise((resolve) => {
      const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1' }, () => {
        const address = server.address();
        const port = typeof address === 'object' && address !== null ? address.port : 0;
        resolve(new FakeStrata(server, `ws://127.0.0.1:${port}/v1`));
      });
    });
  }

  answerHello(connection: FakeConnection): void {
    void connection.waitFor(f.Body.Hello).then((hello) => connection.hello(hello.id));
  }

  /** The connection with this index (0: the first), once it exists. */
  connection(index: number): Promise<FakeConnection> {
    const existing = this.connections[index];
    if (existing !== undefined) return Promise.resolve(existing);
    return new Promise((resolve) => {
      const check = (c: FakeConnection) => {
        if (c.index === index) resolve(c);
        else if (c.index < index) this.connectionWaiters.push(check);
      };
      this.connectionWaiters.push(check);
    });
  }

  close(): Promise<void> {
    for (const c of this.connections) if (!c.closed) c.terminate();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
