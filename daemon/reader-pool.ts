/**
 * The reader pool, supervised: piscina threads (workers/reader/main.ts) that answer query batches, plus what piscina
 * does not do for us: free the control-block slot of a thread that died, end a thread that is stuck, and give the
 * callers of a dead thread's task a typed error. Owner: the main thread (daemon/engine.ts).
 *
 * Invariants:
 * - A reader's slot (workers/reader/pin.ts) is freed by the thread itself when it exits through process.exit (its
 *   'exit' handler), and otherwise here, once its Worker emitted 'exit' (terminated, or ended before its handler
 *   ran): never while the thread may still run, and only if the slot is still that thread's (a compare-and-swap on
 *   the owner word; thread ids are never reused in a process). Its pin goes with it: the writer does not wait for
 *   pinMsMax to reclaim memory a dead reader held.
 * - A task whose thread dies (a crash, or terminated because it was stuck) rejects with EngineError UNAVAILABLE:
 *   its queries get no answer at all, never a partial one. piscina replaces the thread (piscina 5.3: on the Worker's
 *   'exit' it rejects the thread's tasks and starts a new thread if the old one had started) and later tasks run
 *   on the new one.
 * - A pin older than pinMsMax is expired here too (the compare-and-swap the writer does when it publishes), so that
 *   the limit holds while no commit comes: a live reader checks its pin at least every 1024 records and answers
 *   DEADLINE_EXCEEDED once it is expired. A thread still holding that same pin pinMsMax after it was seen expired
 *   (so at least readerStuckPinFactor x pinMsMax after it was taken) is blocked (a hang, an endless loop) and is
 *   terminated; that bounds how long a query can wait on a reader, and a healthy long query is never killed.
 * - A pool that has fewer threads than asked and will not start more (piscina gives up on threads that fail while
 *   starting) is broken: onBroken is called once, and every queued and later task fails UNAVAILABLE.
 */
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import * as layout from '../core/layout.js';
import { readerSlotsMax } from '../core/limits.js';
import { pinClockMs } from '../workers/reader/pin.js';
import { EngineError } from './engine-error.js';

/** A pin held this many times pinMsMax means a blocked thread: a live one gives up once its pin expires. */
export const readerStuckPinFactor = 2;
/** How often the watchdog looks at the pins (at most; a small pinMsMax in tests looks more often). */
export const readerWatchMsMax = 1_000;

export interface ReaderPoolOptions {
  filename: string;
  threads: number;
  workerData: unknown;
  control: SharedArrayBuffer;
  pinMsMax: number;
  onEvent?: ((event: Record<string, unknown>) => void) | undefined;
  onBroken: (error: EngineError) => void;
}

export interface ReaderPoolStats {
  /** Reader threads that ended while the pool ran (crashed, or terminated because stuck). */
  threadsEnded: number;
  /** Of those, the ones the watchdog terminated. */
  threadsStuck: number;
  /** Slots freed here because the dead thread had not freed its own. */
  slotsReclaimed: number;
}

export class ReaderPool {
  readonly threads: number;
  private readonly piscina: Piscina;
  private readonly control: Int32Array;
  private readonly controlF64: Float64Array;
  private readonly pinMsMax: number;
  private readonly onEvent: ((event: Record<string, unknown>) => void) | undefined;
  private readonly onBroken: (error: EngineError) => void;
  private readonly timer: NodeJS.Timeout;
  private readonly terminating = new Set<number>();
  /** Per slot: the pin (its time) seen expired, and when it was first seen so. */
  private readonly expiredSeen = new Map<number, { pinTime: number; seenMs: number }>();
  private destroying = false;
  private broken = false;
  private readonly figures: ReaderPoolStats = { threadsEnded: 0, threadsStuck: 0, slotsReclaimed: 0 };

  constructor(options: ReaderPoolOptions) {
    this.threads = options.threads;
    this.control = new Int32Array(options.control);
    this.controlF64 = new Float64Array(options.control);
    this.pinMsMax = options.pinMsMax;
    this.onEvent = options.onEvent;
    this.onBroken = options.onBroken;
    this.piscina = new Piscina({
      filename: options.filename, minThreads: options.threads, maxThreads: options.threads,
      idleTimeout: Number.POSITIVE_INFINITY, workerData: options.workerData, concurrentTasksPerWorker: 1,
    });
    // Emitted once a thread is ready (the initial ones: in a microtask after the constructor), while it runs.
    this.piscina.on('workerCreate', (created: { id: number }) => this.watchExit(created.id));
    // A thread that failed outside a task (an uncaught error): piscina replaced it if it had started.
    this.piscina.on('error', (error: unknown) => {
      this.onEvent?.({ msg: 'reader thread error', level: 'error', error: String((error as Error)?.message ?? error) });
      this.checkSize();
    });
    const watchMs = Math.max(10, Math.min(readerWatchMsMax, Math.floor(this.pinMsMax / 4)));
    this.timer = setInterval(() => this.watch(), watchMs);
    this.timer.unref();
  }

  /** Runs one task (a batch of QueryRequest bytes); resolves with the reader's packed answer. */
  run(requests: Uint8Array[]): Promise<Uint8Array> {
    if (this.broken) return Promise.reject(this.taskError(new Error('broken')));
    return this.piscina.run({ requests }).catch((error: unknown) => {
      throw this.taskError(error);
    });
  }

