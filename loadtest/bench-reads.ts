/**
 * Engine phases of the engine benchmark: the real Engine (writer worker + piscina reader pool) in this process.
 * Owner: the benchmark process's main thread.
 * Invariants: every kind of query is checked once on every request it will send (no error, the expected shape)
 * before it is timed; timed loops check one response in `checkEvery`; commits made under reads are all checked.
 */
import { decodeQueryResponse, encode, make } from '../core/codec.js';
import {
  ConfigDetail, JobKeyT, JobSummaryQueryT, JobSummaryResultT, Query, QueryRequestT, RoleSummaryQueryT,
  RoleSummaryResultT, SchedulerQueryT, TaskQueryT, TasksResultT,
} from '../core/fbs/strata.js';
import { Prng } from '../core/prng.js';
import type { Engine } from '../daemon/engine.js';
import {
  collect, Latency, log, nowMs, perSecond, PinHold, queryError, rssBytes, type Row, Rows, sleep, transactionError,
} from './bench-support.js';
import { bulkTasksPerTransaction } from './bench-writer.js';
import { Transitions } from './bench-transitions.js';
import { bulkLoadTransactionBytes, Workload, type WorkloadOptions } from './workload.js';

export const bulkCommitsInFlight = 4;   // generation (main thread) overlaps apply (writer thread)
export const checkEvery = 64;
export const requestVariety = 4096;      // distinct requests cycled through in throughput runs
export const latencySecondsMax = 5;      // per latency figure (after the warm-up)
export const latencySamplesMin = 50;     // even when slow: a p99 of fewer samples would be the maximum

export interface ReadCounts {
  seconds: number;          // each throughput run
  inFlight: number;         // outstanding engine.query calls
  latencySamples: number;   // one-at-a-time calls per latency figure
  commitRate: number;       // transitions/s committed under read_job
}

function request(queryType: Query, query: TaskQueryT | JobSummaryQueryT | RoleSummaryQueryT | SchedulerQueryT):
  Uint8Array {
  return encode(make(QueryRequestT, { queryType, query }));
}

