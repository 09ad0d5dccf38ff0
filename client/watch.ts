/**
 * One watch: a subscription that survives reconnects, as an AsyncIterable of typed messages. Owner: the client's
 * thread (the client routes every push of the subscription here, synchronously, in arrival order).
 *
 * Invariants:
 * - `resume` is the last revision handed to the queue as changes, a progress bookmark or the end of the initial
 *   state: every matching revision <= resume is in the queue or was delivered. A resubscription asks for
 *   after_revision = resume, and any revision <= resume that arrives again is dropped: the consumer sees each
 *   revision once, in increasing order, none missing.
 * - A revision reaches the queue whole (its fragments concatenated) and decoded, or not at all.
 * - The queue is bounded (messages and bytes). When a consumer does not pull, the watch cancels its
 *   subscription and resubscribes after `resume` once the queue has drained to half: the socket is never paused
 *   (other requests keep flowing) and memory stays bounded. During the initial state of a list watch there is
 *   no resume point, so an overflow there ends the watch with RESOURCE_EXHAUSTED.
 * - A reset (a committed backup replaced the state; or an interrupted initial list is restarted) is delivered as
 *   {type:'reset'}; a list watch then receives a new initial state.
 */
import {
  ErrorCode, type QueryResponseT, type RecordTable, type RevisionChangesT, type WatchEndedT, WatchFilterT,
  WatchRequestT, type WatchResponseT,
} from '../core/fbs/strata.js';
import { CompactedError, errorOf, ProtocolError, StrataError } from './errors.js';
import { revisionOf } from './keys.js';
import { fragmentBytesMax, watchQueueBytesMaxDefault, watchQueueMessagesMaxDefault } from './limits.js';
import { decodeQueryResponse, decodeRevisionChanges } from './wire.js';

export type WatchMessage =
  | { type: 'changes'; revision: bigint; changes: RevisionChangesT }
  | { type: 'state'; response: QueryResponseT }
  | { type: 'stateEnd'; revision: bigint }
  | { type: 'progress'; revision: bigint }
  /** Drop what you know: the state was replaced at `revision` (-1n: an interrupted initial list restarts). */
  | { type: 'reset'; revision: bigint };

export interface WatchFilterFields {
  tables?: RecordTable[];
  role?: string;
  environment?: string;
  jobName?: string;
  taskIds?: string[];
}

export interface WatchOptions {
  filter?: WatchFilterFields;
  /** Deliver revisions after this one (exclusive); -1 (the default): from the current revision on. */
  afterRevision?: bigint | number;
  /** First the matching state at one revision (state..., stateEnd), then the changes after it. */
  list?: boolean;
  /** Progress bookmarks at this interval while idle (0: the server's default). */
  progressMs?: number;
  queueMessagesMax?: number;
  queueBytesMax?: number;
}

/** What a watch needs of its client. */
export interface WatchHost {
  /** Sends a WatchRequest built from watch.request() when it goes out; answers through subscribed/subscribeFailed. */
  subscribe(watch: Watch): void;
  /** Forgets the subscription and sends WatchCancel for it (if its connection is still up). */
  cancel(subscription: number): void;
  requestProgress(subscription: number): Promise<void>;
  /** The delay before retry number `attempt` (1, 2, ...) of a refused subscription. */
  retryDelayMs(attempt: number): number;
  /** The watch is over; the client forgets it. */
  released(watch: Watch): void;
}

interface Waiter {
  resolve(result: IteratorResult<WatchMessage>): void;
  reject(error: unknown): void;
}

export class Watch implements AsyncIterableIterator<WatchMessage> {
  private readonly filter: WatchFilterT;
  private readonly list: boolean;
  private readonly progressMs: number;
  private readonly queueMessagesMax: number;
  private readonly queueBytesMax: number;

  private phase: 'list' | 'changes';
  private resume: bigint;
  private subscription = 0;
  private subscribing = false;
  private stateDelivered = false;
  private paused = false;
  private closed = false;
  private end: { error: Error | null } | null = null;
  private retryAttempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;

  private readonly queue: { message: WatchMessage; bytes: number }[] = [];
  private queueHead = 0;
  private queueBytes = 0;
  private readonly waiters: Waiter[] = [];
  private fragments: Uint8Array[] = [];
  private fragmentBytes = 0;

  constructor(private readonly host: WatchHost, options: WatchOptions = {}) {
    const f = options.filter ?? {};
    this.filter = new WatchFilterT(f.tables ?? [], f.role ?? null, f.environment ?? null, f.jobName ?? null,
      f.taskIds ?? []);
    this.list = options.list ?? false;
    this.progressMs = options.progressMs ?? 0;
    this.queueMessagesMax = Math.max(2, options.queueMessagesMax ?? watchQueueMessagesMaxDefault);
    this.queueBytesMax = Math.max(1, options.queueBytesMax ?? watchQueueBytesMaxDefault);
    this.phase = this.list ? 'list' : 'changes';
    this.resume = this.list ? -1n : revisionOf(options.afterRevision ?? -1n);
  }

