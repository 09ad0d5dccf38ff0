/**
 * Watch streams: the change history kept in memory, the subscriptions, and the fan-out of each commit group's
 * changes to them (docs/protocol.md, "Watch"). Owner: the main thread.
 *
 * Invariants:
 * - History holds consecutive revisions (floor, revision]; every revision is whole (a RevisionChanges buffer and
 *   the keys of its records). It is bounded by bytes: the oldest revisions go first and the floor rises.
 * - A subscription has a position: every matching revision <= position was delivered (or the position is a
 *   future start it waits for). It receives exactly the matching revisions > position, in order, each once.
 * - A subscription is live (position == revision, the connection's buffer below watch.bufferBytes) or catching
 *   up from history. A live one gets the shared frame of its filter; a catching-up one is pumped from history
 *   only while its connection's buffer is below the limit. The writer and the other subscribers never wait
 *   for a slow one, and no memory grows for it: it falls behind into history and, once history has moved past
 *   its position, ends with COMPACTED. The sink closes a connection whose buffer passes watch.closeBytes (4408:
 *   answers it does not read, a huge revision) and then refuses frames.
 * - Frames are at most frameBytesMax: a revision larger than that goes out as fragments (partial).
 * - A subscription that falls behind (live to catch-up) or ends COMPACTED is reported to onSlowConsumer (log
 *   lines); the listener only observes, it never changes the hub's state.
 */
import { createHash } from 'node:crypto';
import * as flatbuffers from 'flatbuffers';
import {
  ErrorCode, RecordTable, RevisionChanges, RevisionChangesT, TaskConfig,
} from '../core/fbs/strata.js';
import {
  eventsFrameOverhead, eventsPerRevisionOverhead, setSubscription, watchEnded, watchEvents, watchProgress,
  watchStateEnd,
} from './protocol.js';

import type { ChangeKey, ChangeRevision } from '../workers/writer/changes.js';

export type { ChangeKey, ChangeRevision };

/** A connection as the hub sees it. */
export interface WatchSink {
  /** Bytes queued on the socket, not yet sent. */
  buffered(): number;
  /** Queues a frame; false if the connection is gone (or was just closed as a slow consumer: past closeBytes). */
  send(frame: Uint8Array): boolean;
  /** Runs `fn`, whose sends go out together (uWS cork: one write for many frames). */
  cork(fn: () => void): void;
  /** Who it is, for log lines: the connection's number and its token's name (never the token). */
  identity?(): { connection: number; token: string };
}

/** A subscription fell behind: moved from live to catch-up, or ended with COMPACTED. For log lines. */
export type SlowConsumerEvent = 'catchup' | 'compacted';
export type SlowConsumerListener = (event: SlowConsumerEvent, subscription: Subscription, buffered: number) => void;

export interface WatchLimits { historyBytes: number; bufferBytes: number; closeBytes: number; frameBytesMax: number }

export interface Filter {
  tables: number;           // bit per RecordTable; 0: every table
  role: string;             // '' : every role
  environment: string;
  jobName: string;
  taskIds: ReadonlySet<string> | null;
  signature: string;
}

export function compileFilter(tables: number[], role: string, environment: string, jobName: string,
  taskIds: string[]): Filter {
  let mask = 0;
  for (const t of tables) mask |= 1 << t;
  if (taskIds.length > 0) mask = 1 << RecordTable.TASK;
  const ids = taskIds.length === 0 ? null : new Set(taskIds);
  // Filters with the same signature share frames; task ids go in as a digest (a filter may name thousands).
  const idDigest = ids === null ? null : createHash('sha256').update([...ids].sort().join('\u0000')).digest('base64');
  const signature = JSON.stringify([mask, role, environment, jobName, idDigest]);
  return { tables: mask, role, environment, jobName, taskIds: ids, signature };
}

function jobMatches(f: Filter, role: string, environment: string, jobName: string): boolean {
  if (f.role === '') return true;
  return role === f.role && (f.environment === '' || environment === f.environment) &&
    (f.jobName === '' || jobName === f.jobName);
}

/** Every restriction that is set holds (tables, task ids, role / environment / job). */
export function keyMatches(f: Filter, k: ChangeKey): boolean {
  if (f.tables !== 0 && (f.tables & (1 << k.table)) === 0) return false;
  if (f.taskIds !== null && !(k.table === RecordTable.TASK && f.taskIds.has(k.taskId))) return false;
  if (f.role !== '' && k.role === '') return false; // hosts, maintenance, scheduler have no role
  return jobMatches(f, k.role, k.environment, k.jobName);
}

