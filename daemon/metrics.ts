/**
 * /metrics in Prometheus text format (prom-client). Owner: the main thread.
 * Counters and histograms are updated where things happen (server.ts, watch.ts through their counters); gauges
 * of other threads' state (the writer's groups and fsyncs, reader pins, the arena) are read when scraped.
 * Invariant: a scrape never blocks the event loop on a worker for long: the writer's figures are asked by
 * message with a timeout, and a scrape without them still answers.
 */
import client from 'prom-client';
import * as layout from '../core/layout.js';
import { readerSlotsMax } from '../core/limits.js';
import type { Engine } from './engine.js';
import type { WatchHub } from './watch.js';

export interface MetricsSources {
  engine: () => Engine | null;
  hub: WatchHub;
  connections: () => number;
  websocket: 'native' | 'fallback';
  queueDepths: () => { commits: number; queries: number };
}

const latencyBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

export class Metrics {
  readonly registry = new client.Registry();
  readonly commits: client.Counter<'result'>;
  readonly commitSeconds: client.Histogram;
  readonly querySeconds: client.Histogram;
  readonly requests: client.Counter<'type'>;
  readonly errors: client.Counter<'code'>;
  readonly badFrames: client.Counter;
  readonly groupSize: client.Histogram;
  readonly fsyncSeconds: client.Histogram;
  readonly connectionsTotal: client.Counter<'result'>;

  constructor(sources: MetricsSources) {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r, prefix: 'strata_' });
    this.commits = new client.Counter({ name: 'strata_commits_total', help: 'Transactions answered, by outcome: ok, error (refused, in its result), duplicate, failed (no result: the engine failed or is closing)', labelNames: ['result'], registers: [r] });
    this.commitSeconds = new client.Histogram({ name: 'strata_commit_seconds', help: 'Commit latency seen by the server: request received to result (durable)', buckets: latencyBuckets, registers: [r] });
    this.querySeconds = new client.Histogram({ name: 'strata_query_seconds', help: 'Query latency seen by the server', buckets: latencyBuckets, registers: [r] });
    this.requests = new client.Counter({ name: 'strata_requests_total', help: 'Requests received, by body type', labelNames: ['type'], registers: [r] });
    this.errors = new client.Counter({ name: 'strata_request_errors_total', help: 'Requests answered with an ErrorResponse, by code', labelNames: ['code'], registers: [r] });
    this.badFrames = new client.Counter({ name: 'strata_bad_frames_total', help: 'Frames that were not a valid Envelope (malformed, text, unknown body)', registers: [r] });
    this.groupSize = new client.Histogram({ name: 'strata_group_transactions', help: 'Transactions per commit group (one fdatasync each)', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096], registers: [r] });
    this.fsyncSeconds = new client.Histogram({ name: 'strata_fsync_seconds', help: 'Log append + fdatasync time per commit group', buckets: latencyBuckets, registers: [r] });
    this.connectionsTotal = new client.Counter({ name: 'strata_connections_total', help: 'WebSocket connections accepted or refused (limit, not ready)', labelNames: ['result'], registers: [r] });
    const gauge = (name: string, help: string, value: () => number) => new client.Gauge({ name, help, registers: [r], collect() { this.set(value()); } });
    // A counter kept elsewhere (the hub's), exported as a Prometheus counter: set to its value at each scrape.
    const counter = (name: string, help: string, value: () => number) => new client.Counter({ name, help, registers: [r],
      collect() { this.reset(); this.inc(value()); } });
    gauge('strata_connections', 'Open WebSocket connections', sources.connections);
    gauge('strata_subscriptions', 'Watch subscriptions', () => sources.hub.size);
    gauge('strata_subscriptions_behind', 'Subscriptions catching up from history or listing (not live)', () => sources.hub.behind());
    gauge('strata_watch_history_bytes', 'Bytes of change history kept for watches', () => sources.hub.history.bytes);
    gauge('strata_watch_history_revisions', 'Revisions of change history kept', () => sources.hub.history.count);
    gauge('strata_watch_oldest_revision', 'Oldest revision a watch can resume from', () => sources.hub.oldest);
    counter('strata_slow_consumer_catchups_total', 'Live subscriptions moved to catch-up because their connection buffer was full', () => sources.hub.counters.catchups);
    counter('strata_slow_consumer_compacted_total', 'Subscriptions ended with COMPACTED (history moved past them)', () => sources.hub.counters.compacted);
    counter('strata_slow_consumer_closed_total', 'Connections closed as slow consumers (4408)', () => sources.hub.counters.closed);
    counter('strata_watch_frames_sent_total', 'Watch frames sent (events, state, progress)', () => sources.hub.counters.framesSent);
    gauge('strata_commit_queue_depth', 'Commits sent to the writer and not answered yet', () => sources.queueDepths().commits);
    gauge('strata_query_queue_depth', 'Queries sent to the reader pool and not answered yet', () => sources.queueDepths().queries);
    const engineGauge = (name: string, help: string, value: (e: Engine) => number) =>
      gauge(name, help, () => { const e = sources.engine(); return e === null ? 0 : value(e); });
    engineGauge('strata_revision', 'The last published revision', (e) => e.stats().revision);
    engineGauge('strata_tasks', 'Tasks stored', (e) => e.stats().taskCount);
    engineGauge('strata_configs', 'Distinct task configs stored', (e) => e.stats().configCount);
    engineGauge('strata_arena_bytes', 'Shared memory arena size', (e) => e.stats().arenaBytes);
    engineGauge('strata_arena_bytes_used', 'Shared memory arena bytes in use', (e) => e.stats().arenaBytesUsed);
    engineGauge('strata_reader_pins', 'Reader slots holding a pin now (queries and snapshots in progress)', (e) => readerPins(e.control));
    // Per engine (a staged-backup commit reopens it and they start again from 0: Prometheus reads that as a reset).
    const engineCounter = (name: string, help: string, value: (e: Engine) => number) =>
      counter(name, help, () => { const e = sources.engine(); return e === null ? 0 : value(e); });
    engineCounter('strata_reader_threads_ended_total', 'Reader threads that ended (crashed, or terminated because stuck) and were replaced', (e) => e.readerStats().threadsEnded);
    engineCounter('strata_reader_threads_stuck_total', 'Reader threads terminated because they held one pin past twice pinMsMax', (e) => e.readerStats().threadsStuck);
    const ws = new client.Gauge({ name: 'strata_websocket_implementation', help: 'Which uWebSockets.js runs: native or the pure-JS fallback (1 for the one running)', labelNames: ['implementation'], registers: [r] });
    ws.set({ implementation: sources.websocket }, 1);
    ws.set({ implementation: sources.websocket === 'native' ? 'fallback' : 'native' }, 0);
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function readerPins(control: SharedArrayBuffer): number {
  const words = new Int32Array(control);
  const claimed = Math.min(Atomics.load(words, layout.controlSlotsClaimedWord), readerSlotsMax);
  let pinned = 0;
  for (let slot = 0; slot < claimed; slot++) {
    const state = Atomics.load(words, layout.slotWord(slot, layout.slotStateWord));
    if (state === layout.slotStatePinned || state === layout.slotStatePinnedLong) pinned++;
  }
  return pinned;
}
