/**
 * A load generator thread of the network benchmark (bench-network.ts): one role per thread, given in workerData.
 * Owner: its worker thread. Roles:
 * - bulk: the workload's bulk-load transactions on one connection, `inFlight` at a time.
 * - transition: one connection per owned client index, each pipelining `depth` lifecycle steps of its own
 *   TransitionGenerator (disjoint tasks; the steps of one connection commit in arrival order).
 * - read: `connections` connections, each pipelining `depth` TaskQuery of a random job's 50 tasks (FULL configs),
 *   every answer read to the last field.
 * - summary: one connection, one query at a time, alternating RoleSummaryQuery and a random role's JobSummaryQuery.
 * - subscribers: `count` connections with one subscription each (every table, from the current revision); records
 *   when each revision arrived.
 * - committer: open-loop commits at `rate` per second of `batch` TransitionTask ops on distinct tasks (enforce off,
 *   a compare-and-set on the status it read and has set since); records when each was sent and its revision.
 * Protocol with the main thread: the worker connects and posts 'ready'; the main thread posts 'go' with absolute
 * times (clockMs) for the end of the warm-up and of the measurement; the worker posts 'result' once its work has
 * drained. Subscribers wait for a 'finish' (the last revision committed) instead of an end time.
 * Invariants: any failed commit or malformed answer throws (the worker's 'error' ends the benchmark); only what
 * completes inside [warmupEndMs, endMs) is counted; each thread reports its own CPU time over that window.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as f from '../core/fbs/strata.js';
import { Prng } from '../core/prng.js';
import { threadCpuMs } from './daemon-process.js';
import { nextMessage } from './worker-messages.js';
import { clockMs, CommitReader, Connection, QueryReader, RevisionAssembler } from './network-client.js';
import { jobSummaryQuery, jobTasksQuery, ResultReader, roleSummaryQuery } from './network-queries.js';
import { BatchTransitions, currentTasks } from './network-transitions.js';
import { bulkLoadTransactionBytes, TransitionGenerator, Workload, workloadOptions } from './workload.js';

export const ringSize = 1024;           // request ids kept per connection: the daemon's default requestsInFlightMax
const ringMask = ringSize - 1;
export const committerInFlightMax = 512; // an open-loop committer waits beyond this (below the daemon's 1024)

interface Common { url: string; tasks: number; seed: number }
export type Job = Common & (
  | { role: 'bulk'; tasksPerTransaction: number; inFlight: number }
  | { role: 'transition'; clientIndexes: number[]; clientCount: number; depth: number }
  | { role: 'read'; stream: number; connections: number; depth: number }
  | { role: 'summary' }
  | { role: 'subscribers'; count: number }
  | { role: 'committer'; rate: number; batch: number });

export interface Go { type: 'go'; startMs: number; warmupEndMs: number; endMs: number; depth: number }
export interface Stop { type: 'stop' }
export interface Finish { type: 'finish'; lastRevision: number; deadlineMs: number }

const port = parentPort!;
const job = workerData as Job;

/** A growable array of doubles (latencies, times), transferred to the main thread at the end. */
export class Samples {
  values: Float64Array<ArrayBuffer> = new Float64Array(4096);
  length = 0;

  push(value: number): void {
    if (this.length === this.values.length) this.grow(this.length * 2);
    this.values[this.length++] = value;
  }

  set(index: number, value: number): void {
    if (index >= this.values.length) this.grow(Math.max(index + 1, this.values.length * 2));
    this.values[index] = value;
    if (index >= this.length) this.length = index + 1;
  }

  take(): Float64Array<ArrayBuffer> {
    return this.values.slice(0, this.length);
  }

  private grow(size: number): void {
    const values = new Float64Array(size);
    values.set(this.values.subarray(0, this.length));
    this.values = values;
  }
}

/** This thread's CPU time over the measurement window: sampled by timers at its start and end. */
class CpuWindow {
  private from = 0;
  private to = 0;

