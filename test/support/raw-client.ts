/**
 * A bare protocol client for the network tests: sends Envelope bytes as given (so tests can send anything,
 * malformed frames included), matches responses by id, and keeps the server's pushes in order.
 */
import * as flatbuffers from 'flatbuffers';
import WebSocket from 'ws';
import { encode, make } from '../../core/codec.js';
import * as f from '../../core/fbs/strata.js';

/** A frame the server pushed (id 0), decoded lazily: tests read thousands of big ones. */
export class Push {
  readonly bytes: Uint8Array;
  readonly bodyType: f.Body;
  readonly id: number;
  private unpacked: f.EnvelopeT | null = null;
  revisions: f.RevisionChangesT[] | null = null; // revisionsOf's memo

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    const envelope = f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(bytes));
    this.id = envelope.id();
    this.bodyType = envelope.bodyType();
  }

  get body(): f.EnvelopeT['body'] {
    this.unpacked ??= f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(this.bytes)).unpack();
    return this.unpacked.body;
  }
}

export class RawClient {
  readonly ws: WebSocket;
  private nextId = 1;
  private readonly waiting = new Map<number, (e: f.EnvelopeT) => void>();
  readonly pushes: Push[] = [];
  readonly responses: f.EnvelopeT[] = [];
  /** Whole revisions received per subscription (fragments counted once, at their last piece). */
  readonly revisionCounts = new Map<number, number>();
  private pushWaiters: (() => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data: Buffer) => {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      const push = new Push(bytes);
      if (push.id === 0) {
        if (push.bodyType === f.Body.WatchEvents) {
          const events = f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(bytes)).body(new f.WatchEvents()) as f.WatchEvents;
          const whole = events.partial() ? 0 : events.revisionsLength();
          this.revisionCounts.set(events.subscription(), (this.revisionCounts.get(events.subscription()) ?? 0) + whole);
        }
        this.pushes.push(push);
        for (const w of this.pushWaiters.splice(0)) w();
        return;
      }
      const envelope = f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(bytes)).unpack();
      this.responses.push(envelope);
      const waiter = this.waiting.get(envelope.id);
      if (waiter !== undefined) {
        this.waiting.delete(envelope.id);
        waiter(envelope);
      }
    });
    ws.on('error', () => undefined);
  }

  /** Whole revisions received so far by `subscription`. */
  count(subscription: number): number {
    return this.revisionCounts.get(subscription) ?? 0;
  }

  static connect(url: string, options: { ca?: Buffer } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { maxPayload: 1 << 30, ...options });
      ws.once('open', () => resolve(new RawClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  /** Connects and says Hello; resolves with the HelloResponse (or throws with the ErrorResponse message). */
  static async open(url: string, token = '', options: { ca?: Buffer } = {}): Promise<RawClient> {
    const client = await RawClient.connect(url, options);
    const answer = await client.request(f.Body.Hello, make(f.HelloT, { protocolMin: 1, protocolMax: 1, token, clientName: 'test' }));
    if (answer.bodyType !== f.Body.HelloResponse) throw new Error(`hello refused: ${JSON.stringify(errorOf(answer), (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v)}`);
    return client;
  }

  /** Sends one envelope with a fresh id; resolves with the answer carrying that id. */
  request(type: f.Body, body: object): Promise<f.EnvelopeT> {
    const id = this.nextId++;
    const answer = this.expect(id);
    this.ws.send(encode(make(f.EnvelopeT, { id, bodyType: type, body: body as never })));
    return answer;
  }

  expect(id: number): Promise<f.EnvelopeT> {
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  /** Resolves once `predicate` holds for the pushes received (checked on every push). */
  async until(predicate: (pushes: Push[]) => boolean, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.pushes)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting; ${this.pushes.length} pushes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.pushWaiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  close(): void {
    this.ws.close();
  }
}

export function errorOf(envelope: { bodyType: f.Body; body: f.EnvelopeT["body"] }): { code: f.ErrorCode; message: string; revision: bigint } | null {
  if (envelope.bodyType !== f.Body.ErrorResponse) return null;
  const error = (envelope.body as f.ErrorResponseT).error!;
  return { code: error.code, message: String(error.message), revision: error.revision };
}

export function commitResult(envelope: f.EnvelopeT): f.TransactionResultT {
  if (envelope.bodyType !== f.Body.CommitResponse) throw new Error(`not a CommitResponse: ${JSON.stringify(errorOf(envelope))}`);
  const bytes = Uint8Array.from((envelope.body as f.CommitResponseT).result);
  return f.TransactionResult.getRootAsTransactionResult(new flatbuffers.ByteBuffer(bytes)).unpack();
}

export function queryResult(envelope: f.EnvelopeT): f.QueryResponseT {
  if (envelope.bodyType !== f.Body.QueryResponseMessage) throw new Error(`not a QueryResponseMessage: ${JSON.stringify(errorOf(envelope))}`);
  const bytes = Uint8Array.from((envelope.body as f.QueryResponseMessageT).response);
  return f.QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(bytes)).unpack();
}

/** The RevisionChanges of WatchEvents pushes of one subscription, fragments joined, in arrival order. */
export function revisionsOf(pushes: Push[], subscription: number): f.RevisionChangesT[] {
  const out: f.RevisionChangesT[] = [];
  let pieces: Uint8Array[] = [];
  for (const p of pushes) {
    if (p.bodyType !== f.Body.WatchEvents) continue;
    const events = f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(p.bytes)).body(new f.WatchEvents()) as f.WatchEvents;
    if (events.subscription() !== subscription) continue;
    if (p.revisions !== null && pieces.length === 0) {
      out.push(...p.revisions);
      continue;
    }
    const mine: f.RevisionChangesT[] = [];
    for (let i = 0; i < events.revisionsLength(); i++) {
      pieces.push(events.revisions(i)!.changesArray()!);
      if (events.partial()) continue;
      const bytes = Buffer.concat(pieces);
      pieces = [];
      mine.push(f.RevisionChanges.getRootAsRevisionChanges(new flatbuffers.ByteBuffer(new Uint8Array(bytes))).unpack());
    }
    if (!events.partial()) p.revisions = mine;
    out.push(...mine);
  }
  return out;
}

export { f, make, encode };
