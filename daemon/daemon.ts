/**
 * stratad assembled: the configuration, the engine, the watch hub, the server, the metrics and the log, and their
 * lifecycle (start, staged-backup commit with reopen, graceful stop, reload, health). Owner: the main thread.
 *
 * Invariants:
 * - HTTP answers from the moment the port is bound (/readyz says 503 until recovery is done); WebSocket clients
 *   are let in only once the engine is open and the watch history continues from its revision.
 * - The hub sees every revision once, in order: the engine's changes (replayed ones during open included) go
 *   straight to it; revisions it already has (a reopen replaying them) are skipped.
 * - stop() goes in this order, each step once: (1) stop accepting: the listen socket closes, /readyz says 503,
 *   every new request is answered UNAVAILABLE; (2) a recovery or reopen in progress ends (and closes what it
 *   opened); (3) every request already taken is answered and its answer handed to its socket; (4) the engine
 *   closes (the last group synced, the data directory unlocked); (5) every subscription ends (UNAVAILABLE, after
 *   the events already queued) and every connection closes with 1001. It resolves with ok once they are done, or,
 *   when shutdownTimeoutMs passes first, with ok false and what was still pending (the caller exits 70).
 * - reload() applies a config through daemon/reload.ts: only live keys and tokens change; connections whose token
 *   changed are closed with 4401.
 * - healthCheck() is true only while the engine is open, has not failed, and its writer answers within the bound.
 */
import { readFileSync } from 'node:fs';
import { Engine, type EngineOptions } from './engine.js';
import type { DaemonConfig } from './config.js';
import { errorFields, type DaemonLog, type LogFields } from './log.js';
import { Metrics } from './metrics.js';
import { planReload, type ReloadPlan } from './reload.js';
import { backpressureMax, Server } from './server.js';
import { requireNativeUws, type UwsDetection } from './uws.js';
import { WatchHub, type SlowConsumerEvent, type Subscription } from './watch.js';

export const serverVersion: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** How often the hub's periodic work runs (progress to idle subscriptions, stalled catch-ups). */
const hubTickMs = 50;
/** How often a stop checks whether the requests taken are answered (a stop-only poll, not a hot path). */
const stopPollMs = 10;
/** After the 1001 closes: how long clients get to finish the close handshake before they are dropped. */
const connectionsCloseWaitMs = 2_000;

export type StopStep = 'accepting-stopped' | 'requests-answered' | 'engine-closed' | 'connections-closed';

export interface DaemonHooks {
  log: DaemonLog;
  /** The engine failed (fail-stop): the process must exit with a code from the error. */
  onFailure?: (error: Error) => void;
  /** Each step of a stop as it completes (the lead's sd_notify STATUS= goes here). */
  onStopStep?: (step: StopStep) => void;
}

export interface StopResult {
  ok: boolean;
  /** The step it was at and what it waited for (when ok is false), for the error line. */
  pending: LogFields;
  ms: number;
}

export class Daemon {
  config: DaemonConfig;
  readonly hub: WatchHub;
  readonly server: Server;
  readonly metrics: Metrics;
  readonly uws: UwsDetection;
  readonly log: DaemonLog;
  private engineNow: Engine | null = null;
  private readyNow = false;
  private opening: Promise<void> | null = null;
  private stopping: Promise<StopResult> | null = null;
  private stopStep = '';
  private failed = false;
  private tick: NodeJS.Timeout | null = null;
  private readonly hooks: DaemonHooks;
  readonly startedMs = Date.now();
  port = 0;

  private constructor(config: DaemonConfig, uws: UwsDetection, hooks: DaemonHooks) {
    this.config = config;
    this.uws = uws;
    this.hooks = hooks;
    this.log = hooks.log;
    this.hub = new WatchHub(-1, this.watchLimits(config), Date.now,
      (event, s, buffered) => this.slowConsumer(event, s, buffered));
    const self = this;
    this.server = new Server(config, {
      engine: () => self.engineNow,
      ready: () => self.readyNow,
      hub: this.hub,
      get metrics() { return self.metrics; },
      version: serverVersion,
      websocket: uws.implementation,
      startedMs: this.startedMs,
      commitStaged: () => self.commitStaged(),
      log: hooks.log,
    });
    this.metrics = new Metrics({
      engine: () => self.engineNow, hub: this.hub, connections: () => self.server.connections,
      websocket: uws.implementation, queueDepths: () => self.server.queueDepths(),
    });
  }