/** The revision's bytes as this filter sees them: whole, a filtered copy, or null when nothing matches. */
export function filterRevision(f: Filter, change: ChangeRevision): Uint8Array | null {
  const keys = change.keys;
  if (change.reset || keys.length === 0) return change.bytes; // a reset (or an empty revision): everyone sees it
  let matched = 0;
  for (const k of keys) if (keyMatches(f, k)) matched++;
  if (matched === keys.length) return change.bytes;
  if (matched === 0) return null;
  return encodeSubset(f, change);
}

function encodeSubset(f: Filter, change: ChangeRevision): Uint8Array {
  const all = RevisionChanges.getRootAsRevisionChanges(new flatbuffers.ByteBuffer(change.bytes)).unpack();
  const out = new RevisionChangesT(all.revision, all.timestampMs);
  const tasks = new Map<string, ChangeKey>();
  const jobs = new Set<string>();
  for (const k of change.keys) {
    if (k.table === RecordTable.TASK && keyMatches(f, k)) {
      tasks.set(k.taskId, k);
      jobs.add(`${k.role}\u0000${k.environment}\u0000${k.jobName}`);
    }
  }
  const table = (t: RecordTable): boolean => f.tables === 0 || (f.tables & (1 << t)) !== 0;
  const job = (role: string | null, env: string | null, name: string | null): boolean =>
    f.taskIds === null && jobMatches(f, role ?? '', env ?? '', name ?? '');
  out.tasks = all.tasks.filter((t) => tasks.has(String(t.assignedTask?.taskId ?? '')));
  out.tasksDeleted = all.tasksDeleted.filter((t) => table(RecordTable.TASK) &&
    (f.taskIds === null || f.taskIds.has(String(t.taskId ?? ''))) &&
    jobMatches(f, (t.job?.role as string) ?? '', (t.job?.environment as string) ?? '', (t.job?.name as string) ?? ''));
  if (table(RecordTable.CRON_JOB)) {
    out.cronJobs = all.cronJobs.filter((c) => job(c.key?.role as string, c.key?.environment as string, c.key?.name as string));
    out.cronJobsDeleted = all.cronJobsDeleted.filter((k) => job(k.role as string, k.environment as string, k.name as string));
  }
  if (table(RecordTable.JOB_UPDATE)) {
    out.jobUpdates = all.jobUpdates.filter((u) => {
      const k = u.update?.summary?.key?.job;
      return job(k?.role as string, k?.environment as string, k?.name as string);
    });
    out.jobUpdatesDeleted = all.jobUpdatesDeleted.filter((u) =>
      job(u.job?.role as string, u.job?.environment as string, u.job?.name as string));
  }
  if (table(RecordTable.QUOTA) && f.taskIds === null && f.environment === '') {
    out.quotas = all.quotas.filter((q) => f.role === '' || q.role === f.role);
    out.quotasDeleted = all.quotasDeleted.filter((r) => f.role === '' || r === f.role);
  }
  // A config goes with the records kept that name it: the matched tasks' jobs, and cron jobs and updates kept.
  for (const c of out.cronJobs) jobs.add(`${c.key?.role ?? ''}\u0000${c.key?.environment ?? ''}\u0000${c.key?.name ?? ''}`);
  for (const u of out.jobUpdates) {
    const k = u.update?.summary?.key?.job;
    jobs.add(`${k?.role ?? ''}\u0000${k?.environment ?? ''}\u0000${k?.name ?? ''}`);
  }
  out.configs = all.configs.filter((c) => {
    const config = TaskConfig.getRootAsTaskConfig(new flatbuffers.ByteBuffer(Uint8Array.from(c.bytes)));
    const key = config.job();
    return jobs.has(`${key?.role() ?? ''}\u0000${key?.environment() ?? ''}\u0000${key?.name() ?? ''}`);
  });
  if (f.role === '' && f.taskIds === null) {
    if (table(RecordTable.HOST_ATTRIBUTES)) out.hosts = all.hosts;
    if (table(RecordTable.MAINTENANCE_REQUEST)) {
      out.maintenance = all.maintenance;
      out.maintenanceDeleted = all.maintenanceDeleted;
    }
    if (table(RecordTable.SCHEDULER)) out.scheduler = all.scheduler;
  }
  const b = new flatbuffers.Builder(1024);
  b.finish(out.pack(b));
  return b.asUint8Array().slice();
}