  /** Starts the first subscription (the client calls it once). */
  start(): void {
    this.subscribe();
  }

  /** The resume point: every matching revision up to it was delivered or is queued; null before a list's end. */
  get revision(): bigint | null {
    return this.phase === 'changes' ? this.resume : null;
  }

  get active(): boolean {
    return !this.closed && this.end === null;
  }

  /** The WatchRequest as it goes out now (built when sent, so a resend carries the current resume point). */
  request(): WatchRequestT {
    const listing = this.phase === 'list';
    return new WatchRequestT(this.filter, listing ? -1n : this.resume, listing, this.progressMs);
  }

  private subscribe(): void {
    if (!this.active || this.subscribing || this.subscription !== 0 || this.paused) return;
    this.subscribing = true;
    this.host.subscribe(this);
  }

  /** The server accepted the subscription. False: the watch no longer wants it (the client cancels it). */
  subscribed(response: WatchResponseT): boolean {
    this.subscribing = false;
    if (!this.active || this.paused) return false;
    this.subscription = response.subscription;
    this.retryAttempt = 0;
    if (this.phase === 'changes' && this.resume < 0n) this.resume = response.revision;
    return true;
  }

  subscribeFailed(error: Error): void {
    this.subscribing = false;
    if (!this.active) return;
    const code = error instanceof StrataError ? error.code : ErrorCode.INTERNAL;
    if (code === ErrorCode.RESOURCE_EXHAUSTED || code === ErrorCode.UNAVAILABLE) {
      this.retryLater();
      return;
    }
    this.finish(error);
  }

