/**
 * stratad assembled: the configuration, the engine, the watch hub, the server and the metrics, and their
 * lifecycle (start, staged-backup commit with reopen, stop). Owner: the main thread.
 *
 * Invariants:
 * - HTTP answers from the moment the port is bound (/readyz says 503 until recovery is done); WebSocket clients
 *   are let in only once the engine is open and the watch history continues from its revision.
 * - The hub sees every revision once, in order: the engine's changes (replayed ones during open included) go
 *   straight to it; revisions it already has (a reopen replaying them) are skipped.
 * - stop() closes the server before the engine: nothing is acknowledged that is not durable, and every
 *   subscriber is told (UNAVAILABLE, then close 1001) so it resumes elsewhere or after the restart.
 */
import { readFileSync } from 'node:fs';
import { Engine, type EngineOptions } from './engine.js';
import type { DaemonConfig } from './config.js';
import { Metrics } from './metrics.js';
import { Server } from './server.js';
import { requireNativeUws, type UwsDetection } from './uws.js';
import { WatchHub } from './watch.js';

export const serverVersion: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface DaemonEvents {
  /** Something worth a log line (snapshots, backups, reopen), as JSON-able fields. */
  onEvent?: (event: Record<string, unknown>) => void;
  /** The engine failed (fail-stop): the process must exit with a code from the error. */
  onFailure?: (error: Error) => void;
}

export class Daemon {
  readonly config: DaemonConfig;
  readonly hub: WatchHub;
  readonly server: Server;
  readonly metrics: Metrics;
  readonly uws: UwsDetection;
  private engineNow: Engine | null = null;
  private readyNow = false;
  private opening: Promise<void> | null = null;
  private stopped = false;
  private tick: NodeJS.Timeout | null = null;
  private readonly events: DaemonEvents;
  readonly startedMs = Date.now();
  port = 0;

  private constructor(config: DaemonConfig, uws: UwsDetection, events: DaemonEvents) {
    this.config = config;
    this.uws = uws;
    this.events = events;
    this.hub = new WatchHub(-1, {
      historyBytes: config.watch.historyBytes, bufferBytes: config.watch.bufferBytes,
      closeBytes: config.watch.closeBytes, frameBytesMax: config.limits.frameBytesMax,
    });
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
    });
    this.metrics = new Metrics({
      engine: () => self.engineNow, hub: this.hub, connections: () => self.server.connections,
      websocket: uws.implementation, queueDepths: () => self.server.queueDepths(),
    });
  }

  /** Binds the port, opens the engine (recovery), then lets clients in. Throws UwsFallbackError, LockedError, EngineError. */
  static async start(config: DaemonConfig, events: DaemonEvents = {}): Promise<Daemon> {
    const uws = requireNativeUws(config.allowUwsFallback);
    const daemon = new Daemon(config, uws, events);
    daemon.port = await daemon.server.listen();
    events.onEvent?.({ msg: 'stratad listening (ready once recovered)', host: config.host, port: daemon.port });
    try {
      await daemon.open();
    } catch (error) {
      daemon.server.stop();
      throw error;
    }
    daemon.tick = setInterval(() => daemon.hub.tick(), 50);
    return daemon;
  }

  get ready(): boolean {
    return this.readyNow;
  }

  get engine(): Engine | null {
    return this.engineNow;
  }

  private engineOptions(): EngineOptions {
    const c = this.config;
    return {
      dataDir: c.dataDir, readerThreads: c.readerThreads === 0 ? undefined : c.readerThreads,
      snapshot: c.snapshot, backup: c.backup,
      onChanges: (revisions) => this.hub.publish(revisions),
      onEvent: this.events.onEvent,
      onFailure: (error) => this.events.onFailure?.(error),
      onGroup: (transactions: number, syncMs: number) => {
        this.metrics.groupSize.observe(transactions);
        if (syncMs >= 0) this.metrics.fsyncSeconds.observe(syncMs / 1000);
      },
    };
  }

  private open(): Promise<void> {
    this.opening = this.openEngine().finally(() => { this.opening = null; });
    return this.opening;
  }

  private async openEngine(): Promise<void> {
    const engine = await Engine.open(this.engineOptions());
    if (this.stopped) { // stop() came while recovering: nothing is served from it
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
    this.events.onEvent?.({ msg: 'staged backup committed: reopening', revision: result.revision, file: result.file });
    try {
      await this.open();
    } catch (error) {
      // The restore is logged; a store that does not reopen is not served half-way: fail-stop, a restart recovers.
      this.readyNow = false;
      this.events.onFailure?.(error as Error);
      throw error;
    }
    return result;
  }

  /** Stops serving, then closes the engine (the group in flight is finished and synced). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tick !== null) clearInterval(this.tick);
    this.tick = null;
    this.readyNow = false;
    this.server.stop();
    await this.opening?.catch(() => undefined); // a reopen in progress ends first (and closes what it opened)
    const engine = this.engineNow;
    this.engineNow = null;
    await engine?.close();
  }
}
