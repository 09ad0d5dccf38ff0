/**
 * A load generator thread of `npm run loadtest` (loadtest.ts): its share of the connections, of the rate and of
 * the subscribers, given in workerData. Owner: its worker thread.
 *
 * Protocol with the main thread: the worker connects (and reads the tasks it will transition) and posts 'ready';
 * each 'go' {startMs, endMs, rate} runs one step (a sweep runs several); every second of a step the worker posts a
 * 'tick' with the histograms of that second (encoded, then reset) and its lag; at the end of a step, once its
 * requests are answered (or a bound passed), a last 'tick' and 'done'. 'stop' closes everything. A 'bulk' job loads
 * the standard data set instead and posts 'done'.
 *
 * Invariants:
 * - Open loop: requests are due on the Schedule at the step's rate; a request that finds every connection with
 *   inFlightMax unanswered waits in a queue, and its latency still counts from its intended time.
 * - Closed loop: each connection has one request in flight; the next is sent when the previous is answered.
 * - Each connection's transitions change only the tasks it owns (task index % connection count), so the
 *   compare-and-set on the status it set last holds unless a commit failed or the daemon lost a commit.
 * - A connection that closes (a daemon restart) fails its unanswered requests (counted as errors) and reconnects;
 *   a subscriber resumes after the last revision it received and counts the revisions it missed (gaps).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as flatbuffers from 'flatbuffers';
import * as f from '../core/fbs/strata.js';
import { Prng } from '../core/prng.js';
import { nextMessage } from './worker-messages.js';
import { clockMs, CommitReader, Connection, errorText, QueryReader, RevisionAssembler } from './network-client.js';
import { jobSummaryQuery, jobTasksQuery, ResultReader, roleSummaryQuery } from './network-queries.js';
import { BatchTransitions, currentTasks } from './network-transitions.js';
import { OperationHistogram, Schedule, type EncodedOperation } from './open-loop.js';
import { bulkLoadTransactionBytes, Workload, workloadOptions } from './workload.js';

export const ringSize = 1024;            // request ids kept per connection: the daemon's default requestsInFlightMax
const ringMask = ringSize - 1;
export const drainMsMax = 10_000;        // after a step ends, answers are awaited this long, then counted as errors
export const reconnectMs = 100;          // between attempts to reconnect after a close
export const deliveriesPendingMsMax = 5_000; // a delivery whose commit this thread did not send is forgotten after this

/** The operations a mix may hold; 'summaries' sends role-summary and job-summaries in turn. */
export const mixOperations = ['transitions', 'read-job', 'summaries', 'quota'] as const;
export type MixOperation = typeof mixOperations[number];

export interface LoadJob {
  kind: 'load' | 'bulk';
  url: string;
  token: string;
  threadIndex: number;
  threads: number;
  tasks: number;              // the data set's size (standard shape)
  seed: number;
  connections: number;        // this thread's
  connectionsTotal: number;   // every thread's: transitions partition the tasks by it
  mix: [MixOperation, number][];
  closed: boolean;
  batch: number;              // transitions per transaction
  subscribers: number;        // this thread's
  inFlightMax: number;        // per connection (open loop)
  tasksPerTransaction: number; // bulk
}

export interface Go { type: 'go'; startMs: number; endMs: number; rate: number }
export interface Tick {
  type: 'tick'; second: number; ops: Record<string, EncodedOperation>; lagMsMax: number; queued: number;
}
export interface Done {
  type: 'done'; sent: number; lagMsMax: number; behindSeconds: number; subscribers: number; resumed: number;
  resumedWithoutGap: number; tasksLoaded: number; revision: number;
}

const port = parentPort!;
const job = workerData as LoadJob;


/** The histograms of the current second, by operation name. */
class Interval {
  ops = new Map<string, OperationHistogram>();

  of(op: string): OperationHistogram {
    let h = this.ops.get(op);
    if (h === undefined) {
      h = new OperationHistogram();
      this.ops.set(op, h);
    }
    return h;
  }