  private retryLater(): void {
    if (this.retryTimer !== null || !this.active) return;
    this.retryAttempt++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.subscribe();
    }, this.host.retryDelayMs(this.retryAttempt));
  }

  /** The connection dropped: its subscription is gone; subscribe again (the request waits for the reconnect). */
  disconnected(): void {
    this.subscription = 0;
    this.dropFragments();
    if (!this.active) return;
    if (this.phase === 'list') this.restartList();
    this.subscribe();
  }

  /** The client is closed or failed: no more messages; the consumer gets `error` (or done) after the queue. */
  fail(error: Error | null): void {
    this.subscription = 0;
    this.subscribing = false;
    this.finish(error);
  }

  // --- pushes of the subscription --------------------------------------------------------------------------

  events(partial: boolean, revisions: Uint8Array[]): void {
    if (this.phase === 'list') throw new ProtocolError('WatchEvents before WatchStateEnd');
    if (partial) {
      if (revisions.length !== 1) throw new ProtocolError(`a partial WatchEvents holds ${revisions.length} pieces`);
      this.fragmentBytes += revisions[0]!.length;
      if (this.fragmentBytes > fragmentBytesMax) throw new ProtocolError(`a revision of more than ${fragmentBytesMax} bytes`);
      this.fragments.push(revisions[0]!);
      return;
    }
    let whole = revisions;
    if (this.fragments.length > 0) {
      if (revisions.length === 0) throw new ProtocolError('the last piece of a fragmented revision is missing');
      whole = [concat([...this.fragments, revisions[0]!]), ...revisions.slice(1)];
      this.dropFragments();
    }
    for (const bytes of whole) {
      const changes = decodeRevisionChanges(bytes);
      const revision = changes.revision;
      if (revision <= this.resume) continue; // sent again after a resume: delivered already
      if (changes.reset) {
        this.push({ type: 'reset', revision }, 0);
        this.resume = revision;
        if (this.list) {
          this.relist();
          return;
        }
        continue;
      }
      if (this.full(bytes.length)) {
        this.pause();
        return;
      }
      this.push({ type: 'changes', revision, changes }, bytes.length);
      this.resume = revision;
    }
  }

  /** A WatchState: a whole query answer, or a piece of one (partial; joined like a revision's fragments). */
  state(partial: boolean, piece: Uint8Array): void {
    if (this.phase !== 'list') throw new ProtocolError('WatchState outside the initial state');
    this.fragmentBytes += piece.length;
    if (this.fragmentBytes > fragmentBytesMax) throw new ProtocolError(`a state answer of more than ${fragmentBytesMax} bytes`);
    this.fragments.push(piece);
    if (partial) return;
    const whole = this.fragments.length === 1 ? piece : concat(this.fragments);
    this.dropFragments();
    this.stateAnswer(decodeQueryResponse(whole), whole.length);
  }

  private stateAnswer(response: QueryResponseT, bytes: number): void {
    if (this.full(bytes)) {
      this.cancelSubscription();
      this.finish(new StrataError(ErrorCode.RESOURCE_EXHAUSTED,
        `the consumer did not keep up with the initial state (${this.queueMessagesMax} messages, ${this.queueBytesMax} bytes queued): list again`));
      return;
    }
    this.stateDelivered = true;
    this.push({ type: 'state', response }, bytes);
  }

  stateEnd(revision: bigint): void {
    if (this.phase !== 'list') throw new ProtocolError('WatchStateEnd outside the initial state');
    this.phase = 'changes';
    this.stateDelivered = false;
    this.resume = revision;
    this.push({ type: 'stateEnd', revision }, 0);
  }

  progress(revision: bigint): void {
    if (this.phase === 'list' || revision < this.resume || this.full(0)) return;
    this.resume = revision;
    this.push({ type: 'progress', revision }, 0);
  }

  /** The server ended the subscription (the client forgot its id already). */
  ended(message: WatchEndedT): void {
    this.subscription = 0;
    this.dropFragments();
    if (!this.active) return;
    const code = message.error === null ? ErrorCode.OK : message.error.code;
    switch (code) {
      case ErrorCode.OK:
        this.finish(null);
        return;
      case ErrorCode.COMPACTED:
        this.finish(new CompactedError(`the watch fell behind the kept history: relist (oldest revision ${message.error!.revision})`,
          message.error!.revision));
        return;
      case ErrorCode.RESOURCE_EXHAUSTED: // a slow consumer: resume after the last revision delivered
        if (this.phase === 'list') this.restartList();
        this.subscribe();
        return;
      case ErrorCode.UNAVAILABLE: // the server is stopping: resubscribe after a while (or after the reconnect)
        if (this.phase === 'list') this.restartList();
        this.retryLater();
        return;
      default:
        this.finish(errorOf(message.error!));
    }
  }

  // --- queue -----------------------------------------------------------------------------------------------

  private full(bytes: number): boolean {
    const count = this.queue.length - this.queueHead;
    return count >= this.queueMessagesMax || (count > 0 && this.queueBytes + bytes > this.queueBytesMax);
  }

  private push(message: WatchMessage, bytes: number): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve({ value: message, done: false });
      return;
    }
    this.queue.push({ message, bytes });
    this.queueBytes += bytes;
  }

  /** The consumer is behind: give the subscription up and take it again, after `resume`, once drained. */
  private pause(): void {
    this.paused = true;
    this.cancelSubscription();
  }

  private cancelSubscription(): void {
    if (this.subscription !== 0) this.host.cancel(this.subscription);
    this.subscription = 0;
    this.dropFragments();
  }

  /** A list watch starts over: the consumer drops what it has (reset), a new initial state follows. */
  private restartList(): void {
    if (this.stateDelivered) this.push({ type: 'reset', revision: -1n }, 0);
    this.stateDelivered = false;
  }

  private relist(): void {
    this.cancelSubscription();
    this.phase = 'list';
    this.stateDelivered = false;
    this.subscribe();
  }

  private dropFragments(): void {
    this.fragments = [];
    this.fragmentBytes = 0;
  }

  private finish(error: Error | null): void {
    if (this.end !== null || this.closed) return;
    this.end = { error };
    this.clearRetry();
    this.cancelSubscription();
    this.host.released(this); // holds no subscription any more: it no longer counts against the limit
    this.settleWaiters();
  }

  private settleWaiters(): void {
    if (this.queue.length > this.queueHead) return;
    const end = this.end;
    if (end === null && !this.closed) return;
    if (this.waiters.length === 0) return; // the next next() sees the end
    const waiters = this.waiters.splice(0);
    if (end !== null && end.error !== null && !this.closed && waiters.length > 0) {
      const error = end.error;
      this.close();
      waiters[0]!.reject(error);
      for (const w of waiters.slice(1)) w.resolve({ value: undefined, done: true });
      return;
    }
    this.close();
    for (const w of waiters) w.resolve({ value: undefined, done: true });
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearRetry();
    this.cancelSubscription();
    this.queue.length = 0;
    this.queueHead = 0;
    this.queueBytes = 0;
    this.host.released(this);
  }

  // --- the consumer's side ---------------------------------------------------------------------------------

  next(): Promise<IteratorResult<WatchMessage>> {
    if (this.queueHead < this.queue.length) {
      const item = this.queue[this.queueHead]!;
      this.queue[this.queueHead] = undefined as never;
      this.queueHead++;
      this.queueBytes -= item.bytes;
      if (this.queueHead === this.queue.length) {
        this.queue.length = 0;
        this.queueHead = 0;
      } else if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      this.drained();
      return Promise.resolve({ value: item.message, done: false });
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    if (this.end !== null) {
      const error = this.end.error;
      this.close();
      return error === null ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(error);
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private drained(): void {
    const count = this.queue.length - this.queueHead;
    if (this.paused && count <= this.queueMessagesMax / 2 && this.queueBytes <= this.queueBytesMax / 2) {
      this.paused = false;
      this.subscribe();
    }
  }

  /** Cancels the watch (WatchCancel); queued messages are dropped. `break` in for-await calls it. */
  return(): Promise<IteratorResult<WatchMessage>> {
    this.close();
    this.settleWaiters();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<WatchMessage>> {
    void error;
    return this.return();
  }

  cancel(): Promise<void> {
    return this.return().then(() => undefined);
  }

  /** Asks the server for a progress bookmark now (resolves once the server acknowledged it; no-op unsubscribed). */
  requestProgress(): Promise<void> {
    if (this.subscription === 0) return Promise.resolve();
    return this.host.requestProgress(this.subscription);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

function concat(pieces: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of pieces) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
