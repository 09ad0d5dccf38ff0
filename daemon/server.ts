/**
 * The network face: uWebSockets.js serving the FlatBuffers protocol on /v1 and HTTP /healthz, /readyz,
 * /metrics (docs/protocol.md, docs/operations.md). Owner: the main thread.
 *
 * Invariants:
 * - A frame is handled to the end or answered with a typed error: malformed bytes, an unknown body, a text frame,
 *   a request over a limit or outside the token's scope never throws out of a handler and never closes anyone
 *   else's connection. Frames over frameBytesMax are closed by uWS (1009) before they reach us.
 * - Nothing is sent on a closed socket: every asynchronous answer checks the session first.
 * - Each connection has bounded state: at most requestsInFlightMax answers pending, subscriptionsMax
 *   subscriptions; its send buffer is bounded by the watch hub (watch.ts) and closed past watch.closeBytes.
 * - WebSocket upgrades are refused (503) until the engine is ready and after beginStop(). From beginStop() on,
 *   every new request is answered UNAVAILABLE (nothing new reaches the engine) while the requests already taken
 *   finish and their answers are sent (idle() says when); endConnections() then ends the subscriptions and
 *   closes the connections with 1001 after whatever is queued for them.
 * - reconfigure() swaps the limits and the tokens; a connection whose token no longer gives the same principal
 *   is closed with 4401 (it re-authenticates), the others continue untouched.
 * - Every error answered is logged with its code (INTERNAL at error level with the stack, client mistakes at
 *   debug), rate limited per code; the token is never logged, only its name.
 */
import uWS from 'uWebSockets.js';
import * as flatbuffers from 'flatbuffers';
import {
  BackupStageRequest, Body, CommitRequest, ErrorCode, Hello, QueryRequestMessage, Query, QueryResponse,
  RecordTable, TaskQuery, TasksResult, WatchCancel, WatchProgressRequest, WatchRequest, type WatchFilter, ConfigDetail,
} from '../core/fbs/strata.js';
import * as engineLimits from '../core/limits.js';
import { Authenticator, queryDenied, samePrincipal, tokenDigest, watchDenied, writeScope, type Principal } from './auth.js';
import type { DaemonConfig } from './config.js';
import { Engine, EngineError } from './engine.js';
import { errorFields, type DaemonLog, type LogFields } from './log.js';
import type { Metrics } from './metrics.js';
import * as protocol from './protocol.js';
import { compileFilter, type Subscription, type WatchHub, type WatchSink } from './watch.js';

/** What the server needs of the daemon around it. */
export interface ServerHost {
  engine(): Engine | null;            // null while opening or reopening
  ready(): boolean;
  hub: WatchHub;
  metrics: Metrics | null;
  version: string;
  websocket: 'native' | 'fallback';
  startedMs: number;
  /** Admin: commit the staged backup (the engine closes and reopens). */
  commitStaged(): Promise<{ revision: number; file: string }>;
  log: DaemonLog;
}

interface Session extends WatchSink {
  id: number;
  /** Task ids named by this connection's subscriptions' filters (bounded: watchTaskIdsPerConnectionMax). */
  taskIdsWatched: number;
  /** Answers ready in this turn, sent together (corked: one write) on the next. */
  outbox: Uint8Array[];
  ws: uWS.WebSocket<SessionData> | null;
  principal: Principal | null;
  /** SHA-256 of the token of its Hello (null before): a reload re-checks it against the new tokens. */
  tokenDigest: Buffer | null;
  inFlight: number;
  subscriptions: Map<number, Subscription>;
  nextSubscription: number;
  tokens: number;
  refilledMs: number;
  helloTimer: NodeJS.Timeout | null;
}

interface SessionData { unused?: never }

/** Close codes (docs/protocol.md). */
export const closeGoingAway = 1001;
export const closeVersion = 4400;
export const closeUnauthenticated = 4401;
export const closeSlowConsumer = 4408;
export const closeTryAgain = 1013;

/** A filter names at most this many task ids; a connection's subscriptions together at most the second. */
export const watchTaskIdsMax = 1000;
export const watchTaskIdsPerConnectionMax = 10_000;
/** List-then-watch initial states waiting for their turn; more are refused (RESOURCE_EXHAUSTED). */
export const listQueueMax = 1024;
export const progressMsMax = 3_600_000;

const requestNames = Object.fromEntries(Object.entries(Body).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k]));

export class Server {
  private config: DaemonConfig;
  private readonly host: ServerHost;
  private auth: Authenticator;
  private readonly log: DaemonLog;
  private readonly sessions = new Set<Session>();
  // The session of each socket (uWS user data would do, but the pure-JS fallback does not implement it).
  private readonly sessionOf = new WeakMap<uWS.WebSocket<SessionData>, Session>();
  private listenSocket: uWS.us_listen_socket | null = null;
  private sessionIds = 1;
  private stopping = false;
  private listsRunning = 0;
  private readonly listQueue: { s: Subscription; run: () => void }[] = [];
  private readonly fallback: boolean;
  private queriesPending = 0;
  private commitsPending = 0;
  /** Requests taken (counted in a session's inFlight) and not answered yet, over every session. */
  private requestsPending = 0;
  /** Sessions with answers queued for the next turn. */
  private outboxesPending = 0;
  port = 0;
  /** uWS's per-socket buffer limit, fixed at listen: a reload may not raise watch.closeBytes past it. */
  backpressureListen = 0;

