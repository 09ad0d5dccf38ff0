/**
 * The connection under StrataClient: one WebSocket to stratad (docs/protocol.md), requests matched to responses
 * by id, reconnects with backoff, the routing of watch pushes. Owner: the caller's thread (one event loop;
 * nothing here blocks).
 *
 * Invariants:
 * - A request goes on the wire only after the connection's Hello succeeded, under a fresh id (1..2^32-1, never
 *   one in flight), and only while fewer than the server's requests_in_flight_max are in flight; the rest wait,
 *   at most requestsWaitingMax of them.
 * - When a connection drops, a request in flight is sent again on the next connection only if its caller marked
 *   it safe (`retry`); the others fail with UnavailableError (`ackUnknown` for a commit without a key).
 *   Watch subscriptions are rebuilt when they go out again, with their resume point.
 * - Requests bound to a connection (WatchCancel, WatchProgressRequest name its subscription ids) never go out on
 *   another one.
 * - Nothing the server sends can throw out of a socket callback: an undecodable or unexpected frame is reported
 *   ('error' event) and the connection is dropped and made again.
 * - 4400 and 4401 (and a Hello refused as unauthenticated or unsupported) are final: every request and watch
 *   fails with that error and the client does not reconnect. Every other loss reconnects (unless reconnect is
 *   false), with exponential backoff and jitter, the attempt count reset by a successful Hello.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { ErrorCode, type HelloResponseT } from '../core/fbs/strata.js';
import { backoffDelayMs, type Backoff, backoffOf, type ReconnectOptions } from './backoff.js';
import { errorOf, ProtocolError, StrataError, TimeoutError, UnavailableError } from './errors.js';
import {
  connectTimeoutMsDefault, frameBytesReceivedMaxDefault, keepaliveMsDefault, protocolVersionMax, protocolVersionMin,
  requestsInFlightMaxDefault, requestsWaitingMax, requestTimeoutMsDefault, subscriptionsMaxDefault,
} from './limits.js';
import { Watch, type WatchHost, type WatchOptions } from './watch.js';
import {
  decodeFrame, encodeHello, encodeWatch, encodeWatchCancel, encodeWatchProgressRequest, type Incoming,
} from './wire.js';

/** The part of the WebSocket API the client uses (the `ws` package's WebSocket and the WHATWG one both have it). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** ws only: used for keepalive pings and for dropping a connection without the close handshake. */
  ping?(): void;
  terminate?(): void;
  on?(event: 'pong', listener: () => void): unknown;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: object) => WebSocketLike;

export interface ClientOptions {
  /** ws://host:port/v1 or wss://host:port/v1 */
  url: string;
  /** The bearer token (Hello.token); '' when the server has no tokens. */
  token?: string;
  clientName?: string;
  /** Backoff of reconnects; false: a lost connection fails every request and watch with UnavailableError. */
  reconnect?: ReconnectOptions | false;
  /** A request without an answer in this time fails with TimeoutError (DEADLINE_EXCEEDED). 0: never. */
  requestTimeoutMs?: number;
  /** Opening the socket plus the Hello exchange. */
  connectTimeoutMs?: number;
  /** Ping interval (ws only); a connection silent for two intervals is dropped and made again. 0: off. */
  keepaliveMs?: number;
  /** Largest frame accepted from the server (ws maxPayload). */
  frameBytesReceivedMax?: number;
  /** Another WebSocket implementation (default: the `ws` package). */
  WebSocketImpl?: WebSocketConstructor;
  /** Passed to the WebSocket constructor as its options (ws: TLS `ca`, `cert`, `key`, `rejectUnauthorized`...). */
  webSocketOptions?: Record<string, unknown>;
  /** The random source of backoff jitter (tests). */
  random?: () => number;
}