/** Bulk load through engine.commit, a few transactions in flight; returns the row. */
export async function bulkLoadEngine(engine: Engine, o: WorkloadOptions, tasks: number, rows: Rows): Promise<Row> {
  const inFlight = new Set<Promise<void>>();
  let generateMs = 0;
  let index = 0;
  const t0 = nowMs();
  const source = bulkLoadTransactionBytes(o, bulkTasksPerTransaction);
  for (;;) {
    const g0 = nowMs();
    const next = source.next();
    generateMs += nowMs() - g0;
    if (next.done === true) break;
    const transactionIndex = index++;
    const done: Promise<void> = engine.commit(next.value).then((result) => {
      const error = transactionError(result);
      if (error !== null) throw new Error(`bulk load (engine): transaction ${transactionIndex} failed: ${error}`);
      inFlight.delete(done);
    });
    inFlight.add(done);
    if (inFlight.size >= bulkCommitsInFlight) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const ms = nowMs() - t0;
  const stats = engine.stats();
  if (stats.taskCount !== tasks) throw new Error(`bulk load (engine): ${stats.taskCount} tasks stored, not ${tasks}`);
  return rows.add({
    name: 'bulk_load', tasks, value: perSecond(tasks, ms), unit: 'tasks/s', via: 'engine',
    tasksPerTransaction: bulkTasksPerTransaction, commitsInFlight: bulkCommitsInFlight,
    wallMs: Math.round(ms), generateMs: Math.round(generateMs),
  });
}

/** RSS and arena before/after: the caller loads in between. */
export async function memoryBefore(engine: Engine): Promise<{ rss: number; arena: number }> {
  await collect();
  return { rss: rssBytes(), arena: engine.stats().arenaBytesUsed };
}

export async function bytesPerTask(engine: Engine, before: { rss: number; arena: number }, tasks: number,
  configs: number, rows: Rows | null): Promise<void> {
  await collect();
  const rss = (rssBytes() - before.rss) / tasks;
  const arena = (engine.stats().arenaBytesUsed - before.arena) / tasks;
  const line = { name: 'bytes_per_task', tasks, value: Math.round(rss), unit: 'bytes', rss: Math.round(rss),
    arena: Math.round(arena), distinctConfigs: configs, rssAfterMiB: Math.round(rssBytes() / 1048576) };
  if (rows !== null) rows.add(line);
  else log(`memory (no row below 1M tasks): ${JSON.stringify(line)}`);
}

/** Closed loop: `inFlight` callers, each sending its next request when the last one answered. */
async function closedLoop(engine: Engine, requests: Uint8Array[], inFlight: number, seconds: number): Promise<{
  count: number; ms: number; errors: number; firstError: string }> {
  let count = 0;
  let errors = 0;
  let firstError = '';
  let next = 0;
  const t0 = nowMs();
  const end = t0 + seconds * 1000;
  const caller = async (): Promise<void> => {
    while (nowMs() < end) {
      const response = await engine.query(requests[next++ % requests.length]!);
      count++;
      if (count % checkEvery === 0) {
        const error = queryError(response);
        if (error !== null && errors++ === 0) firstError = error;
      }
    }
  };
  const callers: Promise<void>[] = [];
  for (let i = 0; i < inFlight; i++) callers.push(caller());
  await Promise.all(callers);
  return { count, ms: nowMs() - t0, errors, firstError };
}

/** Sends each request once and checks its answer with `check` (throws on the first bad one). */
async function verify(engine: Engine, requests: Uint8Array[], what: string,
  check: (response: ReturnType<typeof decodeQueryResponse>, index: number) => string | null): Promise<void> {
  const responses = await Promise.all(requests.map((bytes) => engine.query(bytes)));
  responses.forEach((bytes, index) => {
    const error = queryError(bytes);
    const problem = error ?? check(decodeQueryResponse(bytes), index);
    if (problem !== null) throw new Error(`${what}: request ${index}: ${problem}`);
  });
}

function taskRequests(o: WorkloadOptions, seed: number): { requests: Uint8Array[]; ids: string[] } {
  const workload = Workload.of(o);
  const prng = new Prng(seed, 1, 0x72656164);
  const requests: Uint8Array[] = [];
  const ids: string[] = [];
  for (let i = 0; i < requestVariety; i++) {
    const id = workload.taskId(prng.int(workload.taskCount));
    ids.push(id);
    requests.push(request(Query.TaskQuery, make(TaskQueryT, { taskIds: [id], configDetail: ConfigDetail.FULL })));
  }
  return { requests, ids };
}

function jobRequests(o: WorkloadOptions, seed: number): Uint8Array[] {
  const workload = Workload.of(o);
  const prng = new Prng(seed, 2, 0x72656164);
  const requests: Uint8Array[] = [];
  for (let i = 0; i < requestVariety; i++) {
    const names = workload.jobNamesOf(prng.int(workload.jobCount));
    requests.push(request(Query.TaskQuery, make(TaskQueryT, {
      jobKeys: [new JobKeyT(names.role, names.environment, names.name)], configDetail: ConfigDetail.FULL,
    })));
  }
  return requests;
}

export async function readTask(engine: Engine, o: WorkloadOptions, tasks: number, counts: ReadCounts, seed: number,
  rows: Rows): Promise<void> {
  const { requests, ids } = taskRequests(o, seed);
  await verify(engine, requests, 'read_task', (response, index) => {
    const result = response.result as TasksResultT;
    if (result.tasks.length !== 1) return `${result.tasks.length} tasks for one id`;
    const id = result.tasks[0]!.assignedTask?.taskId;
    return id === ids[index] ? null : `asked for ${ids[index]}, got ${String(id)}`;
  });
  const run = await closedLoop(engine, requests, counts.inFlight, counts.seconds);
  rows.add({ name: 'read_task', tasks, value: perSecond(run.count, run.ms), unit: 'queries/s',
    inFlight: counts.inFlight, readerThreads: engine.readerThreads, queries: run.count, errors: run.errors,
    ...(run.errors > 0 ? { firstError: run.firstError } : {}) });
}

function checkJob(instances: number): (response: ReturnType<typeof decodeQueryResponse>) => string | null {
  return (response) => {
    const result = response.result as TasksResultT;
    if (result.tasks.length !== instances) return `${result.tasks.length} tasks in a job of ${instances}`;
    if (result.configs.length < 1) return 'no config in a FULL result';
    return null;
  };
}

/**
 * read_job: throughput with an idle writer, then while the main thread paces commits at counts.commitRate
 * (with holdPin, under a pin held by the benchmark: the writer reclaims nothing meanwhile).
 */
export async function readJob(engine: Engine, o: WorkloadOptions, tasks: number, counts: ReadCounts, seed: number,
  transitions: Transitions, holdPin: boolean, rows: Rows): Promise<void> {
  const requests = jobRequests(o, seed);
  await verify(engine, requests, 'read_job', checkJob(o.instances));
  const idle = await closedLoop(engine, requests, counts.inFlight, counts.seconds);
  rows.add({ name: 'read_job', tasks, value: perSecond(idle.count, idle.ms), unit: 'queries/s', writer: 'idle',
    inFlight: counts.inFlight, readerThreads: engine.readerThreads, queries: idle.count, errors: idle.errors,
    ...(idle.errors > 0 ? { firstError: idle.firstError } : {}) });
  const seconds = counts.seconds;
  const commits = transitions.single(Math.ceil(counts.commitRate * (seconds + 1)));
  const pacer = new CommitPacer(engine, commits, counts.commitRate);
  const hold = holdPin ? new PinHold(engine.control) : null;
  let loaded;
  try {
    const pacing = pacer.run(seconds * 1000).then(() => null, (error: unknown) => error);
    loaded = await closedLoop(engine, requests, counts.inFlight, seconds);
    const failure = await pacing;
    if (failure !== null) throw failure;
  } finally {
    hold?.release();
  }
  await verify(engine, requests.slice(0, 256), 'read_job after commits', checkJob(o.instances));
  rows.add({ name: 'read_job', tasks, value: perSecond(loaded.count, loaded.ms), unit: 'queries/s',
    writer: 'committing', reclamation: holdPin ? 'blocked' : 'on',
    commitsPerSecond: perSecond(pacer.committed, pacer.ms),
    commitsPerSecondTarget: counts.commitRate, commitLatencyMsP99: pacer.latency.summary().p99,
    inFlight: counts.inFlight, readerThreads: engine.readerThreads, queries: loaded.count, errors: loaded.errors,
    ...(loaded.errors > 0 ? { firstError: loaded.firstError } : {}) });
}

/** Commits single transitions from the main thread at a fixed rate: every tickMs, what is due since the start. */
class CommitPacer {
  static readonly tickMs = 10;
  committed = 0;
  ms = 0;
  readonly latency = new Latency();
  private issued = 0;
  private failure: string | null = null;

  constructor(private readonly engine: Engine, private readonly commits: Uint8Array[], private readonly rate: number) {}

  async run(durationMs: number): Promise<void> {
    const pending: Promise<void>[] = [];
    const t0 = nowMs();
    for (let elapsed = 0; elapsed < durationMs; elapsed = nowMs() - t0) {
      const due = Math.min(this.commits.length, Math.floor((elapsed * this.rate) / 1000));
      while (this.issued < due) pending.push(this.commit(this.commits[this.issued++]!));
      await sleep(CommitPacer.tickMs);
    }
    await Promise.all(pending);
    this.ms = nowMs() - t0;
    if (this.failure !== null) throw new Error(`read_job: a commit under reads failed: ${this.failure}`);
  }

  private async commit(bytes: Uint8Array): Promise<void> {
    const t0 = nowMs();
    const result = await this.engine.commit(bytes);
    this.latency.recordMs(nowMs() - t0);
    const error = transactionError(result);
    if (error !== null && this.failure === null) this.failure = error;
    this.committed++;
  }
}

/**
 * One call at a time from the main thread: dispatch, pool and answer included. Stops after `samples` calls or
 * latencySecondsMax, whichever comes first (slow queries at 1M tasks would otherwise dominate the run time).
 */
async function latency(engine: Engine, requests: Uint8Array[], samples: number): Promise<Latency> {
  const histogram = new Latency();
  const warmEnd = nowMs() + 1000;
  for (let i = 0; i < Math.min(samples, 200) && (i < 5 || nowMs() < warmEnd); i++) {
    await engine.query(requests[i % requests.length]!); // warm-up
  }
  const end = nowMs() + latencySecondsMax * 1000;
  for (let i = 0; i < samples && (i < latencySamplesMin || nowMs() < end); i++) {
    const t0 = nowMs();
    const response = await engine.query(requests[i % requests.length]!);
    histogram.recordMs(nowMs() - t0);
    if (i % checkEvery === 0) {
      const error = queryError(response);
      if (error !== null) throw new Error(`latency run: ${error}`);
    }
  }
  return histogram;
}

function latencyRow(name: string, tasks: number, histogram: Latency, extra: Record<string, string | number>): Row {
  const s = histogram.summary();
  return { name, tasks, value: s.p50, unit: 'ms', p50: s.p50, p90: s.p90, p99: s.p99, max: s.max, mean: s.mean,
    samples: s.count, ...extra };
}

/**
 * role_summary_ms (JobSummaryQuery of one role), all_roles_summary_ms, query_unscoped_ms; first
 * query_trivial_ms (SchedulerQuery: reads one root word), the floor that dispatch through the pool sets.
 */
export async function summaries(engine: Engine, o: WorkloadOptions, tasks: number, counts: ReadCounts, seed: number,
  rows: Rows): Promise<void> {
  const trivial = [request(Query.SchedulerQuery, make(SchedulerQueryT, {}))];
  await verify(engine, trivial, 'query_trivial', () => null);
  rows.add(latencyRow('query_trivial_ms', tasks, await latency(engine, trivial, counts.latencySamples),
    { query: 'SchedulerQuery' }));
  const workload = Workload.of(o);
  const prng = new Prng(seed, 3, 0x72656164);
  const jobsPerRole = o.envs * o.jobsPerEnv;
  const roleRequests: Uint8Array[] = [];
  for (let i = 0; i < Math.min(requestVariety, counts.latencySamples); i++) {
    const role = workload.roleNames[prng.int(workload.roleNames.length)]!;
    roleRequests.push(request(Query.JobSummaryQuery, make(JobSummaryQueryT, { role })));
  }
  await verify(engine, roleRequests, 'role_summary', (response) => {
    const result = response.result as JobSummaryResultT;
    if (result.jobs.length !== jobsPerRole) return `${result.jobs.length} jobs in a role of ${jobsPerRole}`;
    return null;
  });
  rows.add(latencyRow('role_summary_ms', tasks, await latency(engine, roleRequests, counts.latencySamples),
    { query: 'JobSummaryQuery', jobsPerRole }));
  const allRoles = [request(Query.RoleSummaryQuery, make(RoleSummaryQueryT, {}))];
  await verify(engine, allRoles, 'all_roles_summary', (response) => {
    const result = response.result as RoleSummaryResultT;
    return result.roles.length === o.roles ? null : `${result.roles.length} roles, not ${o.roles}`;
  });
  rows.add(latencyRow('all_roles_summary_ms', tasks,
    await latency(engine, allRoles, Math.max(50, Math.round(counts.latencySamples / 4))),
    { query: 'RoleSummaryQuery', roles: o.roles }));
  const unscoped = [request(Query.TaskQuery, make(TaskQueryT, { limit: 100, configDetail: ConfigDetail.HASH_ONLY }))];
  await verify(engine, unscoped, 'query_unscoped', (response) => {
    const result = response.result as TasksResultT;
    return result.tasks.length === 100 ? null : `${result.tasks.length} tasks, not 100`;
  });
  rows.add(latencyRow('query_unscoped_ms', tasks, await latency(engine, unscoped, counts.latencySamples),
    { query: 'TaskQuery', limit: 100, configDetail: 'HASH_ONLY' }));
}