  /** The daemon, not started. Throws UwsFallbackError when the fallback runs and was not allowed. */
  static create(config: DaemonConfig, hooks: DaemonHooks): Daemon {
    return new Daemon(config, requireNativeUws(config.allowUwsFallback), hooks);
  }

  /**
   * Binds the port, opens the engine (recovery), then lets clients in. Resolves true once serving; false when a
   * stop began meanwhile (nothing is served; the stop finishes on its own). Throws LockedError, EngineError.
   */
  async start(): Promise<boolean> {
    this.port = await this.server.listen();
    this.log.info({ host: this.config.host, port: this.port, websocket: this.uws.implementation },
      'stratad listening (ready once recovered)');
    if (this.stopping !== null) return false; // a signal came while binding: no recovery is started
    try {
      await this.open();
    } catch (error) {
      this.server.stop();
      throw error;
    }
    if (this.stopping !== null) return false;
    this.tick = setInterval(() => this.hub.tick(), hubTickMs);
    return true;
  }

  get ready(): boolean {
    return this.readyNow;
  }

  get engine(): Engine | null {
    return this.engineNow;
  }

  /**
   * 'starting', 'recovering' (the first open), 'serving', 'reopening' (a committed staged backup: the engine is
   * replaced, the writer cannot be asked), or the step a stop is at.
   */
  get phase(): string {
    if (this.stopping !== null) return this.stopStep;
    if (this.opening !== null) return this.readyNow ? 'reopening' : 'recovering';
    return this.readyNow ? 'serving' : 'starting';
  }

  private watchLimits(c: DaemonConfig) {
    return { historyBytes: c.watch.historyBytes, bufferBytes: c.watch.bufferBytes, closeBytes: c.watch.closeBytes,
      frameBytesMax: c.limits.frameBytesMax };
  }

  private engineOptions(): EngineOptions {
    const c = this.config;
    return {
      dataDir: c.dataDir, readerThreads: c.readerThreads === 0 ? undefined : c.readerThreads,
      snapshot: c.snapshot, backup: c.backup,
      onChanges: (revisions) => this.hub.publish(revisions),
      onEvent: (event) => this.engineEvent(event),
      onFailure: (error) => {
        this.failed = true;
        this.hooks.onFailure?.(error);
      },
      onGroup: (transactions: number, syncMs: number) => {
        this.metrics.groupSize.observe(transactions);
        if (syncMs < 0) return;
        this.metrics.fsyncSeconds.observe(syncMs / 1000);
        const threshold = this.config.slowLog.fsyncMs;
        if (syncMs >= threshold) {
          this.log.limited('warn', 'slow fsync', { syncMs: Math.round(syncMs * 1000) / 1000, thresholdMs: threshold, transactions },
            'slow fsync: log append + fdatasync of a commit group');
        }
      },
    };
  }

  /**
   * The engine's events as log lines, at the level the emitter gave (the reader pool: a thread ended is a warning,
   * a stuck or broken one an error); the writer's (snapshots and backups written or failed) carry none: failures
   * at error level, the rest at info.
   */
  private engineEvent(event: Record<string, unknown>): void {
    const { msg, level, ...fields } = event;
    const text = String(msg ?? 'engine event');
    if (level === 'error' || (level === undefined && /failed/.test(text))) this.log.error(fields, text);
    else if (level === 'warn') this.log.warn(fields, text);
    else this.log.info(fields, text);
  }

  private slowConsumer(event: SlowConsumerEvent, s: Subscription, buffered: number): void {
    const who = s.sink.identity?.() ?? { connection: 0, token: '' };
    const fields = { ...who, subscription: s.id, position: s.position, bufferedBytes: buffered };
    if (event === 'catchup') {
      this.log.limited('info', 'slow consumer catchup', { ...fields, bufferBytes: this.config.watch.bufferBytes },
        'slow consumer: subscription catches up from history');
    } else {
      this.log.limited('warn', 'slow consumer compacted', { ...fields, oldest: this.hub.oldest },
        'slow consumer: history moved past the subscription (COMPACTED)');
    }
  }

  private open(): Promise<void> {
    this.opening = this.openEngine().finally(() => { this.opening = null; });
    return this.opening;
  }