export interface ClientEvents {
  connected: [hello: HelloResponseT];
  disconnected: [info: { code: number; reason: string; error: Error | null }];
  reconnecting: [info: { attempt: number; delayMs: number }];
  /** Bad input from the server (the connection is then made again) or an ErrorResponse pushed with id 0. */
  error: [error: Error];
  /** Final: the client stopped (4400/4401, or a loss with reconnect: false). */
  failed: [error: StrataError];
}

interface Call {
  readonly what: string;
  readonly seq: number;
  readonly retry: boolean;
  readonly commit: boolean;
  /** The connection this request belongs to, if it may not go out on another one. */
  readonly generation: number | null;
  encode(id: number): Uint8Array;
  accept(message: Incoming): void;
  fail(error: Error): void;
  id: number;
  done: boolean;
  timer: NodeJS.Timeout | null;
}

type State = 'connecting' | 'ready' | 'waiting' | 'closed' | 'failed';

const noop = (): void => undefined;

export class Connection extends EventEmitter<ClientEvents> implements WatchHost {
  /** The current connection's HelloResponse (the last one while reconnecting). */
  hello: HelloResponseT | null = null;

  private readonly url: string;
  private readonly token: string;
  private readonly clientName: string;
  private readonly backoff: Backoff | null;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly keepaliveMs: number;
  private readonly frameBytesReceivedMax: number;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly webSocketOptions: Record<string, unknown>;
  private readonly random: () => number;

  private state: State = 'connecting';
  private socket: WebSocketLike | null = null;
  private generation = 0;
  private helloId = 0;
  private attempt = 0;
  private failure: StrataError | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private lastReceivedMs = 0;
  private connectWaiter: { resolve(): void; reject(error: Error): void } | null = null;

  private idLast = 0;
  private seqLast = 0;
  private readonly waiting: Call[] = [];
  private readonly inFlight = new Map<number, Call>();
  private inFlightMax = requestsInFlightMaxDefault;
  private frameBytesMax = 0;
  private subscriptionsMax = subscriptionsMaxDefault;

  private readonly watches = new Set<Watch>();
  private readonly subscriptions = new Map<number, Watch>();

  protected constructor(options: ClientOptions) {
    super();
    this.url = options.url;
    this.token = options.token ?? '';
    this.clientName = options.clientName ?? 'strata-client';
    this.backoff = options.reconnect === false ? null : backoffOf(options.reconnect);
    this.requestTimeoutMs = options.requestTimeoutMs ?? requestTimeoutMsDefault;
    this.connectTimeoutMs = options.connectTimeoutMs ?? connectTimeoutMsDefault;
    this.keepaliveMs = options.keepaliveMs ?? keepaliveMsDefault;
    this.frameBytesReceivedMax = options.frameBytesReceivedMax ?? frameBytesReceivedMaxDefault;
    this.WebSocketImpl = options.WebSocketImpl ?? (WebSocket as unknown as WebSocketConstructor);
    this.webSocketOptions = options.webSocketOptions ?? {};
    this.random = options.random ?? Math.random;
  }