  take(): Record<string, EncodedOperation> {
    const out: Record<string, EncodedOperation> = {};
    for (const [op, h] of this.ops) out[op] = h.encode();
    this.ops = new Map();
    return out;
  }
}

const interval = new Interval();

interface Pending { op: string; intendedMs: number; sentMs: number; commit: number }

/** A request waiting for a free connection: its operation and intended time. */
interface Due { op: MixOperation; intendedMs: number }

// ---------------------------------------------------------------------------------------------------------------
// Requests

class Requests {
  readonly jobs: Uint8Array[] = [];
  readonly roles: Uint8Array;
  readonly jobSummaries: Uint8Array[] = [];
  readonly quotas: Uint8Array[] = [];
  private askedRoles = false;

  constructor(readonly workload: Workload, readonly prng: Prng) {
    for (let j = 0; j < workload.jobCount; j++) jobs(this.jobs, workload, j);
    this.roles = roleSummaryQuery();
    for (const role of workload.roleNames) {
      this.jobSummaries.push(jobSummaryQuery(role));
      this.quotas.push(quotaQuery(role));
    }
  }

  /** The bytes and operation name of a query for `op` (not transitions). */
  query(op: MixOperation): { name: string; bytes: Uint8Array } {
    const pick = <T>(list: T[]) => list[this.prng.int(list.length)]!;
    if (op === 'read-job') return { name: op, bytes: pick(this.jobs) };
    if (op === 'quota') return { name: op, bytes: pick(this.quotas) };
    this.askedRoles = !this.askedRoles;
    return this.askedRoles ? { name: 'role-summary', bytes: this.roles }
      : { name: 'job-summaries', bytes: pick(this.jobSummaries) };
  }
}

function jobs(list: Uint8Array[], workload: Workload, jobIndex: number): void {
  list.push(jobTasksQuery(workload.jobNamesOf(jobIndex), f.ConfigDetail.FULL));
}

function quotaQuery(role: string): Uint8Array {
  const b = new flatbuffers.Builder(128);
  b.finish(f.QueryRequest.createQueryRequest(b, f.Query.QuotaQuery, f.QuotaQuery.createQuotaQuery(b, b.createString(role))));
  return b.asUint8Array().slice();
}

// ---------------------------------------------------------------------------------------------------------------
// Connections

/** One connection of this thread: its requests in flight by id, its transitions, reconnection after a close. */
class Lane {
  connection: Connection | null = null;
  inFlight = 0;
  private readonly pending: (Pending | undefined)[] = new Array(ringSize);
  private readonly commits = new CommitReader();
  private readonly queries = new QueryReader();
  private readonly results = new ResultReader();
  transitions: BatchTransitions | null = null;

  constructor(readonly generator: Generator, readonly index: number) {}

  async connect(): Promise<void> {
    const connection = await Connection.open(job.url, `loadtest-${job.threadIndex}-${this.index}`, job.token);
    connection.onFrame = (envelope, atMs) => this.answered(envelope, atMs);
    connection.ws.on('close', () => this.closed(connection));
    this.connection = connection;
  }

  get open(): boolean {
    return this.connection !== null;
  }

  send(op: MixOperation, intendedMs: number): void {
    const connection = this.connection!;
    let name: string = op;
    let id: number;
    if (op === 'transitions') {
      const bytes = this.transitions!.bytes();
      id = connection.commit(bytes);
    } else {
      const query = this.generator.requests.query(op);
      name = query.name;
      id = connection.query(query.bytes);
    }
    const sentMs = clockMs();
    this.pending[id & ringMask] = { op: name, intendedMs, sentMs, commit: op === 'transitions' ? 1 : 0 };
    this.inFlight++;
    this.generator.sent++;
  }