  constructor(config: DaemonConfig, host: ServerHost) {
    this.config = config;
    this.host = host;
    this.log = host.log;
    this.auth = new Authenticator(config.tokens);
    this.fallback = host.websocket === 'fallback';
  }

  get connections(): number {
    return this.sessions.size;
  }

  queueDepths(): { commits: number; queries: number } {
    return { commits: this.commitsPending, queries: this.queriesPending };
  }

  /** Starts listening (HTTP at once; WebSocket upgrades once the host is ready). Resolves with the port. */
  listen(): Promise<number> {
    const c = this.config;
    const app = c.tlsCertFile !== '' ?
      uWS.SSLApp({ cert_file_name: c.tlsCertFile, key_file_name: c.tlsKeyFile, passphrase: c.tlsPassphrase || undefined }) :
      uWS.App();
    app.ws<SessionData>('/v1', {
      maxPayloadLength: c.limits.frameBytesMax,
      idleTimeout: c.limits.idleTimeoutS,
      sendPingsAutomatically: true,
      // The server bounds every connection's buffer itself (watch.closeBytes, checked after each send); uWS must
      // never drop a frame silently, so its limit is above closeBytes plus the largest answer (config.ts keeps the
      // sum below 2^32: uWS counts in 32 bits).
      maxBackpressure: this.backpressureListen = backpressureMax(c),
      closeOnBackpressureLimit: 1,
      // The pure-JS fallback does not implement custom upgrade handlers (it throws): there the checks run at open.
      ...(this.fallback ? {} : { upgrade: (res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t) => this.upgrade(res, req, context) }),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      // Pumped on the next turn, not inside the callback: a send from within uWS's drain handler leaves the rest
      // of the socket's buffer unflushed (20.30.0-unofficial: the connection stalls with data queued).
      drain: (ws) => {
        const session = this.sessionOf.get(ws);
        if (session !== undefined) setImmediate(() => { if (session.ws !== null) this.host.hub.drained(session.subscriptions.values()); });
      },
      close: (ws) => this.closed(ws),
    });
    app.get('/healthz', (res) => {
      const healthy = !this.stopping;
      res.writeStatus(healthy ? '200 OK' : '503 Service Unavailable').end(healthy ? 'ok\n' : 'stopping\n');
    });
    app.get('/readyz', (res) => {
      const ready = this.host.ready() && !this.stopping;
      res.writeStatus(ready ? '200 OK' : '503 Service Unavailable').end(ready ? 'ready\n' : 'not ready\n');
    });
    app.get('/metrics', (res) => {
      let aborted = false;
      res.onAborted(() => { aborted = true; });
      const metrics = this.host.metrics;
      if (metrics === null) {
        res.writeStatus('404 Not Found').end('no metrics\n');
        return;
      }
      metrics.text().then((text) => {
        if (!aborted) res.cork(() => res.writeHeader('Content-Type', metrics.contentType).end(text));
      }, (error: unknown) => {
        if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end(String(error)));
      });
    });
    app.any('/*', (res) => {
      res.writeStatus('404 Not Found').end('strata: WebSocket on /v1; HTTP /healthz /readyz /metrics\n');
    });
    return new Promise((resolve, reject) => {
      app.listen(c.host, c.port, (socket) => {
        if (socket === false) {
          reject(new Error(`cannot listen on ${c.host}:${c.port}`));
          return;
        }
        this.listenSocket = socket;
        this.port = uWS.us_socket_local_port(socket as unknown as uWS.us_socket);
        resolve(this.port);
      });
    });
  }

  /** Stops at once: beginStop() and endConnections() together (the daemon's graceful stop has steps between). */
  stop(): void {
    this.beginStop();
    this.endConnections();
  }

  /**
   * The first step of a stop: the listen socket closes (no new connection), /readyz and /healthz answer 503,
   * and every request from now on is answered UNAVAILABLE. Requests already taken go on.
   */
  beginStop(): void {
    this.stopping = true;
    if (this.listenSocket !== null) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }

  /** True when every request taken was answered and its answer handed to its socket. */
  idle(): boolean {
    return this.requestsPending === 0 && this.outboxesPending === 0;
  }

  /** What a stop still waits for, for its log lines. */
  pending(): { requests: number; commits: number; queries: number; answersQueued: number; connections: number } {
    return { requests: this.requestsPending, commits: this.commitsPending, queries: this.queriesPending,
      answersQueued: this.outboxesPending, connections: this.sessions.size };
  }

  /**
   * Ends every subscription (WatchEnded UNAVAILABLE, after the events already queued) and closes every connection
   * with 1001 (uWS sends the close frame after the bytes queued before it).
   */
  endConnections(): void {
    this.host.hub.endAll(ErrorCode.UNAVAILABLE, 'the server is stopping: reconnect and resume');
    for (const session of [...this.sessions]) session.ws?.end(closeGoingAway, 'server stopping');
  }

  /** Drops the connections that did not finish closing (a client that does not read): no more waiting. */
  closeConnectionsNow(): number {
    let dropped = 0;
    for (const session of [...this.sessions]) {
      const ws = session.ws;
      session.ws = null;
      if (ws !== null) {
        ws.close();
        dropped++;
      }
      this.sessions.delete(session);
    }
    return dropped;
  }

  /**
   * A reload: new limits and tokens apply to existing and new connections. A connection whose token no longer
   * gives the same principal (removed, or its scopes changed) is closed with 4401; returns how many were.
   */
  reconfigure(config: DaemonConfig): number {
    this.config = config;
    this.auth = new Authenticator(config.tokens);
    let closed = 0;
    for (const session of this.sessions) {
      if (session.principal === null || session.ws === null) continue;
      const now = this.auth.authenticateDigest(session.tokenDigest!);
      if (now !== null && samePrincipal(now, session.principal)) continue;
      this.log.info({ connection: session.id, token: session.principal.name }, 'connection closed: its token was removed or its scopes changed (4401)');
      session.ws.end(closeUnauthenticated, 'token changed: reconnect and say Hello again');
      closed++;
    }
    return closed;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Connections

  private upgrade(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    const refuse = (status: string, why: string) => {
      this.refused(why);
      res.writeStatus(status).end(`${why}\n`);
    };
    if (this.stopping || !this.host.ready()) return refuse('503 Service Unavailable', 'not ready');
    if (this.sessions.size >= this.config.limits.connectionsMax) return refuse('503 Service Unavailable', 'too many connections');
    this.host.metrics?.connectionsTotal.inc({ result: 'accepted' });
    res.upgrade<SessionData>({}, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'), context);
  }

  private open(ws: uWS.WebSocket<SessionData>): void {
    if (this.fallback) { // no upgrade handler there: refuse here what upgrade() refuses with 503
      const refused = this.stopping || !this.host.ready() ? 'not ready' :
        this.sessions.size >= this.config.limits.connectionsMax ? 'too many connections' : null;
      if (refused !== null) {
        this.refused(refused);
        ws.end(closeTryAgain, refused);
        return;
      }
      this.host.metrics?.connectionsTotal.inc({ result: 'accepted' });
    }
    const session: Session = {
      id: this.sessionIds++, ws, principal: null, tokenDigest: null, inFlight: 0, subscriptions: new Map(), nextSubscription: 1,
      tokens: this.config.limits.requestsPerSecondMax, refilledMs: performance.now(), helloTimer: null,
      taskIdsWatched: 0, outbox: [],
      buffered: () => (session.ws === null ? 0 : session.ws.getBufferedAmount()),
      send: (frame) => this.send(session, frame),
      cork: (fn) => {
        if (session.ws === null) fn();
        else session.ws.cork(fn);
      },
      identity: () => ({ connection: session.id, token: session.principal?.name ?? '' }),
    };
    session.helloTimer = setTimeout(() => {
      if (session.principal === null) session.ws?.end(closeUnauthenticated, 'no hello');
    }, this.config.limits.helloTimeoutMs);
    this.sessionOf.set(ws, session);
    this.sessions.add(session);
  }

  /** A connection refused (HTTP 503, or 1013 on the fallback): counted, and logged (rate limited). */
  private refused(why: string): void {
    this.host.metrics?.connectionsTotal.inc({ result: why });
    if (why === 'not ready') this.log.limited('debug', 'connection refused: not ready', { reason: why }, 'connection refused');
    else this.log.limited('warn', `connection refused: ${why}`, { reason: why, connectionsMax: this.config.limits.connectionsMax }, 'connection refused');
  }

  private closed(ws: uWS.WebSocket<SessionData>): void {
    const session = this.sessionOf.get(ws);
    if (session === undefined) return;
    session.ws = null;
    if (session.helloTimer !== null) clearTimeout(session.helloTimer);
    for (const s of session.subscriptions.values()) this.cancel(session, s);
    this.sessions.delete(session);
  }

  /**
   * Queues a frame; false if the connection is gone. A connection whose send buffer passes watch.closeBytes (it
   * does not read its answers or events) is closed with 4408: every subscription resumes after its last revision.
   */
  private send(session: Session, frame: Uint8Array): boolean {
    const ws = session.ws;
    if (ws === null) return false;
    // The fallback queues the very array it is given under backpressure; the hub patches shared frames: copy.
    ws.send(this.fallback ? frame.slice() : frame, true, false);
    const buffered = ws.getBufferedAmount();
    if (buffered > this.config.watch.closeBytes) {
      this.host.hub.countClosed();
      this.log.limited('warn', 'slow consumer closed', { connection: session.id, token: session.principal?.name ?? '',
        bufferedBytes: buffered, closeBytes: this.config.watch.closeBytes, subscriptions: session.subscriptions.size },
      'slow consumer: connection closed (4408)');
      session.ws = null; // nothing more is sent; close() cleans up
      ws.end(closeSlowConsumer, 'slow consumer: resume each watch after its last revision');
      return false;
    }
    return true;
  }

  /** Answers an ErrorResponse, counted and logged: INTERNAL at error level (with `cause`'s stack), the rest at debug. */
  private error(session: Session, id: number, code: ErrorCode, message: string, revision = 0, cause: unknown = null): void {
    const name = ErrorCode[code] ?? String(code);
    this.host.metrics?.errors.inc({ code: name });
    const level = code === ErrorCode.INTERNAL ? 'error' : 'debug';
    if (this.log.enabled(level)) {
      this.log.limited(level, `request error ${name}`, { connection: session.id, token: session.principal?.name ?? '',
        ...errorFields(cause ?? message, name), message }, 'request error');
    }
    this.send(session, protocol.errorResponse(id, code, message, revision));
  }

  // ------------------------------------------------------------------------------------------------------------
  // Requests

  private message(ws: uWS.WebSocket<SessionData>, message: ArrayBuffer, isBinary: boolean): void {
    const session = this.sessionOf.get(ws);
    if (session === undefined) return;
    if (!isBinary) {
      this.host.metrics?.badFrames.inc();
      this.error(session, 0, ErrorCode.INVALID_ARGUMENT, 'text frames are not part of the protocol: send binary Envelopes');
      return;
    }
    // uWS reuses the message's memory after this callback returns: copy what outlives it.
    const arrivedMs = performance.now();
    const bytes = new Uint8Array(message.slice(0));
    let id = 0;
    let type: Body;
    let envelope;
    try {
      envelope = protocol.decodeEnvelope(bytes);
      id = envelope.id();
      type = envelope.bodyType();
      if (requestNames[type] === undefined || type === Body.NONE) throw new Error(`unknown body type ${type}`);
    } catch (error) {
      this.host.metrics?.badFrames.inc();
      this.error(session, id, ErrorCode.INVALID_ARGUMENT, `malformed frame: ${(error as Error).message}`);
      return;
    }
    this.host.metrics?.requests.inc({ type: requestNames[type] as string });
    if (!this.admit(session, id)) return;
    if (this.stopping) return this.error(session, id, ErrorCode.UNAVAILABLE, 'the server is stopping: retry on another or after the restart');
    try {
      this.dispatch(session, id, type, envelope, arrivedMs);
    } catch (error) {
      this.host.metrics?.badFrames.inc();
      this.error(session, id, ErrorCode.INVALID_ARGUMENT, `malformed ${requestNames[type]}: ${(error as Error).message}`);
    }
  }

  /** The request-rate limit (token bucket, a second's worth of burst). */
  private admit(session: Session, id: number): boolean {
    const rate = this.config.limits.requestsPerSecondMax;
    if (rate === 0) return true;
    const now = performance.now();
    session.tokens = Math.min(rate, session.tokens + ((now - session.refilledMs) * rate) / 1000);
    session.refilledMs = now;
    if (session.tokens < 1) {
      this.error(session, id, ErrorCode.RESOURCE_EXHAUSTED, `over ${rate} requests per second: slow down`);
      return false;
    }
    session.tokens -= 1;
    return true;
  }

  private dispatch(session: Session, id: number, type: Body, envelope: ReturnType<typeof protocol.decodeEnvelope>, arrivedMs: number): void {
    if (type === Body.Hello) return this.hello(session, id, envelope.body(new Hello()) as Hello);
    const principal = session.principal;
    if (principal === null) return this.error(session, id, ErrorCode.UNAUTHENTICATED, 'say Hello first');
    const engine = this.host.engine();
    if (engine === null) return this.error(session, id, ErrorCode.UNAVAILABLE, 'the store is reopening: retry');
    switch (type) {
      case Body.CommitRequest: return this.commit(session, id, engine, principal, envelope.body(new CommitRequest()) as CommitRequest, arrivedMs);
      case Body.QueryRequestMessage:
        return this.query(session, id, engine, principal, envelope.body(new QueryRequestMessage()) as QueryRequestMessage, arrivedMs);
      case Body.WatchRequest: return this.watch(session, id, engine, principal, envelope.body(new WatchRequest()) as WatchRequest);
      case Body.WatchCancel: {
        const cancel = envelope.body(new WatchCancel()) as WatchCancel;
        const s = session.subscriptions.get(cancel.subscription());
        if (s === undefined) return this.error(session, id, ErrorCode.NOT_FOUND, `no subscription ${cancel.subscription()}`);
        this.cancel(session, s);
        this.send(session, protocol.okResponse(id));
        return;
      }
      case Body.WatchProgressRequest: {
        const request = envelope.body(new WatchProgressRequest()) as WatchProgressRequest;
        const s = session.subscriptions.get(request.subscription());
        if (s === undefined) return this.error(session, id, ErrorCode.NOT_FOUND, `no subscription ${request.subscription()}`);
        this.send(session, protocol.okResponse(id));
        this.host.hub.requestProgress(s);
        return;
      }
      case Body.StatusRequest: return this.status(session, id, engine);
      case Body.SnapshotRequest: case Body.BackupRequest: case Body.BackupListRequest: case Body.BackupStageRequest:
      case Body.BackupCommitRequest: case Body.BackupUnloadRequest:
        return this.admin(session, id, engine, principal, type, envelope);
      default:
        return this.error(session, id, ErrorCode.INVALID_ARGUMENT, `${requestNames[type]} is not a request`);
    }
  }

  private hello(session: Session, id: number, hello: Hello): void {
    if (session.principal !== null) return this.error(session, id, ErrorCode.INVALID_ARGUMENT, 'Hello was said already');
    const min = hello.protocolMin();
    const max = hello.protocolMax() === 0 ? min : hello.protocolMax();
    if (!(min <= protocol.protocolVersion && protocol.protocolVersion <= max)) {
      this.error(session, id, ErrorCode.INVALID_ARGUMENT, `protocol ${min}..${max} not supported: this server speaks ${protocol.protocolVersion}`);
      session.ws?.end(closeVersion, 'protocol version');
      return;
    }
    const digest = tokenDigest(hello.token() ?? '');
    const principal = this.auth.authenticateDigest(digest);
    if (principal === null) {
      this.log.limited('warn', 'authentication failed', { connection: session.id, clientName: hello.clientName() ?? '' },
        'authentication failed: unknown token (4401)');
      this.error(session, id, ErrorCode.UNAUTHENTICATED, 'unknown token');
      session.ws?.end(closeUnauthenticated, 'unknown token');
      return;
    }
    session.principal = principal;
    session.tokenDigest = digest;
    if (session.helloTimer !== null) clearTimeout(session.helloTimer);
    session.helloTimer = null;
    const l = this.config.limits;
    this.send(session, protocol.helloResponse(id, {
      serverVersion: this.host.version, revision: this.host.hub.revision, frameBytesMax: l.frameBytesMax,
      requestsInFlightMax: l.requestsInFlightMax, subscriptionsMax: l.subscriptionsMax,
      requestsPerSecondMax: l.requestsPerSecondMax, admin: principal.admin, readAll: principal.readAll,
      writeAll: principal.writeAll, readRoles: [...principal.read], writeRoles: [...principal.write],
    }));
  }

  /** Counts a request in flight; false (and RESOURCE_EXHAUSTED sent) when the connection has too many. */
  private begin(session: Session, id: number): boolean {
    if (session.inFlight >= this.config.limits.requestsInFlightMax) {
      this.error(session, id, ErrorCode.RESOURCE_EXHAUSTED, `over ${this.config.limits.requestsInFlightMax} requests in flight`);
      return false;
    }
    session.inFlight++;
    this.requestsPending++;
    return true;
  }

  /**
   * Answers an asynchronous request counted by begin(): its frame, or a typed error from what failed. `work` runs
   * here, so that whatever it throws synchronously becomes the error answer too: a request counted in flight is
   * always answered and uncounted (a stop waits for every counted one).
   */
  private answer(session: Session, id: number, work: () => Promise<Uint8Array>): void {
    let promise: Promise<Uint8Array>;
    try {
      promise = work();
    } catch (error) { // as in message(): what throws while reading a request is a malformed request
      this.host.metrics?.badFrames.inc();
      promise = Promise.reject(error instanceof EngineError ? error :
        new EngineError(`malformed request: ${String((error as Error)?.message ?? error)}`, 'INVALID_ARGUMENT'));
    }
    promise.then((frame) => {
      session.inFlight--;
      this.requestsPending--;
      this.queueAnswer(session, frame);
    }, (error: unknown) => {
      session.inFlight--;
      this.requestsPending--;
      const code = engineErrorCode(error);
      this.error(session, id, code, String((error as Error)?.message ?? error), 0, error);
    });
  }

  /** A commit or query answered `ms` after its request arrived: a line (rate limited) past its threshold. */
  private slow(kind: 'commit' | 'query', ms: number, session: Session, fields: () => LogFields): void {
    const threshold = kind === 'commit' ? this.config.slowLog.commitMs : this.config.slowLog.queryMs;
    if (ms < threshold) return;
    this.log.limited('warn', `slow ${kind}`, () => ({ ms: Math.round(ms * 1000) / 1000, thresholdMs: threshold,
      connection: session.id, token: session.principal?.name ?? '', ...fields() }), `slow ${kind}`);
  }

  /**
   * Answers of one commit group (or one reader batch) resolve in the same turn: they are sent on the next one,
   * corked, so that a pipelining client costs one write per group, not one per answer.
   */
  private queueAnswer(session: Session, frame: Uint8Array): void {
    if (session.ws === null) return;
    session.outbox.push(frame);
    if (session.outbox.length === 1) {
      this.outboxesPending++;
      setImmediate(() => this.flushAnswers(session));
    }
  }

  private flushAnswers(session: Session): void {
    const frames = session.outbox;
    session.outbox = [];
    this.outboxesPending--;
    session.cork(() => {
      for (const frame of frames) if (!this.send(session, frame)) return;
    });
  }

  private commit(session: Session, id: number, engine: Engine, principal: Principal, request: CommitRequest, arrivedMs: number): void {
    const transaction = request.transactionArray();
    if (transaction === null || transaction.length === 0) {
      return this.error(session, id, ErrorCode.INVALID_ARGUMENT, 'CommitRequest without a transaction');
    }
    if (!this.begin(session, id)) return;
    const metrics = this.host.metrics;
    const committed = (result: Uint8Array): Uint8Array => {
      this.commitsPending--;
      const ms = performance.now() - arrivedMs;
      if (metrics !== null) {
        metrics.commitSeconds.observe(ms / 1000);
        metrics.commits.inc({ result: protocol.resultKind(result) });
      }
      this.slow('commit', ms, session, () => ({ request: 'CommitRequest', transactionBytes: transaction.length }));
      return protocol.commitResponse(id, result);
    };
    const failed = (error: unknown): never => {
      this.commitsPending--;
      metrics?.commits.inc({ result: 'failed' });
      throw error;
    };
    this.answer(session, id, () => {
      const bytes = transaction.slice();
      const scope = writeScope(principal);
      this.commitsPending++;
      return engine.commit(bytes, scope).then(committed, failed);
    });
  }

  private query(session: Session, id: number, engine: Engine, principal: Principal, message: QueryRequestMessage, arrivedMs: number): void {
    const bytes = message.requestArray();
    if (bytes === null || bytes.length === 0) return this.error(session, id, ErrorCode.INVALID_ARGUMENT, 'QueryRequestMessage without a request');
    const request = bytes.slice();
    const decoded = protocol.decodeQuery(request);
    const denied = queryDenied(principal, decoded);
    if (denied !== null) return this.error(session, id, ErrorCode.PERMISSION_DENIED, denied);
    if (message.staged() && !principal.admin) return this.error(session, id, ErrorCode.PERMISSION_DENIED, 'querying a staged backup is admin only');
    if (!this.begin(session, id)) return;
    const answered = (response: Uint8Array): Uint8Array => {
      this.queriesPending--;
      const ms = performance.now() - arrivedMs;
      this.host.metrics?.querySeconds.observe(ms / 1000);
      this.slow('query', ms, session, () => queryFields(decoded, message.staged()));
      return protocol.queryResponse(id, response);
    };
    const failed = (error: unknown): never => {
      this.queriesPending--;
      throw error;
    };
    this.answer(session, id, () => {
      const run = message.staged() ? engine.queryStaged(request) : engine.query(request);
      this.queriesPending++;
      return run.then(answered, failed);
    });
  }

  private status(session: Session, id: number, engine: Engine): void {
    const stats = engine.stats();
    this.send(session, protocol.statusResponse(id, {
      revision: stats.revision, tasks: stats.taskCount, configs: stats.configCount, serverVersion: this.host.version,
      uptimeMs: Date.now() - this.host.startedMs, websocket: this.host.websocket, oldestWatchRevision: this.host.hub.oldest,
      connections: this.sessions.size, subscriptions: this.host.hub.size, staged: engine.stagedName() ?? '',
    }));
  }

  private admin(session: Session, id: number, engine: Engine, principal: Principal, type: Body,
    envelope: ReturnType<typeof protocol.decodeEnvelope>): void {
    if (!principal.admin) return this.error(session, id, ErrorCode.PERMISSION_DENIED, `${requestNames[type]} is admin only`);
    if (!this.begin(session, id)) return;
    this.answer(session, id, () => this.adminWork(id, engine, type, envelope));
  }

  /** An admin request's work; a malformed request throws here, inside answer(), and is answered with its error. */
  private adminWork(id: number, engine: Engine, type: Body, envelope: ReturnType<typeof protocol.decodeEnvelope>): Promise<Uint8Array> {
    let work: Promise<Uint8Array>;
    switch (type) {
      case Body.SnapshotRequest:
        work = engine.snapshot().then((r) => protocol.fileResponse(id, r.path, r.revision, r.bytes, r.tasks));
        break;
      case Body.BackupRequest:
        work = engine.backup().then((r) => protocol.fileResponse(id, r.path, r.revision, r.bytes, r.tasks));
        break;
      case Body.BackupListRequest:
        work = Promise.resolve().then(() => protocol.backupListResponse(id, engine.listBackups()));
        break;
      case Body.BackupStageRequest: {
        const stageName = (envelope.body(new BackupStageRequest()) as BackupStageRequest).name() ?? '';
        work = stageName === '' || stageName.includes('/') || stageName.startsWith('.') ?
          Promise.reject(new EngineError('name a backup of the backup directory (strata backup list)', 'INVALID_ARGUMENT')) :
          engine.stageBackup(stageName).then((r) => protocol.backupStageResponse(id, r.name, r.revision, r.tasks));
        break;
      }
      case Body.BackupCommitRequest:
        work = this.host.commitStaged().then((r) => protocol.backupCommitResponse(id, r.revision, r.file));
        break;
      default:
        work = engine.unstage().then(() => protocol.okResponse(id));
    }
    return work;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Watch

  private watch(session: Session, id: number, engine: Engine, principal: Principal, request: WatchRequest): void {
    const filter = request.filter();
    const denied = watchDenied(principal, filter);
    if (denied !== null) return this.error(session, id, ErrorCode.PERMISSION_DENIED, denied);
    if (session.subscriptions.size >= this.config.limits.subscriptionsMax) {
      return this.error(session, id, ErrorCode.RESOURCE_EXHAUSTED, `at most ${this.config.limits.subscriptionsMax} subscriptions per connection`);
    }
    const compiled = readFilter(filter);
    if (typeof compiled === 'string') return this.error(session, id, ErrorCode.INVALID_ARGUMENT, compiled);
    const after = Number(request.afterRevision());
    if (!Number.isSafeInteger(after) || after < -1) return this.error(session, id, ErrorCode.INVALID_ARGUMENT, 'after_revision must be >= -1');
    const progressMs = request.progressMs() === 0 ? this.config.watch.progressMs :
      Math.min(progressMsMax, Math.max(10, request.progressMs()));
    const ids = compiled.taskIds?.size ?? 0;
    if (session.taskIdsWatched + ids > watchTaskIdsPerConnectionMax) {
      return this.error(session, id, ErrorCode.RESOURCE_EXHAUSTED, `at most ${watchTaskIdsPerConnectionMax} task ids in one connection's watch filters`);
    }
    const list = request.list();
    if (list && this.listQueue.length >= listQueueMax) {
      return this.error(session, id, ErrorCode.RESOURCE_EXHAUSTED, 'too many list-then-watch requests waiting: retry later');
    }
    const hub = this.host.hub;
    const subscriptionId = session.nextSubscription++;
    // The WatchResponse goes out before anything the subscription sends (subscribe() may pump at once).
    if (!this.send(session, protocol.watchResponse(id, subscriptionId, hub.revision, hub.oldest))) return;
    const s = hub.subscribe(subscriptionId, session, compiled, after, progressMs, list);
    if (typeof s === 'number') {
      this.send(session, protocol.watchEnded(subscriptionId, ErrorCode.COMPACTED,
        `revision ${after} is older than the kept history: relist`, s, after));
      return;
    }
    session.subscriptions.set(subscriptionId, s);
    session.taskIdsWatched += ids;
    s.onEnded = () => this.forget(session, s);
    if (list) this.list(session, s, compiled);
  }

  /** The client or the connection ends a subscription. */
  private cancel(session: Session, s: Subscription): void {
    this.host.hub.unsubscribe(s);
    this.forget(session, s);
  }

  /** A subscription that ended (by the client, the connection or the hub) leaves its session and the list queue. */
  private forget(session: Session, s: Subscription): void {
    if (!session.subscriptions.delete(s.id)) return;
    session.taskIdsWatched -= s.filter.taskIds?.size ?? 0;
    const queued = this.listQueue.findIndex((entry) => entry.s === s);
    if (queued >= 0) this.listQueue.splice(queued, 1);
  }

  /**
   * List-then-watch: the state on one pinned revision, then the end marker, then the changes after it. The state's
   * frames go out as the connection's buffer allows (the hub paces them). At most listsConcurrent read at once;
   * the engine is the one current when the read starts (a reopen in between fails the list: UNAVAILABLE).
   */
  private list(session: Session, s: Subscription, filter: ReturnType<typeof compileFilter>): void {
    const run = () => {
      const engine = this.host.engine();
      if (s.state !== 'listing') return this.nextList();
      if (engine === null) {
        this.endList(session, s, ErrorCode.UNAVAILABLE, 'the store is reopening: relist');
        return this.nextList();
      }
      this.listsRunning++;
      listState(engine, filter).then(({ responses, revision }) => {
        if (s.state !== 'listing') return;
        const frames = responses.flatMap((r) => protocol.watchStates(s.id, r, this.config.limits.frameBytesMax));
        this.host.hub.listed(s, revision, frames);
      }, (error: unknown) => {
        if (s.state !== 'listing') return;
        this.endList(session, s, engineErrorCode(error), `listing failed: ${String((error as Error)?.message ?? error)}`);
      }).finally(() => {
        this.listsRunning--;
        this.nextList();
      });
    };
    if (this.listsRunning < this.config.watch.listsConcurrent) run();
    else this.listQueue.push({ s, run });
  }

  private nextList(): void {
    while (this.listsRunning < this.config.watch.listsConcurrent && this.listQueue.length > 0) this.listQueue.shift()!.run();
  }

  private endList(session: Session, s: Subscription, code: ErrorCode, message: string): void {
    this.cancel(session, s);
    this.send(session, protocol.watchEnded(s.id, code, message, 0, -1));
  }
}

/** A query's kind (and, for a task query, its role and job: cheap to read) for a slow-query line. */
function queryFields(request: ReturnType<typeof protocol.decodeQuery>, staged: boolean): LogFields {
  const type = request.queryType();
  const fields: LogFields = { request: 'QueryRequest', query: Query[type] ?? String(type), staged };
  if (type === Query.TaskQuery) {
    try {
      const q = request.query(new TaskQuery()) as TaskQuery;
      fields.role = q.role() ?? '';
      fields.environment = q.environment() ?? '';
      fields.jobName = q.jobName() ?? '';
    } catch {
      fields.malformed = true; // the reader answered it with a typed error; the log line must not turn that into INTERNAL
    }
  }
  return fields;
}

/** uWS's own per-socket buffer limit: above closeBytes plus the largest frame and answer, below 2^32. */
export function backpressureMax(c: DaemonConfig): number {
  return Math.min(0xffff_ffff - 1, c.watch.closeBytes + 2 * c.limits.frameBytesMax + engineLimits.resultBytesMax);
}

/** The filter of a WatchRequest, checked; or why it is invalid. */
function readFilter(filter: WatchFilter | null): ReturnType<typeof compileFilter> | string {
  if (filter === null) return compileFilter([], '', '', '', []);
  const tables: number[] = [];
  for (let i = 0; i < filter.tablesLength(); i++) {
    const t = filter.tables(i)!;
    if (RecordTable[t] === undefined) return `unknown table ${t}`;
    tables.push(t);
  }
  const role = filter.role() ?? '';
  const environment = filter.environment() ?? '';
  const jobName = filter.jobName() ?? '';
  if ((environment !== '' || jobName !== '') && role === '') return 'environment and job_name need role';
  if (jobName !== '' && environment === '') return 'job_name needs environment';
  if (filter.taskIdsLength() > watchTaskIdsMax) return `at most ${watchTaskIdsMax} task ids in a filter`;
  const taskIds: string[] = [];
  for (let i = 0; i < filter.taskIdsLength(); i++) {
    const taskId = filter.taskIds(i) ?? '';
    if (taskId === '' || Buffer.byteLength(taskId) > engineLimits.textBytesMax) {
      return `a task id is 1 to ${engineLimits.textBytesMax} bytes`;
    }
    taskIds.push(taskId);
  }
  return compileFilter(tables, role, environment, jobName, taskIds);
}

const statePageTasks = 10_000;
const statePagesMax = engineLimits.queryBatchMax - 8; // the other tables' queries share the batch

/**
 * The state a list subscription starts from, read in one batch (one pinned revision): pages of tasks, then the
 * other tables its filter takes. If the tasks outgrew the pages planned from the current count, it reads again.
 */
async function listState(engine: Engine, f: ReturnType<typeof compileFilter>): Promise<{ responses: Uint8Array[]; revision: number }> {
  const wants = (t: RecordTable) => f.tables === 0 || (f.tables & (1 << t)) !== 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    const requests: Uint8Array[] = [];
    let pages = 0;
    let pageTasks = statePageTasks;
    if (wants(RecordTable.TASK)) {
      // Task ids: one page holds them all (at most watchTaskIdsMax). Otherwise pages planned from the current
      // count (with room to grow), bigger pages past the batch's size (a store of many millions).
      const count = f.taskIds !== null ? 0 : engine.stats().taskCount * 1.1 * (attempt + 1);
      pageTasks = Math.max(statePageTasks, Math.ceil(count / statePagesMax));
      pages = f.taskIds !== null ? 1 : Math.ceil((count + pageTasks) / pageTasks);
      for (let page = 0; page < pages; page++) {
        requests.push(protocol.taskQuery(f, page * pageTasks, pageTasks, ConfigDetail.FULL));
      }
    }
    if (f.taskIds === null) {
      if (wants(RecordTable.CRON_JOB)) requests.push(protocol.simpleQuery(Query.CronJobsQuery, f));
      if (wants(RecordTable.JOB_UPDATE)) requests.push(protocol.simpleQuery(Query.JobUpdateQuery, f));
      if (wants(RecordTable.QUOTA) && f.role !== '' && f.environment === '') requests.push(protocol.simpleQuery(Query.QuotaQuery, f));
      if (f.role === '') {
        if (wants(RecordTable.HOST_ATTRIBUTES)) requests.push(protocol.simpleQuery(Query.HostAttributesQuery, f));
        if (wants(RecordTable.MAINTENANCE_REQUEST)) requests.push(protocol.simpleQuery(Query.MaintenanceQuery, f));
        if (wants(RecordTable.SCHEDULER)) requests.push(protocol.simpleQuery(Query.SchedulerQuery, f));
      }
    }
    if (requests.length === 0) requests.push(protocol.simpleQuery(Query.SchedulerQuery, f)); // for the revision
    const responses = await engine.queryBatch(requests);
    const first = QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(responses[0]!));
    for (const r of responses) {
      const error = QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(r)).error();
      if (error !== null) throw new EngineError(error.message() ?? 'query failed', ErrorCode[error.code()] ?? 'INTERNAL');
    }
    if (pages > 0) {
      const last = QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(responses[pages - 1]!));
      const total = (last.result(new TasksResult()) as TasksResult).total();
      if (total > pages * pageTasks) continue; // grew past the plan: read again
    }
    const kept = responses.filter((r, i) => i < pages ? i === 0 || hasTasks(r) : true);
    // Cron jobs and job updates are queried by role (the queries have no environment): keep the filter's one.
    const byEnvironment = f.environment !== '' && f.jobName === '' ? kept.map((r) => protocol.onlyEnvironment(r, f.environment)) : kept;
    return { responses: byEnvironment, revision: Number(first.revision()) };
  }
  throw new EngineError('the state kept growing past the planned pages: retry', 'UNAVAILABLE');
}

function hasTasks(response: Uint8Array): boolean {
  const r = QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(response));
  return (r.result(new TasksResult()) as TasksResult).tasksLength() > 0;
}

/** The ErrorCode for a failure of the engine (EngineError.code names one) or anything else (INTERNAL). */
export function engineErrorCode(error: unknown): ErrorCode {
  const code = (error as EngineError)?.code;
  if (typeof code === 'string') {
    if (code in ErrorCode) return ErrorCode[code as keyof typeof ErrorCode];
    if (code === 'FAILED_PRECONDITION') return ErrorCode.PRECONDITION_FAILED;
    if (code === 'FORMAT') return ErrorCode.INVALID_ARGUMENT;
  }
  return ErrorCode.INTERNAL;
}