/** Rough heap bytes of one kept revision beyond its buffer (the keys and the arrays' slots). */
function keptBytes(change: ChangeRevision): number {
  return change.bytes.byteLength + 48 + change.keys.length * 96;
}

export class History {
  private revisions: ChangeRevision[] = [];
  private head = 0;
  bytes = 0;
  /** Every revision > floor is kept (up to `revision`). */
  floor: number;
  revision: number;

  constructor(from: number) {
    this.floor = from;
    this.revision = from;
  }

  get count(): number {
    return this.revisions.length - this.head;
  }

  append(change: ChangeRevision, bytesMax: number): void {
    if (change.revision <= this.revision) return; // already kept (a replay after a reopen)
    if (change.revision !== this.revision + 1) {
      // A gap: what lies between was never seen (it cannot be served), so history starts over after it.
      this.clear(change.revision - 1);
    }
    this.revisions.push(change);
    this.revision = change.revision;
    this.bytes += keptBytes(change);
    while (this.bytes > bytesMax && this.count > 1) {
      const old = this.revisions[this.head]!;
      this.revisions[this.head++] = undefined as unknown as ChangeRevision;
      this.bytes -= keptBytes(old);
      this.floor = old.revision;
    }
    if (this.head > 1024 && this.head * 2 > this.revisions.length) {
      this.revisions = this.revisions.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets everything: history starts after `revision`. */
  clear(revision: number): void {
    this.revisions = [];
    this.head = 0;
    this.bytes = 0;
    this.floor = revision;
    this.revision = Math.max(this.revision, revision);
  }

  /** The kept revision right after `position` (position >= floor, < revision). */
  after(position: number): ChangeRevision {
    const change = this.revisions[this.head + (position - this.floor)]!;
    return change;
  }
}

type State = 'live' | 'catchup' | 'listing' | 'ended';

export class Subscription {
  position: number;
  state: State;
  lastSentMs: number;
  progressWanted = false;
  /** Called once when the hub ends it (COMPACTED, a refused send, endAll): the owner forgets it. */
  onEnded: (() => void) | null = null;
  /** A listing subscription's initial state, sent as its connection's buffer allows (then the end marker). */
  stateFrames: Uint8Array[] | null = null;
  private stateAt = 0;
  stateRevision = 0;

  constructor(readonly id: number, readonly sink: WatchSink, readonly filter: Filter, position: number,
    readonly progressMs: number, listing: boolean, now: number) {
    this.position = position;
    this.state = listing ? 'listing' : 'catchup';
    this.lastSentMs = now;
  }

  /** The next frame of the initial state, or null when all were taken. */
  nextStateFrame(): Uint8Array | null {
    const frames = this.stateFrames;
    if (frames === null || this.stateAt >= frames.length) return null;
    const frame = frames[this.stateAt]!;
    frames[this.stateAt++] = undefined as unknown as Uint8Array; // let it go once sent
    return frame;
  }
}

export interface WatchCounters {
  catchups: number;        // live subscriptions moved to catch-up (their connection's buffer was full)
  compacted: number;       // subscriptions ended because history moved past them
  closed: number;          // connections closed as slow consumers
  framesSent: number;
  bytesSent: number;
}

export class WatchHub {
  readonly history: History;
  private readonly subscriptions = new Set<Subscription>();
  private limits: WatchLimits;
  readonly counters: WatchCounters = { catchups: 0, compacted: 0, closed: 0, framesSent: 0, bytesSent: 0 };
  private readonly now: () => number;
  private readonly onSlowConsumer: SlowConsumerListener | null;

  constructor(from: number, limits: WatchLimits, now: () => number = Date.now, onSlowConsumer: SlowConsumerListener | null = null) {
    this.history = new History(from);
    this.limits = limits;
    this.now = now;
    this.onSlowConsumer = onSlowConsumer;
  }

  /**
   * New limits (a reload): historyBytes, bufferBytes and closeBytes apply from the next group and pump; a lower
   * historyBytes trims at the next append. frameBytesMax must stay (uWS fixed it at listen).
   */
  setLimits(limits: WatchLimits): void {
    if (limits.frameBytesMax !== this.limits.frameBytesMax) throw new Error('frameBytesMax cannot change while serving');
    this.limits = { ...limits };
  }

  get revision(): number {
    return this.history.revision;
  }

  /** The oldest revision whose changes are kept: an after_revision >= oldest - 1 can be served. */
  get oldest(): number {
    return this.history.floor + 1;
  }

  get size(): number {
    return this.subscriptions.size;
  }

  /** Subscriptions not live (catching up, listing), for metrics. */
  behind(): number {
    let n = 0;
    for (const s of this.subscriptions) if (s.state !== 'live') n++;
    return n;
  }

  /**
   * Adds a subscription delivering revisions > after (-1: from now). Returns it, or the oldest revision when
   * `after` is older than the history (COMPACTED). listing: its position is set later by listed().
   */
  subscribe(id: number, sink: WatchSink, filter: Filter, after: number, progressMs: number, listing: boolean): Subscription | number {
    const position = after < 0 ? this.revision : after;
    if (!listing && position < this.history.floor) return this.oldest;
    const subscription = new Subscription(id, sink, filter, position, progressMs, listing, this.now());
    this.subscriptions.add(subscription);
    if (!listing) this.pump(subscription);
    return subscription;
  }

  /**
   * A listing subscription's state was read at `revision` (`frames`: its WatchState frames): they are sent as the
   * connection's buffer allows, then the end marker, then it catches up from history after `revision`.
   */
  listed(subscription: Subscription, revision: number, frames: Uint8Array[]): void {
    if (subscription.state !== 'listing') return;
    subscription.stateFrames = frames;
    subscription.stateRevision = revision;
    this.pumpState(subscription);
  }

  private pumpState(s: Subscription): void {
    if (s.stateFrames === null) return; // still reading the state
    let ok = true;
    s.sink.cork(() => {
      while (s.sink.buffered() < this.limits.bufferBytes) {
        const frame = s.nextStateFrame();
        if (frame === null) {
          ok = this.send(s, watchStateEnd(s.id, s.stateRevision));
          if (!ok) return;
          s.stateFrames = null;
          s.position = s.stateRevision;
          s.state = 'catchup';
          return;
        }
        ok = this.send(s, frame);
        if (!ok) return;
      }
    });
    if (ok && s.state === 'catchup') this.pump(s);
  }

  unsubscribe(subscription: Subscription): void {
    subscription.state = 'ended';
    subscription.stateFrames = null;
    this.subscriptions.delete(subscription);
  }

  /** The hub ends it (not the owner): the owner is told through onEnded. */
  private drop(subscription: Subscription): void {
    if (subscription.state === 'ended') return;
    this.unsubscribe(subscription);
    subscription.onEnded?.();
  }

  /** Ends every subscription with `code` (UNAVAILABLE when the server stops); each gets a WatchEnded. */
  endAll(code: ErrorCode, message: string): void {
    for (const s of this.subscriptions) this.end(s, code, message, 0);
  }

  private end(s: Subscription, code: ErrorCode, message: string, errorRevision: number): void {
    const listing = s.state === 'listing';
    this.drop(s);
    s.sink.send(watchEnded(s.id, code, message, errorRevision, listing ? -1 : s.position));
  }

  /** A commit group's changes (in revision order): kept, then sent to every subscription that can take them. */
  publish(changes: ChangeRevision[]): void {
    const before = this.history.revision;
    const fresh: ChangeRevision[] = [];
    for (const change of changes) {
      if (change.revision <= this.history.revision) continue;
      this.history.append(change, this.limits.historyBytes);
      fresh.push(change);
    }
    if (fresh.length === 0) return;
    const contiguous = fresh[0]!.revision === before + 1;
    const frames = new Map<string, { frame: Uint8Array; subscriptionAt: number }[]>();
    for (const s of this.subscriptions) {
      if (s.state === 'live' && contiguous && s.position === before && s.sink.buffered() < this.limits.bufferBytes) {
        let shared = frames.get(s.filter.signature);
        if (shared === undefined) {
          shared = this.frames(s.filter, fresh);
          frames.set(s.filter.signature, shared);
        }
        let sent = false;
        s.sink.cork(() => { sent = this.sendShared(s, shared); });
        if (!sent) continue;
        s.position = this.history.revision;
      } else {
        if (s.state === 'live') {
          s.state = 'catchup';
          this.counters.catchups++;
          this.onSlowConsumer?.('catchup', s, s.sink.buffered());
        }
        this.pump(s);
      }
    }
  }

  /** Sends the shared frames of a batch to one subscriber (its id patched in). */
  private sendShared(s: Subscription, shared: { frame: Uint8Array; subscriptionAt: number }[]): boolean {
    for (const { frame, subscriptionAt } of shared) {
      setSubscription(frame, subscriptionAt, s.id);
      if (!this.send(s, frame)) return false;
    }
    if (shared.length > 0) s.lastSentMs = this.now();
    return true;
  }

  private send(s: Subscription, frame: Uint8Array): boolean {
    if (!s.sink.send(frame)) {
      this.drop(s); // gone, or closed as a slow consumer by the sink (past closeBytes)
      return false;
    }
    this.counters.framesSent++;
    this.counters.bytesSent += frame.byteLength;
    return true;
  }

  /** A sink closed its connection as a slow consumer (its buffer passed closeBytes). */
  countClosed(): void {
    this.counters.closed++;
  }

  /** The frames of `changes` as `filter` sees them: whole revisions up to frameBytesMax, big ones in fragments. */
  private frames(filter: Filter, changes: ChangeRevision[]): { frame: Uint8Array; subscriptionAt: number }[] {
    const out: { frame: Uint8Array; subscriptionAt: number }[] = [];
    const budget = this.limits.frameBytesMax - eventsFrameOverhead;
    let parts: Uint8Array[] = [];
    let bytes = 0;
    const flush = () => {
      if (parts.length > 0) out.push(watchEvents(parts, false));
      parts = [];
      bytes = 0;
    };
    for (const change of changes) {
      const part = filterRevision(filter, change);
      if (part === null) continue;
      const size = part.byteLength + eventsPerRevisionOverhead;
      if (size > budget) {
        flush();
        const piece = budget - eventsPerRevisionOverhead;
        for (let at = 0; at < part.byteLength; at += piece) {
          out.push(watchEvents([part.subarray(at, at + piece)], at + piece < part.byteLength));
        }
        continue;
      }
      if (bytes + size > budget) flush();
      parts.push(part);
      bytes += size;
    }
    flush();
    return out;
  }

  /**
   * Sends a catching-up subscription what history holds after its position, while its connection's buffer is
   * below the limit; live again once it reached the newest revision. Called on a new group, on drain, on tick.
   */
  pump(s: Subscription): void {
    if (s.state !== 'catchup') return;
    const history = this.history;
    // A batch adds at most half the soft limit (and one revision), so pumping alone stays far below closeBytes.
    const batchBytes = Math.min(this.limits.frameBytesMax, 1 << 20, this.limits.bufferBytes >>> 1);
    while (s.position < history.revision) {
      if (s.position < history.floor) {
        this.counters.compacted++;
        this.onSlowConsumer?.('compacted', s, s.sink.buffered());
        this.end(s, ErrorCode.COMPACTED, `history moved past revision ${s.position}: relist`, this.oldest);
        return;
      }
      if (s.sink.buffered() >= this.limits.bufferBytes) return; // the drain event calls again
      const batch: ChangeRevision[] = [];
      let bytes = 0;
      let position = s.position;
      while (position < history.revision && bytes < batchBytes) {
        const change = history.after(position);
        batch.push(change);
        bytes += change.bytes.byteLength;
        position = change.revision;
      }
      const frames = this.frames(s.filter, batch);
      let sent = false;
      s.sink.cork(() => { sent = this.sendShared(s, frames); });
      if (!sent) return;
      s.position = position;
    }
    if (s.position > history.revision) return; // a future start: it waits (tick and new groups pump again)
    s.state = 'live';
    if (s.progressWanted) this.progress(s);
  }

  /** Pumps the subscriptions of a connection whose socket drained: their state, then their catch-up. */
  drained(subscriptions: Iterable<Subscription>): void {
    for (const s of subscriptions) {
      if (s.state === 'listing') this.pumpState(s);
      else this.pump(s);
    }
  }

  /** A bookmark now if the subscription is live, else as soon as it caught up. */
  requestProgress(s: Subscription): void {
    if (s.state === 'live' && s.position <= this.revision) this.progress(s);
    else s.progressWanted = true;
  }

  private progress(s: Subscription): void {
    s.progressWanted = false;
    s.lastSentMs = this.now();
    this.send(s, watchProgress(s.id, s.position));
  }

  /** Periodic work: progress to idle live subscriptions, pumping of stalled catch-ups. */
  tick(): void {
    const now = this.now();
    for (const s of this.subscriptions) {
      if (s.state === 'listing') this.pumpState(s);
      if (s.state === 'catchup') this.pump(s);
      if (s.state === 'live' && now - s.lastSentMs >= s.progressMs && s.position <= this.revision &&
        s.sink.buffered() < this.limits.bufferBytes) this.progress(s);
    }
  }
}