  private answered(envelope: f.Envelope, atMs: number): void {
    const id = envelope.id();
    const request = this.pending[id & ringMask];
    if (request === undefined) return; // a push or a late answer after a reconnect
    this.pending[id & ringMask] = undefined;
    this.inFlight--;
    const h = interval.of(request.op);
    if (this.check(request, envelope)) {
      h.record(request.intendedMs, request.sentMs, atMs);
    } else {
      h.errors++;
    }
    this.generator.answered(this);
  }

  /** True when the answer is the expected one, read to its last field. */
  private check(request: Pending, envelope: f.Envelope): boolean {
    if (request.commit === 1) {
      const revision = this.commits.revision(envelope);
      if (revision < 0) {
        this.generator.error(`${request.op}: ${this.commits.error}`);
        return false;
      }
      this.generator.committed(revision, request);
      return true;
    }
    const response = this.queries.read(envelope);
    if (response === null) {
      this.generator.error(`${request.op}: ${this.queries.error}`);
      return false;
    }
    try {
      if (request.op === 'read-job') return this.results.readTasks(this.results.tasks(response)) > 0;
      if (request.op === 'role-summary') return this.results.readRoleSummaries(response) > 0;
      if (request.op === 'job-summaries') return this.results.readJobSummaries(response) > 0;
      if (request.op === 'quota') return response.resultType() === f.Result.QuotaResult;
    } catch (error) {
      this.generator.error(`${request.op}: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    }
    return true;
  }

  private closed(connection: Connection): void {
    if (this.connection !== connection) return;
    this.connection = null;
    for (let i = 0; i < ringSize; i++) {
      const request = this.pending[i];
      if (request === undefined) continue;
      interval.of(request.op).errors++;
      this.pending[i] = undefined;
    }
    this.inFlight = 0;
    if (!this.generator.stopping) this.generator.reconnect(this);
  }

  close(): void {
    const connection = this.connection;
    this.connection = null;
    connection?.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Subscribers

class Subscriber {
  connection: Connection | null = null;
  last = -1;           // the newest revision received
  gaps = 0;            // revisions skipped
  disorder = 0;
  ended = '';
  resumed = 0;         // reconnections that were accepted
  private readonly assembler = new RevisionAssembler();
  private readonly watchEvents = new f.WatchEvents();

  constructor(readonly generator: Generator, readonly index: number) {}

  /** Connects and subscribes after `last` (from the current revision the first time). */
  async connect(): Promise<void> {
    const connection = await Connection.open(job.url, `loadtest-watch-${job.threadIndex}-${this.index}`, job.token);
    const first = this.last < 0;
    await new Promise<void>((resolve, reject) => {
      connection.onFrame = (envelope, atMs) => {
        const type = envelope.bodyType();
        if (type === f.Body.WatchEvents) return this.received(envelope.body(this.watchEvents) as f.WatchEvents, atMs);
        if (type === f.Body.WatchResponse) {
          const response = envelope.body(new f.WatchResponse()) as f.WatchResponse;
          if (first) this.last = Number(response.revision());
          else this.resumed++;
          return resolve();
        }
        if (type === f.Body.WatchEnded) {
          const ended = envelope.body(new f.WatchEnded()) as f.WatchEnded;
          // UNAVAILABLE: the daemon is stopping (a restart): the reconnect resumes after `last`, that is no end.
          if (ended.error()?.code() === f.ErrorCode.UNAVAILABLE) return undefined;
          this.ended = `${f.ErrorCode[ended.error()?.code() ?? 0]} after ${ended.lastRevision()}`;
          return undefined;
        }
        if (type === f.Body.WatchProgress) return undefined;
        reject(new Error(`subscriber: ${errorText(envelope)}`));
      };
      connection.ws.on('close', () => reject(new Error('closed before subscribing')));
      connection.watch(this.last);
    });
    connection.ws.on('close', () => this.closed(connection));
    this.connection = connection;
  }

  private received(events: f.WatchEvents, atMs: number): void {
    this.assembler.received(events, (changes) => {
      const revision = Number(changes.revision());
      if (revision <= this.last) {
        this.disorder++;
        return;
      }
      if (this.last >= 0) this.gaps += revision - this.last - 1;
      this.last = revision;
      this.generator.delivered(revision, atMs);
    });
  }

  private closed(connection: Connection): void {
    if (this.connection !== connection) return;
    this.connection = null;
    this.assembler.reset();
    if (!this.generator.stopping) this.generator.reconnect(this);
  }

  close(): void {
    const connection = this.connection;
    this.connection = null;
    connection?.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The generator

class Generator {
  readonly lanes: Lane[] = [];
  readonly subscribers: Subscriber[] = [];
  readonly requests: Requests;
  stopping = false;
  sent = 0;
  private readonly prng: Prng;
  private readonly weights: number[] = [];
  private weightTotal = 0;
  private readonly queue: Due[] = [];
  private queueHead = 0;
  private next = 0;            // round-robin lane
  private go: Go | null = null;
  private schedule: Schedule | null = null;
  private lagMsSecond = 0;
  lagMsMax = 0;
  behindSeconds = 0;
  private errorsReported = 0;
  /** Commits answered, by revision: their intended and sent times (deliveries are matched to them). */
  private readonly commitTimes = new Map<number, [number, number]>();
  /** Deliveries that came before their commit's answer: revision → arrival times. */
  private readonly early = new Map<number, number[]>();
  private drained: (() => void) | null = null;

  constructor(readonly workload: Workload) {
    this.prng = new Prng(job.seed, job.threadIndex, 0x6c6f6164);
    this.requests = new Requests(workload, new Prng(job.seed, job.threadIndex, 0x71756572));
    for (const [, weight] of job.mix) {
      this.weightTotal += weight;
      this.weights.push(this.weightTotal);
    }
  }

  async connect(): Promise<void> {
    for (let c = 0; c < job.connections; c++) {
      const lane = new Lane(this, c);
      await lane.connect();
      this.lanes.push(lane);
    }
    if (job.mix.some(([op]) => op === 'transitions') && this.lanes.length > 0) {
      const reader = await Connection.open(job.url, `loadtest-tasks-${job.threadIndex}`, job.token);
      const { ids, statuses } = await currentTasks(reader);
      reader.close();
      this.lanes.forEach((lane, c) => {
        const global = job.threadIndex + c * job.threads;   // connection index over every thread
        const mine: string[] = [];
        const mineStatuses: number[] = [];
        for (let i = global; i < ids.length; i += job.connectionsTotal) {
          mine.push(ids[i]!);
          mineStatuses.push(statuses[i]!);
        }
        if (mine.length < job.batch) throw new Error(`--batch ${job.batch}: a connection owns only ${mine.length} tasks`);
        lane.transitions = new BatchTransitions(mine, Uint8Array.from(mineStatuses), job.batch);
      });
    }
    for (let s = 0; s < job.subscribers; s++) {
      const subscriber = new Subscriber(this, s);
      await subscriber.connect();
      this.subscribers.push(subscriber);
    }
  }

  error(message: string): void {
    if (this.errorsReported++ < 5) port.postMessage({ type: 'error', message });
  }

  private pick(): MixOperation {
    if (job.mix.length === 1) return job.mix[0]![0];
    const x = this.prng.float() * this.weightTotal;
    for (let i = 0; i < this.weights.length; i++) if (x < this.weights[i]!) return job.mix[i]![0];
    return job.mix[job.mix.length - 1]![0];
  }

  /** Runs one step; resolves when its requests are answered (or drainMsMax passed). */
  async run(go: Go): Promise<void> {
    this.go = go;
    this.schedule = job.closed ? null : new Schedule(go.rate, go.startMs);
    this.queue.length = 0;
    this.queueHead = 0;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, go.startMs - clockMs())));
    let second = 0;
    const ticker = setInterval(() => this.tick(second++), 1000);
    if (job.closed) {
      for (const lane of this.lanes) this.fill(lane);
    } else {
      this.pump();
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, go.endMs - clockMs())));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => resolve(), drainMsMax);
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
      this.answered(null);
    });
    this.drained = null;
    clearInterval(ticker);
    this.tick(second);
    this.go = null;
  }

  private tick(second: number): void {
    const now = clockMs();
    this.lagMsSecond = Math.max(this.lagMsSecond, this.lagMs(now));
    if (this.lagMsSecond > 100) this.behindSeconds++;
    this.lagMsMax = Math.max(this.lagMsMax, this.lagMsSecond);
    for (const [revision, times] of this.early) if (now - times[0]! > deliveriesPendingMsMax) this.early.delete(revision);
    const tick: Tick = { type: 'tick', second, ops: interval.take(), lagMsMax: this.lagMsSecond,
      queued: this.queue.length - this.queueHead };
    this.lagMsSecond = 0;
    port.postMessage(tick);
  }

  /** The generator's own lateness: how far behind its schedule it hands out requests (not the server's queue). */
  private lagMs(now: number): number {
    return this.schedule === null || this.go === null ? 0 : this.schedule.lagMs(Math.min(now, this.go.endMs));
  }

  /** Open loop: queues every request due, sends what the connections take, sleeps until the next is due. */
  private pump = (): void => {
    const go = this.go;
    if (go === null || this.schedule === null) return;
    const now = clockMs();
    this.lagMsSecond = Math.max(this.lagMsSecond, this.lagMs(now));
    for (const intendedMs of this.schedule.due(Math.min(now, go.endMs - 0.001))) {
      this.queue.push({ op: this.pick(), intendedMs });
    }
    this.dispatch();
    if (now >= go.endMs) return;
    setTimeout(this.pump, Math.max(0, Math.min(this.schedule.nextDueMs(), go.endMs) - clockMs()));
  };

  private dispatch(): void {
    while (this.queueHead < this.queue.length) {
      const lane = this.freeLane();
      if (lane === null) break;
      const due = this.queue[this.queueHead++]!;
      lane.send(due.op, due.intendedMs);
    }
    if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  private freeLane(): Lane | null {
    for (let i = 0; i < this.lanes.length; i++) {
      const lane = this.lanes[(this.next + i) % this.lanes.length]!;
      if (lane.open && lane.inFlight < job.inFlightMax) {
        this.next = (this.next + i + 1) % this.lanes.length;
        return lane;
      }
    }
    return null;
  }

  /** Closed loop: the lane's next request, now. */
  private fill(lane: Lane): void {
    if (this.go === null || clockMs() >= this.go.endMs || !lane.open || lane.inFlight > 0) return;
    const now = clockMs();
    lane.send(this.pick(), now);
  }

  /** After an answer (or a close): the next request, and the end of the step once all are answered. */
  answered(lane: Lane | null): void {
    if (lane !== null) {
      if (job.closed) this.fill(lane);
      else this.dispatch();
    }
    if (this.drained !== null && this.lanes.every((l) => l.inFlight === 0)) this.drained();
  }

  committed(revision: number, request: Pending): void {
    if (this.subscribers.length === 0) return;
    const early = this.early.get(revision);
    if (early !== undefined) {
      this.early.delete(revision);
      for (const atMs of early) interval.of('watch').record(request.intendedMs, request.sentMs, atMs);
    }
    this.commitTimes.set(revision, [request.intendedMs, request.sentMs]);
    if (this.commitTimes.size > 100_000) {
      for (const key of this.commitTimes.keys()) {
        this.commitTimes.delete(key);
        if (this.commitTimes.size <= 50_000) break;
      }
    }
  }

  delivered(revision: number, atMs: number): void {
    const times = this.commitTimes.get(revision);
    if (times !== undefined) {
      interval.of('watch').record(times[0], times[1], atMs);
      return;
    }
    const early = this.early.get(revision);
    if (early === undefined) this.early.set(revision, [atMs]);
    else early.push(atMs);
  }

  reconnect(target: Lane | Subscriber): void {
    setTimeout(() => {
      if (this.stopping) return;
      target.connect().then(() => {
        if (target instanceof Lane) {
          if (job.closed) this.fill(target);
          else this.dispatch();
        }
      }, () => this.reconnect(target));
    }, reconnectMs);
  }

  done(): Done {
    let resumed = 0;
    let resumedWithoutGap = 0;
    for (const s of this.subscribers) {
      if (s.resumed === 0) continue;
      resumed++;
      if (s.gaps === 0 && s.disorder === 0 && s.ended === '' && s.connection !== null) resumedWithoutGap++;
    }
    return { type: 'done', sent: this.sent, lagMsMax: this.lagMsMax, behindSeconds: this.behindSeconds,
      subscribers: this.subscribers.length, resumed, resumedWithoutGap, tasksLoaded: 0, revision: 0 };
  }

  close(): void {
    this.stopping = true;
    for (const lane of this.lanes) lane.close();
    for (const s of this.subscribers) s.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// bulk

async function bulk(): Promise<void> {
  const connection = await Connection.open(job.url, 'loadtest-bulk', job.token);
  port.postMessage({ type: 'ready' });
  const go = await nextMessage<Go>(port, ['go']);
  const reader = new CommitReader();
  const transactions = bulkLoadTransactionBytes(workloadOptions(job.tasks, job.seed), job.tasksPerTransaction);
  const sentMs = new Float64Array(ringSize);
  const inFlightMax = Math.max(1, job.inFlightMax);
  let inFlight = 0;
  let committed = 0;
  let revision = 0;
  let second = 0;
  const ticker = setInterval(() => {
    port.postMessage({ type: 'tick', second: second++, ops: interval.take(), lagMsMax: 0, queued: 0 } satisfies Tick);
  }, 1000);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, go.startMs - clockMs())));
  await new Promise<void>((resolve, reject) => {
    const send = (): boolean => {
      const next = transactions.next();
      if (next.done === true) return false;
      const at = clockMs();
      sentMs[connection.commit(next.value) & ringMask] = at;
      inFlight++;
      return true;
    };
    connection.onFrame = (envelope, atMs) => {
      inFlight--;
      revision = reader.revision(envelope);
      if (revision < 0) return reject(new Error(`bulk load: commit ${committed} failed: ${reader.error}`));
      const at = sentMs[envelope.id() & ringMask]!;
      interval.of('bulk-load').record(at, at, atMs);
      committed++;
      if (!send() && inFlight === 0) resolve();
    };
    for (let i = 0; i < inFlightMax; i++) send();
  });
  clearInterval(ticker);
  port.postMessage({ type: 'tick', second, ops: interval.take(), lagMsMax: 0, queued: 0 } satisfies Tick);
  connection.close();
  port.postMessage({ type: 'done', sent: committed, lagMsMax: 0, behindSeconds: 0, subscribers: 0, resumed: 0,
    resumedWithoutGap: 0, tasksLoaded: committed * job.tasksPerTransaction, revision } satisfies Done);
}

async function load(): Promise<void> {
  const generator = new Generator(Workload.of(workloadOptions(job.tasks, job.seed)));
  await generator.connect();
  port.postMessage({ type: 'ready' });
  for (;;) {
    const message = await nextMessage<Go | { type: 'stop' }>(port, ['go', 'stop']);
    if (message.type === 'stop') break;
    await generator.run(message);
    port.postMessage(generator.done());
  }
  generator.close();
  port.postMessage({ type: 'stopped' });
}

(job.kind === 'bulk' ? bulk() : load()).catch((error: unknown) => {
  // Rethrown outside the promise: the worker's 'error' event carries it to the main thread.
  setImmediate(() => { throw error; });
});