  stats(): ReaderPoolStats {
    return { ...this.figures };
  }

  async destroy(): Promise<void> {
    this.destroying = true;
    clearInterval(this.timer);
    await this.piscina.destroy();
  }

  /** piscina 5.3's rejections: a thread's exit ('worker exited with code: N'), its termination, or the task's throw. */
  private taskError(error: unknown): EngineError {
    const message = String((error as Error)?.message ?? error);
    if (this.destroying) return new EngineError('the engine is closing', 'UNAVAILABLE');
    if (this.broken) return new EngineError('the reader pool failed: no thread can start', 'UNAVAILABLE');
    if (/^worker exited with code|^Terminating worker thread/.test(message)) {
      return new EngineError(`the reader thread answering this query ended (${message}): no answer was given; retry`,
        'UNAVAILABLE');
    }
    return new EngineError(`the reader failed: ${message}`, 'INTERNAL');
  }

  private watchExit(threadId: number): void {
    const worker = this.piscina.threads.find((w) => w.threadId === threadId);
    if (worker === undefined) return; // already gone: its own exit handler freed its slot, or reclaim below did
    worker.once('exit', (code: number) => this.exited(threadId, code));
  }

  /** The Worker has emitted 'exit': the thread runs no more JavaScript, its slot can be freed. */
  private exited(threadId: number, code: number): void {
    this.terminating.delete(threadId);
    const slot = this.slotOf(threadId);
    let pinned = false;
    if (slot >= 0) {
      const stateWord = layout.slotWord(slot, layout.slotStateWord);
      pinned = Atomics.exchange(this.control, stateWord, layout.slotStateIdle) !== layout.slotStateIdle;
      this.expiredSeen.delete(slot);
      if (Atomics.compareExchange(this.control, layout.slotWord(slot, layout.slotOwnerWord), threadId + 1, 0) ===
        threadId + 1) this.figures.slotsReclaimed++;
    }
    if (this.destroying) return;
    this.figures.threadsEnded++;
    this.onEvent?.({ msg: 'reader thread ended', level: 'warn', threadId, code, slotReclaimed: slot >= 0, pinned });
    this.checkSize();
  }

  /** Ends threads stuck under a pin; notices a pool that stopped replacing its threads. */
  private watch(): void {
    if (this.destroying) return;
    const now = pinClockMs();
    for (const worker of this.piscina.threads) this.watchThread(worker, now);
    this.checkSize();
  }

  private watchThread(worker: Worker, now: number): void {
    const threadId = worker.threadId;
    if (threadId < 0 || this.terminating.has(threadId)) return;
    const slot = this.slotOf(threadId);
    if (slot < 0) return;
    const stateWord = layout.slotWord(slot, layout.slotStateWord);
    let state = Atomics.load(this.control, stateWord);
    if (state !== layout.slotStatePinned && state !== layout.slotStateExpired) {
      this.expiredSeen.delete(slot);
      return;
    }
    const pinTime = this.controlF64[layout.controlPinTimeF64 + slot]!;
    const pinnedMs = now - pinTime;
    if (pinnedMs <= this.pinMsMax) return;
    if (state === layout.slotStatePinned &&
      Atomics.compareExchange(this.control, stateWord, layout.slotStatePinned, layout.slotStateExpired) === layout.slotStatePinned) {
      state = layout.slotStateExpired; // the reader stops at its next check (DEADLINE_EXCEEDED)
    }
    if (state !== layout.slotStateExpired) return; // released meanwhile
    const seen = this.expiredSeen.get(slot);
    if (seen === undefined || seen.pinTime !== pinTime) {
      this.expiredSeen.set(slot, { pinTime, seenMs: now });
      return;
    }
    if (now - seen.seenMs < this.pinMsMax || pinnedMs <= this.pinMsMax * readerStuckPinFactor) return;
    this.expiredSeen.delete(slot);
    this.terminating.add(threadId);
    this.figures.threadsStuck++;
    this.onEvent?.({ msg: 'reader thread stuck: terminated', level: 'error', threadId, pinnedMs: Math.round(pinnedMs) });
    void worker.terminate();
  }

  private checkSize(): void {
    if (this.destroying || this.broken || this.piscina.threads.length >= this.threads) return;
    this.broken = true;
    const error = new EngineError(`the reader pool has ${this.piscina.threads.length} of ${this.threads} threads ` +
      'and starts no more (a thread failed while starting)', 'INTERNAL');
    this.onEvent?.({ msg: 'reader pool broken', level: 'error', error: error.message });
    this.onBroken(error);
    void this.piscina.destroy(); // queued tasks reject (UNAVAILABLE) instead of waiting for a thread for ever
  }

  private slotOf(threadId: number): number {
    const claimed = Math.min(Atomics.load(this.control, layout.controlSlotsClaimedWord), readerSlotsMax);
    for (let slot = 0; slot < claimed; slot++) {
      if (Atomics.load(this.control, layout.slotWord(slot, layout.slotOwnerWord)) === threadId + 1) return slot;
    }
    return -1;
  }
}