  /** Opens the first connection; rejects if it fails (see StrataClient.connect). */
  protected start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.connectWaiter = { resolve, reject };
      this.open();
    });
  }

  get connected(): boolean {
    return this.state === 'ready';
  }

  // --- connection ------------------------------------------------------------------------------------------

  private open(): void {
    this.state = 'connecting';
    this.generation++;
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketImpl(this.url, undefined, { maxPayload: this.frameBytesReceivedMax, ...this.webSocketOptions });
    } catch (error) {
      this.socket = null;
      this.lost(null, 1006, '', new UnavailableError(`cannot open ${this.url}: ${(error as Error).message}`, { cause: error }));
      return;
    }
    this.socket = socket;
    socket.binaryType = 'arraybuffer';
    let socketError: unknown = null;
    socket.onopen = () => {
      this.helloId = this.nextId();
      this.send(socket, encodeHello(this.helloId, this.token, this.clientName, protocolVersionMin, protocolVersionMax));
    };
    socket.onmessage = (event) => this.received(socket, event.data);
    socket.onerror = (event) => {
      socketError = (event as { error?: unknown }).error ?? event;
    };
    socket.onclose = (event) => {
      const cause = socketError instanceof Error ? socketError : undefined;
      const detail = cause === undefined ? `close ${event.code}${event.reason ? ` (${event.reason})` : ''}` : cause.message;
      this.lost(socket, event.code, event.reason, new UnavailableError(`connection lost: ${detail}`, { cause }));
    };
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      this.lost(socket, 1006, '', new UnavailableError(`no connection and Hello within ${this.connectTimeoutMs} ms`));
    }, this.connectTimeoutMs);
  }

  private send(socket: WebSocketLike, frame: Uint8Array): void {
    try {
      socket.send(frame);
    } catch (error) {
      // A socket closing under us: its close event follows and settles what was in flight.
      void error;
    }
  }

  private received(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.socket) return;
    this.lastReceivedMs = Date.now();
    let message: Incoming;
    try {
      message = decodeFrame(bytesOf(data));
    } catch (error) {
      this.protocolFailure(socket, error);
      return;
    }
    try {
      if (this.state === 'connecting') this.helloAnswered(socket, message);
      else this.dispatch(message);
    } catch (error) {
      this.protocolFailure(socket, error);
    }
  }

  private protocolFailure(socket: WebSocketLike, error: unknown): void {
    const failure = error instanceof StrataError ? error : new ProtocolError(`bad server input: ${(error as Error).message}`, error);
    this.report(failure);
    this.lost(socket, 1002, 'protocol error', new UnavailableError(`connection dropped: ${failure.message}`, { cause: failure }));
  }

  private report(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  private helloAnswered(socket: WebSocketLike, message: Incoming): void {
    if (message.id !== this.helloId) throw new ProtocolError(`a ${message.type} message before the HelloResponse`);
    if (message.type === 'error') {
      const error = errorOf(message.error);
      const final = error.code === ErrorCode.UNAUTHENTICATED || error.code === ErrorCode.INVALID_ARGUMENT ||
        error.code === ErrorCode.PERMISSION_DENIED;
      this.lost(socket, 1000, 'hello refused', error, final);
      return;
    }
    if (message.type !== 'hello') throw new ProtocolError(`a ${message.type} answering Hello`);
    const hello = message.body;
    if (hello.protocol < protocolVersionMin || hello.protocol > protocolVersionMax) {
      this.lost(socket, 1000, 'protocol', new StrataError(ErrorCode.INVALID_ARGUMENT,
        `the server chose protocol ${hello.protocol}, this client speaks ${protocolVersionMin}..${protocolVersionMax}`), true);
      return;
    }
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.hello = hello;
    const limits = hello.limits;
    this.inFlightMax = limits !== null && limits.requestsInFlightMax > 0 ? limits.requestsInFlightMax : requestsInFlightMaxDefault;
    this.frameBytesMax = limits !== null ? limits.frameBytesMax : 0;
    this.subscriptionsMax = limits !== null && limits.subscriptionsMax > 0 ? limits.subscriptionsMax : subscriptionsMaxDefault;
    this.state = 'ready';
    this.attempt = 0;
    this.startKeepalive(socket);
    const waiter = this.connectWaiter;
    this.connectWaiter = null;
    this.emit('connected', hello);
    waiter?.resolve();
    this.pump();
  }

  private startKeepalive(socket: WebSocketLike): void {
    if (this.keepaliveMs <= 0 || typeof socket.ping !== 'function' || typeof socket.on !== 'function') return;
    socket.on('pong', () => {
      this.lastReceivedMs = Date.now();
    });
    this.lastReceivedMs = Date.now();
    this.keepaliveTimer = setInterval(() => {
      if (socket !== this.socket) return;
      if (Date.now() - this.lastReceivedMs > 2 * this.keepaliveMs) {
        this.lost(socket, 1006, '', new UnavailableError(`no traffic for ${2 * this.keepaliveMs} ms`));
        return;
      }
      try {
        socket.ping!();
      } catch {
        // closing: the close event follows
      }
    }, this.keepaliveMs);
  }

  /** Detaches a socket and closes it without waiting for the other side. */
  private detach(socket: WebSocketLike, code: number, reason: string): void {
    socket.onopen = noop;
    socket.onmessage = noop;
    socket.onclose = noop;
    socket.onerror = noop; // ws emits 'error' events: keep a listener so one is never unhandled
    try {
      if (typeof socket.terminate === 'function' && code !== 1000) socket.terminate();
      else socket.close(code === 1000 ? 1000 : undefined, reason);
    } catch {
      // closed already
    }
  }

  /** The connection `socket` is gone (closed, failed, refused, dropped by us). */
  private lost(socket: WebSocketLike | null, code: number, reason: string, error: StrataError, final = false): void {
    if (socket !== this.socket || this.state === 'closed' || this.state === 'failed') return;
    this.socket = null;
    if (socket !== null) this.detach(socket, code, reason);
    this.clearConnectionTimers();
    const wasReady = this.state === 'ready';
    if (code === 4401) {
      final = true;
      error = new StrataError(ErrorCode.UNAUTHENTICATED, reason || 'the server refused the token (close 4401)');
    } else if (code === 4400) {
      final = true;
      error = new StrataError(ErrorCode.INVALID_ARGUMENT, reason || 'no protocol version in common (close 4400)');
    }
    if (this.connectWaiter !== null) {
      const waiter = this.connectWaiter;
      this.connectWaiter = null;
      this.shutdown(error);
      waiter.reject(error);
      return;
    }
    if (wasReady) this.emit('disconnected', { code, reason, error });
    if (final || this.backoff === null) {
      this.fail(error);
      return;
    }
    this.requeueInFlight();
    for (const watch of [...this.watches]) watch.disconnected();
    this.subscriptions.clear();
    this.attempt++;
    const delayMs = backoffDelayMs(this.backoff, this.attempt, this.random);
    this.state = 'waiting';
    this.emit('reconnecting', { attempt: this.attempt, delayMs });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state === 'waiting') this.open();
    }, delayMs);
  }

  private clearConnectionTimers(): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    this.connectTimer = null;
    this.keepaliveTimer = null;
  }

  /** In-flight requests after a loss: the safe ones wait for the next connection (first), the others fail. */
  private requeueInFlight(): void {
    const again: Call[] = [];
    for (const call of this.inFlight.values()) {
      call.id = 0;
      if (call.done) continue;
      if (call.retry && call.generation === null) {
        again.push(call);
        continue;
      }
      this.settle(call);
      call.fail(new UnavailableError(call.commit
        ? `${call.what}: the connection was lost before its answer and it has no idempotency key: whether it committed is unknown`
        : `${call.what}: the connection was lost before its answer`, { ackUnknown: call.commit }));
    }
    this.inFlight.clear();
    again.sort((a, b) => a.seq - b.seq);
    this.waiting.unshift(...again);
  }

  /** Final: every request and watch fails with `error`; no reconnect. */
  private fail(error: StrataError): void {
    this.shutdown(error);
    this.state = 'failed';
    this.failure = error;
    this.emit('failed', error);
  }

  private shutdown(error: StrataError | null): void {
    this.state = error === null ? 'closed' : 'failed';
    this.failure = error;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.clearConnectionTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) this.detach(socket, 1000, 'client closing');
    this.subscriptions.clear();
    for (const watch of [...this.watches]) watch.fail(error);
    this.watches.clear();
    const calls = [...this.inFlight.values(), ...this.waiting];
    this.inFlight.clear();
    this.waiting.length = 0;
    const reason = error ?? new UnavailableError('the client was closed');
    for (const call of calls) {
      if (call.done) continue;
      this.settle(call);
      call.fail(reason);
    }
  }

  /** Closes the connection; pending requests fail with UnavailableError, watches end (done). */
  close(): Promise<void> {
    if (this.state !== 'closed' && this.state !== 'failed') {
      const waiter = this.connectWaiter;
      this.connectWaiter = null;
      this.shutdown(null);
      waiter?.reject(new UnavailableError('the client was closed'));
    }
    return Promise.resolve();
  }

  // --- requests --------------------------------------------------------------------------------------------

  private nextId(): number {
    for (;;) {
      this.idLast = this.idLast >= 0xffffffff ? 1 : this.idLast + 1;
      if (!this.inFlight.has(this.idLast) && this.idLast !== this.helloId) return this.idLast;
    }
  }

  protected submit(spec: Omit<Call, 'seq' | 'id' | 'done' | 'timer'>, timeoutMs = this.requestTimeoutMs): void {
    const call: Call = { ...spec, seq: ++this.seqLast, id: 0, done: false, timer: null };
    if (this.state === 'closed' || this.state === 'failed') {
      call.done = true;
      call.fail(this.failure ?? new UnavailableError('the client was closed'));
      return;
    }
    if (this.waiting.length >= requestsWaitingMax) {
      call.done = true;
      call.fail(new StrataError(ErrorCode.RESOURCE_EXHAUSTED, `${requestsWaitingMax} requests wait already`));
      return;
    }
    if (timeoutMs > 0) call.timer = setTimeout(() => this.expire(call, timeoutMs), timeoutMs);
    this.waiting.push(call);
    this.pump();
  }

  private pump(): void {
    const socket = this.socket;
    while (this.state === 'ready' && socket !== null && this.waiting.length > 0 && this.inFlight.size < this.inFlightMax) {
      const call = this.waiting.shift()!;
      if (call.done) continue;
      if (call.generation !== null && call.generation !== this.generation) {
        this.settle(call);
        call.fail(new UnavailableError(`${call.what}: its connection is gone`));
        continue;
      }
      const id = this.nextId();
      let frame: Uint8Array;
      try {
        frame = call.encode(id);
      } catch (error) {
        this.settle(call);
        call.fail(error instanceof StrataError ? error
          : new StrataError(ErrorCode.INVALID_ARGUMENT, `${call.what}: cannot encode: ${(error as Error).message}`, 0n, { cause: error }));
        continue;
      }
      if (this.frameBytesMax > 0 && frame.length > this.frameBytesMax) {
        this.settle(call);
        call.fail(new StrataError(ErrorCode.INVALID_ARGUMENT,
          `${call.what}: ${frame.length} bytes, more than the server's frame_bytes_max ${this.frameBytesMax}`));
        continue;
      }
      call.id = id;
      this.inFlight.set(id, call);
      this.send(socket, frame);
    }
  }

  private settle(call: Call): void {
    call.done = true;
    if (call.timer !== null) clearTimeout(call.timer);
    call.timer = null;
  }

  /** No answer in time: the caller is told; an in-flight id stays reserved until its late answer or the loss. */
  private expire(call: Call, timeoutMs: number): void {
    if (call.done) return;
    this.settle(call);
    if (call.id === 0) {
      const index = this.waiting.indexOf(call);
      if (index >= 0) this.waiting.splice(index, 1);
    }
    call.fail(new TimeoutError(`${call.what}: no answer in ${timeoutMs} ms${call.commit ? '; its outcome is unknown' : ''}`));
  }

  private dispatch(message: Incoming): void {
    if (message.id !== 0) {
      const call = this.inFlight.get(message.id);
      if (call === undefined) return; // an id this connection has no request for: ignored
      this.inFlight.delete(message.id);
      if (!call.done) {
        this.settle(call);
        call.accept(message);
      }
      this.pump();
      return;
    }
    switch (message.type) {
      case 'events':
        this.subscriptions.get(message.subscription)?.events(message.partial, message.revisions);
        return;
      case 'state':
        this.subscriptions.get(message.subscription)?.state(message.partial, message.piece);
        return;
      case 'stateEnd':
        this.subscriptions.get(message.body.subscription)?.stateEnd(message.body.revision);
        return;
      case 'progress':
        this.subscriptions.get(message.body.subscription)?.progress(message.body.revision);
        return;
      case 'ended': {
        const watch = this.subscriptions.get(message.body.subscription);
        this.subscriptions.delete(message.body.subscription);
        watch?.ended(message.body);
        return;
      }
      case 'error':
        this.report(errorOf(message.error));
        return;
      default:
        throw new ProtocolError(`a ${message.type} pushed with id 0`);
    }
  }

  /** A request whose answer is one message type; `retry`: safe to send again on a new connection. */
  protected request<T>(what: string, encodeFrame: (id: number) => Uint8Array, retry: boolean,
    expect: Incoming['type'], pick: (message: Incoming) => T, commit = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.submit({
        what, retry, commit, generation: null, encode: encodeFrame, fail: reject,
        accept: (message) => {
          if (message.type === 'error') reject(errorOf(message.error));
          else if (message.type !== expect) reject(new ProtocolError(`${what}: a ${message.type} answered it, not a ${expect}`));
          else resolve(pick(message));
        },
      });
    });
  }

  // --- watches ---------------------------------------------------------------------------------------------

  /**
   * A watch: an AsyncIterable of changes (and with list: the state first). It resumes by itself after a reconnect
   * or a slow-consumer end; it throws CompactedError when the server no longer has the revisions it needs.
   */
  watch(options: WatchOptions = {}): Watch {
    const watch = new Watch(this, options);
    if (this.state === 'closed' || this.state === 'failed') {
      watch.fail(this.failure ?? new UnavailableError('the client was closed'));
      return watch;
    }
    if (this.watches.size >= this.subscriptionsMax) {
      watch.fail(new StrataError(ErrorCode.RESOURCE_EXHAUSTED, `${this.watches.size} watches open: the server allows ${this.subscriptionsMax}`));
      return watch;
    }
    this.watches.add(watch);
    watch.start();
    return watch;
  }

  subscribe(watch: Watch): void {
    this.submit({
      what: 'watch', retry: true, commit: false, generation: null,
      encode: (id) => encodeWatch(id, watch.request()),
      fail: (error) => watch.subscribeFailed(error),
      accept: (message) => {
        if (message.type === 'watch') {
          if (watch.subscribed(message.body)) this.subscriptions.set(message.body.subscription, watch);
          else this.cancel(message.body.subscription);
        } else if (message.type === 'error') {
          watch.subscribeFailed(errorOf(message.error));
        } else {
          watch.subscribeFailed(new ProtocolError(`watch: a ${message.type} answered it, not a WatchResponse`));
        }
      },
    }, 0);
  }

  cancel(subscription: number): void {
    this.subscriptions.delete(subscription);
    if (this.state !== 'ready') return; // the connection is gone, and its subscriptions with it
    this.submit({
      what: 'watch cancel', retry: false, commit: false, generation: this.generation,
      encode: (id) => encodeWatchCancel(id, subscription), accept: noop, fail: noop,
    });
  }

  requestProgress(subscription: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.submit({
        what: 'watch progress', retry: false, commit: false, generation: this.generation,
        encode: (id) => encodeWatchProgressRequest(id, subscription), fail: reject,
        accept: (message) => (message.type === 'error' ? reject(errorOf(message.error)) : resolve()),
      });
    });
  }

  retryDelayMs(attempt: number): number {
    return backoffDelayMs(this.backoff ?? backoffOf(), attempt, this.random);
  }

  released(watch: Watch): void {
    this.watches.delete(watch);
  }
}


function bytesOf(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data as Buffer[]));
  throw new ProtocolError(`a ${typeof data === 'string' ? 'text' : typeof data} frame (the protocol uses binary frames)`);
}