  constructor(go: Go) {
    setTimeout(() => { this.from = threadCpuMs(); }, Math.max(0, go.warmupEndMs - clockMs()));
    setTimeout(() => { this.to = threadCpuMs(); }, Math.max(0, go.endMs - clockMs()));
  }

  get ms(): number {
    return this.to - this.from;
  }
}


/** What every measuring role counts: completions inside the window, and their latencies. */
class Tally {
  count = 0;
  readonly latencies = new Samples();
  private open = 0;
  private done: () => void = () => undefined;
  readonly drained: Promise<void>;

  constructor(readonly go: Go, streams: number) {
    this.open = streams;
    this.drained = new Promise((resolve) => { this.done = resolve; });
  }

  record(sentMs: number, atMs: number): void {
    if (atMs < this.go.warmupEndMs || atMs >= this.go.endMs) return;
    this.count++;
    this.latencies.push(atMs - sentMs);
  }

  streamDone(): void {
    if (--this.open === 0) this.done();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// bulk

async function bulk(j: Extract<Job, { role: 'bulk' }>): Promise<void> {
  const connection = await Connection.open(j.url, 'bench-bulk');
  port.postMessage({ type: 'ready' });
  await nextMessage<Go>(port, 'go');
  const reader = new CommitReader();
  const transactions = bulkLoadTransactionBytes(workloadOptions(j.tasks, 1), j.tasksPerTransaction);
  const t0 = clockMs();
  let inFlight = 0;
  let committed = 0;
  let revision = 0;
  await new Promise<void>((resolve, reject) => {
    const send = (): boolean => {
      const next = transactions.next();
      if (next.done === true) return false;
      connection.commit(next.value);
      inFlight++;
      return true;
    };
    connection.onFrame = (envelope) => {
      inFlight--;
      revision = reader.revision(envelope);
      if (revision < 0) return reject(new Error(`bulk load: commit ${committed} failed: ${reader.error}`));
      committed++;
      if (!send() && inFlight === 0) resolve();
    };
    for (let i = 0; i < j.inFlight; i++) send();
  });
  const ms = clockMs() - t0;
  connection.close();
  port.postMessage({ type: 'result', ms, transactions: committed, revision });
}

// ---------------------------------------------------------------------------------------------------------------
// transition

class TransitionStream {
  private readonly sentMs = new Float64Array(ringSize);
  private readonly reader = new CommitReader();
  private inFlight = 0;

  constructor(private readonly connection: Connection, private readonly generator: TransitionGenerator,
    private readonly tally: Tally) {
    connection.onFrame = (envelope, atMs) => this.answered(envelope, atMs);
  }

  start(depth: number): void {
    for (let i = 0; i < depth; i++) this.send();
  }

  private send(): void {
    const bytes = this.generator.nextBytes();
    const sentMs = clockMs();
    this.sentMs[this.connection.commit(bytes) & ringMask] = sentMs;
    this.inFlight++;
  }

  private answered(envelope: f.Envelope, atMs: number): void {
    const id = envelope.id();
    if (this.reader.revision(envelope) < 0) {
      throw new Error(`net_transition: a commit failed (task ${this.generator.taskId}): ${this.reader.error}`);
    }
    this.inFlight--;
    this.tally.record(this.sentMs[id & ringMask]!, atMs);
    if (atMs < this.tally.go.endMs) this.send();
    else if (this.inFlight === 0) this.tally.streamDone();
  }
}

/** Runs one measurement per 'go' (its depth), the generators going on from where the last one stopped. */
async function transition(j: Extract<Job, { role: 'transition' }>): Promise<void> {
  const o = workloadOptions(j.tasks, 1);
  const pairs: { connection: Connection; generator: TransitionGenerator }[] = [];
  for (const clientIndex of j.clientIndexes) {
    const generator = new TransitionGenerator(o, { clientIndex, clientCount: j.clientCount, seed: j.seed });
    pairs.push({ connection: await Connection.open(j.url, `bench-transition-${clientIndex}`), generator });
  }
  port.postMessage({ type: 'ready' });
  for (;;) {
    const message = await nextMessage<Go | Stop>(port, ['go', 'stop']);
    if (message.type === 'stop') break;
    const go = message;
    const cpu = new CpuWindow(go);
    const tally = new Tally(go, pairs.length);
    for (const { connection, generator } of pairs) new TransitionStream(connection, generator, tally).start(go.depth);
    await tally.drained;
    const latencies = tally.latencies.take();
    port.postMessage({ type: 'result', count: tally.count, latencies, cpuMs: cpu.ms }, [latencies.buffer]);
  }
  for (const { connection } of pairs) connection.close();
}

// ---------------------------------------------------------------------------------------------------------------
// read

class ReadStream {
  private readonly sentMs = new Float64Array(ringSize);
  private readonly queries = new QueryReader();
  private inFlight = 0;

  constructor(private readonly connection: Connection, private readonly requests: Uint8Array[],
    private readonly prng: Prng, private readonly results: ResultReader, private readonly instances: number,
    private readonly tally: Tally) {
    connection.onFrame = (envelope, atMs) => this.answered(envelope, atMs);
  }

  start(depth: number): void {
    for (let i = 0; i < depth; i++) this.send();
  }

  private send(): void {
    const request = this.requests[this.prng.int(this.requests.length)]!;
    const sentMs = clockMs();
    this.sentMs[this.connection.query(request) & ringMask] = sentMs;
    this.inFlight++;
  }

  private answered(envelope: f.Envelope, atMs: number): void {
    const id = envelope.id();
    const response = this.queries.read(envelope);
    if (response === null) throw new Error(`net_read_job: a query failed: ${this.queries.error}`);
    const result = this.results.tasks(response);
    const count = this.results.readTasks(result);
    if (count !== this.instances) throw new Error(`net_read_job: ${count} tasks in a job of ${this.instances}`);
    if (result.configsLength() < 1) throw new Error('net_read_job: no config in a FULL result');
    this.inFlight--;
    // Latency ends once the answer is read, as a client sees it.
    this.tally.record(this.sentMs[id & ringMask]!, atMs);
    if (atMs < this.tally.go.endMs) this.send();
    else if (this.inFlight === 0) this.tally.streamDone();
  }
}

async function read(j: Extract<Job, { role: 'read' }>): Promise<void> {
  const workload = Workload.of(workloadOptions(j.tasks, 1));
  const requests: Uint8Array[] = [];
  for (let jobIndex = 0; jobIndex < workload.jobCount; jobIndex++) {
    requests.push(jobTasksQuery(workload.jobNamesOf(jobIndex), f.ConfigDetail.FULL));
  }
  const connections: Connection[] = [];
  for (let c = 0; c < j.connections; c++) connections.push(await Connection.open(j.url, `bench-read-${j.stream}-${c}`));
  port.postMessage({ type: 'ready' });
  const go = await nextMessage<Go>(port, 'go');
  const cpu = new CpuWindow(go);
  const tally = new Tally(go, connections.length);
  const results = new ResultReader();
  connections.forEach((connection, c) => {
    const prng = new Prng(j.seed, j.stream * 1000 + c, 0x6a6f6273);
    new ReadStream(connection, requests, prng, results, workload.options.instances, tally).start(j.depth);
  });
  await tally.drained;
  for (const connection of connections) connection.close();
  const latencies = tally.latencies.take();
  port.postMessage({ type: 'result', count: tally.count, latencies, cpuMs: cpu.ms, characters: results.characters },
    [latencies.buffer]);
}

// ---------------------------------------------------------------------------------------------------------------
// summary

async function summary(j: Extract<Job, { role: 'summary' }>): Promise<void> {
  const workload = Workload.of(workloadOptions(j.tasks, 1));
  const roleCount = workload.options.roles;
  const jobsPerRole = workload.options.envs * workload.options.jobsPerEnv;
  const roles = roleSummaryQuery();
  const jobs = workload.roleNames.map((role) => jobSummaryQuery(role));
  const connection = await Connection.open(j.url, 'bench-summary');
  port.postMessage({ type: 'ready' });
  const go = await nextMessage<Go>(port, 'go');
  const cpu = new CpuWindow(go);
  const prng = new Prng(j.seed, 3, 0x73756d6d);
  const queries = new QueryReader();
  const results = new ResultReader();
  const roleLatencies = new Samples();
  const jobLatencies = new Samples();
  let sentMs = 0;
  let askedRoles = true;
  await new Promise<void>((resolve) => {
    const send = () => {
      askedRoles = !askedRoles;
      const request = askedRoles ? roles : jobs[prng.int(jobs.length)]!;
      sentMs = clockMs();
      connection.query(request);
    };
    connection.onFrame = (envelope, atMs) => {
      const response = queries.read(envelope);
      if (response === null) throw new Error(`net_summary: a query failed: ${queries.error}`);
      if (askedRoles) {
        const count = results.readRoleSummaries(response);
        if (count !== roleCount) throw new Error(`net_summary: ${count} roles, not ${roleCount}`);
      } else {
        const count = results.readJobSummaries(response);
        if (count !== jobsPerRole) throw new Error(`net_summary: ${count} jobs in a role, not ${jobsPerRole}`);
      }
      if (atMs >= go.warmupEndMs && atMs < go.endMs) (askedRoles ? roleLatencies : jobLatencies).push(atMs - sentMs);
      if (atMs < go.endMs) send();
      else resolve();
    };
    send();
  });
  connection.close();
  const role = roleLatencies.take();
  const job = jobLatencies.take();
  port.postMessage({ type: 'result', role, job, cpuMs: cpu.ms }, [role.buffer, job.buffer]);
}

// ---------------------------------------------------------------------------------------------------------------
// subscribers

class Subscriber {
  subscription = 0;
  base = -1;              // the revision the subscription started after
  last = -1;              // the newest revision received
  readonly deliveries = new Samples();  // arrival time of revision base + 1 + i
  events = 0;             // tasks changed or deleted, over every revision received
  gaps = 0;               // revisions skipped
  disorder = 0;           // revisions received again or out of order
  ended = '';
  private readonly assembler = new RevisionAssembler();
  private readonly watchEvents = new f.WatchEvents();
  readonly subscribed: Promise<void>;

  constructor(readonly connection: Connection) {
    this.subscribed = new Promise((resolve, reject) => {
      connection.onFrame = (envelope, atMs) => {
        const type = envelope.bodyType();
        if (type === f.Body.WatchEvents) return this.received(envelope.body(this.watchEvents) as f.WatchEvents, atMs);
        if (type === f.Body.WatchResponse) {
          const response = envelope.body(new f.WatchResponse()) as f.WatchResponse;
          this.subscription = response.subscription();
          this.base = Number(response.revision());
          this.last = this.base;
          return resolve();
        }
        if (type === f.Body.WatchEnded) {
          const ended = envelope.body(new f.WatchEnded()) as f.WatchEnded;
          this.ended = `${f.ErrorCode[ended.error()?.code() ?? 0]} after ${ended.lastRevision()}`;
          return undefined;
        }
        if (type === f.Body.WatchProgress) return undefined;
        reject(new Error(`subscriber: unexpected ${f.Body[type]}`));
      };
    });
    connection.watch(-1);
  }

  private received(events: f.WatchEvents, atMs: number): void {
    this.assembler.received(events, (changes) => {
      const revision = Number(changes.revision());
      this.events += changes.tasksLength() + changes.tasksDeletedLength();
      if (revision <= this.last) {
        this.disorder++;
        return;
      }
      this.gaps += revision - this.last - 1;
      this.last = revision;
      this.deliveries.set(revision - this.base - 1, atMs);
    });
  }
}

async function subscribers(j: Extract<Job, { role: 'subscribers' }>): Promise<void> {
  const all: Subscriber[] = [];
  for (let s = 0; s < j.count; s++) {
    const subscriber = new Subscriber(await Connection.open(j.url, `bench-subscriber-${s}`));
    await subscriber.subscribed;
    all.push(subscriber);
  }
  port.postMessage({ type: 'ready' });
  const go = await nextMessage<Go>(port, 'go');
  const cpu = new CpuWindow(go);
  const finish = await nextMessage<Finish>(port, 'finish');
  while (clockMs() < finish.deadlineMs && all.some((s) => s.last < finish.lastRevision && s.ended === '')) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const results = all.map((s) => ({
    base: s.base, last: s.last, deliveries: s.deliveries.take(), events: s.events, gaps: s.gaps,
    disorder: s.disorder, ended: s.ended, closeCode: s.connection.closeCode, bytes: s.connection.bytesReceived,
  }));
  for (const s of all) s.connection.close();
  port.postMessage({ type: 'result', subscribers: results, cpuMs: cpu.ms }, results.map((r) => r.deliveries.buffer));
}

// ---------------------------------------------------------------------------------------------------------------
// committer

async function committer(j: Extract<Job, { role: 'committer' }>): Promise<void> {
  const connection = await Connection.open(j.url, 'bench-committer');
  const workload = Workload.of(workloadOptions(j.tasks, 1));
  const { ids, statuses } = await currentTasks(connection);
  if (ids.length !== workload.taskCount) throw new Error(`committer: ${ids.length} tasks stored, not ${workload.taskCount}`);
  if (j.batch > ids.length) throw new Error('committer: a batch larger than the task count');
  const transactions = new BatchTransitions(ids, statuses, j.batch);
  port.postMessage({ type: 'ready' });
  const go = await nextMessage<Go>(port, 'go');
  const cpu = new CpuWindow(go);
  const sentMs = new Samples();
  const ackMs = new Samples();
  const revisions = new Samples();
  const commitOfId = new Int32Array(ringSize);
  const reader = new CommitReader();
  let sent = 0;
  let inFlight = 0;
  let lateMsMax = 0;
  let heldBack = 0;       // ticks that found committerInFlightMax commits unanswered
  await new Promise<void>((resolve, reject) => {
    let stopped = false;
    connection.onFrame = (envelope, atMs) => {
      const commit = commitOfId[envelope.id() & ringMask]!;
      const revision = reader.revision(envelope);
      if (revision < 0) return reject(new Error(`committer: commit ${commit} failed: ${reader.error}`));
      revisions.set(commit, revision);
      ackMs.set(commit, atMs);
      inFlight--;
      if (stopped && inFlight === 0) resolve();
    };
    const tick = () => {
      const now = clockMs();
      if (now >= go.endMs) {
        stopped = true;
        if (inFlight === 0) resolve();
        return;
      }
      const due = Math.floor(((now - go.startMs) * j.rate) / 1000) + 1;
      while (sent < due && inFlight < committerInFlightMax) {
        lateMsMax = Math.max(lateMsMax, now - (go.startMs + (sent * 1000) / j.rate));
        const bytes = transactions.bytes();
        sentMs.set(sent, clockMs());
        commitOfId[connection.commit(bytes) & ringMask] = sent;
        sent++;
        inFlight++;
      }
      if (sent < due) heldBack++;
      setTimeout(tick, Math.max(0, go.startMs + (sent * 1000) / j.rate - clockMs()));
    };
    tick();
  });
  connection.close();
  const sends = sentMs.take();
  const acks = ackMs.take();
  const revisionList = revisions.take();
  port.postMessage({ type: 'result', sentMs: sends, ackMs: acks, revisions: revisionList, lateMsMax, heldBack,
    cpuMs: cpu.ms }, [sends.buffer, acks.buffer, revisionList.buffer]);
}

async function main(): Promise<void> {
  switch (job.role) {
    case 'bulk': return bulk(job);
    case 'transition': return transition(job);
    case 'read': return read(job);
    case 'summary': return summary(job);
    case 'subscribers': return subscribers(job);
    case 'committer': return committer(job);
  }
}

main().catch((error: unknown) => {
  // Rethrown outside the promise: the worker's 'error' event carries it to the main thread.
  setImmediate(() => { throw error; });
});