  private async openEngine(): Promise<void> {
    const engine = await Engine.open(this.engineOptions());
    if (this.stopping !== null) { // a stop came while recovering: nothing is served from it
      await engine.close();
      return;
    }
    const revision = engine.stats().revision;
    // No replay (or history lost to a reopen): history continues from the recovered revision.
    if (this.hub.revision < revision) this.hub.history.clear(revision);
    this.engineNow = engine;
    this.readyNow = true;
  }

  /** Aurora's staged recovery, committed: the engine logs the restore and closes; it is reopened at once. */
  async commitStaged(): Promise<{ revision: number; file: string }> {
    const engine = this.engineNow;
    if (engine === null) throw new Error('the store is reopening');
    const result = await engine.commitStaged();
    this.engineNow = null;
    this.log.info({ revision: result.revision, file: result.file }, 'staged backup committed: reopening');
    try {
      await this.open();
    } catch (error) {
      // The restore is logged; a store that does not reopen is not served half-way: fail-stop, a restart recovers.
      this.readyNow = false;
      this.hooks.onFailure?.(error as Error);
      throw error;
    }
    return result;
  }

  /**
   * True only if the engine is open, has not failed, and its writer thread answers a round trip within
   * `timeoutMs` (false while recovering, reopening or stopped: the writer cannot be asked then).
   */
  async healthCheck(timeoutMs: number): Promise<boolean> {
    const engine = this.engineNow;
    if (engine === null || this.failed) return false;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    try {
      return await Promise.race([engine.writerStats().then(() => !this.failed, () => false), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Applies a freshly loaded config (SIGHUP): live keys and tokens; the plan says what changed and what did not. */
  reload(next: DaemonConfig): ReloadPlan {
    const plan = planReload(this.config, next, backpressureMax, this.server.backpressureListen);
    this.config = plan.config;
    this.log.level = plan.config.logLevel;
    this.hub.setLimits(this.watchLimits(plan.config));
    this.server.reconfigure(plan.config);
    return plan;
  }

  /** The graceful stop (see the invariants): the same promise for every call. */
  stop(): Promise<StopResult> {
    this.stopping ??= this.stopBounded();
    return this.stopping;
  }

  private async stopBounded(): Promise<StopResult> {
    const started = performance.now();
    const boundMs = this.config.shutdownTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), boundMs); });
    const done = await Promise.race([this.stopSteps(started + boundMs).then(() => true, (error: unknown) => {
      this.log.error(errorFields(error, 'INTERNAL'), 'stop failed');
      return false;
    }), late]);
    clearTimeout(timer);
    const ms = Math.round(performance.now() - started);
    if (done === true) return { ok: true, pending: {}, ms };
    return { ok: false, pending: { step: this.stopStep, boundMs, recovering: this.opening !== null,
      engineOpen: this.engineNow !== null, ...this.server.pending() }, ms };
  }

  private step(name: StopStep, next: string): void {
    this.stopStep = next;
    this.hooks.onStopStep?.(name);
  }

  private async stopSteps(deadline: number): Promise<void> {
    this.stopStep = 'stopping accepting';
    this.readyNow = false;
    this.server.beginStop();
    this.step('accepting-stopped', 'waiting for recovery or a reopen');
    await this.opening?.catch(() => undefined); // a recovery or reopen in progress ends (and closes what it opened)
    this.stopStep = 'answering the requests taken';
    while (!this.server.idle()) await new Promise((resolve) => setTimeout(resolve, stopPollMs));
    await this.opening?.catch(() => undefined); // a staged commit answered above may have begun a reopen
    this.step('requests-answered', 'closing the engine');
    const engine = this.engineNow;
    this.engineNow = null;
    await engine?.close();
    if (this.tick !== null) clearInterval(this.tick);
    this.tick = null;
    this.step('engine-closed', 'closing the connections');
    this.server.endConnections();
    const closeBy = Math.min(deadline, performance.now() + connectionsCloseWaitMs);
    while (this.server.connections > 0 && performance.now() < closeBy) await new Promise((resolve) => setTimeout(resolve, stopPollMs));
    const dropped = this.server.closeConnectionsNow();
    if (dropped > 0) this.log.warn({ dropped, waitedMs: connectionsCloseWaitMs }, 'connections dropped: their close did not finish in time');
    this.step('connections-closed', 'stopped');
  }
}
