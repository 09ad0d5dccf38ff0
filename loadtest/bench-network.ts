/**
 * The network benchmark (`npm run bench:network`): stratad as a child process, clients in worker threads of this
 * process (bench-network-worker.ts) on the same machine, the standard workload (reference/workload.md) at 100k
 * tasks. Prints a JSON array of {name, value, unit, ...} rows on stdout; progress and each row on stderr.
 * Owner: its process's main thread (which only coordinates and measures: the load comes from the workers).
 * Flags: --quick (short phases), --dir DIR (the data directory goes under it; default the OS temporary
 * directory, which must be on a real disk), --depth N[,N] (pipelined commits per transition connection; default
 * 8,1), --warmup S, --seconds S, --read-connections N, --read-depth N, --phases LIST (of transition, read,
 * summary, watch, fanout; default all), --daemon-node-args "ARGS" (node flags for the daemon, e.g. --cpu-prof).
 * Phases (docs/benchmarks.md, "Network"):
 *  1. bulk_load: 100k tasks in transactions of 1000, 4 in flight, over one connection.
 *  2. net_transition: 32 connections over 2 threads, each pipelining `depth` durable lifecycle steps.
 *  3. net_read_job: a random job's 50 tasks with full configs, read to the last field by the client.
 *  4. net_summary_ms: RoleSummaryQuery and one role's JobSummaryQuery, one at a time.
 *  5. watch (10 subscribers, 200 single-transition commits/s, open loop) and fanout (100 subscribers, 1000
 *     commits/s of 20 tasks = 20,000 events/s): delivery latency = arrival − the time just before the commit was
 *     sent, on clocks comparable across threads (performance.timeOrigin + performance.now()).
 *  6. The daemon is stopped by PID (SIGTERM) and must exit 0.
 * Every phase also reports CPU over its measurement window: the daemon (process and threads, from /proc), this
 * process and each client thread, and the machine as a whole (so other processes' load shows).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Latency, log, perSecond, round, Rows, type Row } from './bench-support.js';
import type { Finish, Go, Job } from './bench-network-worker.js';
import { DaemonProcess, machineBusyMs, processCpuMs, threadsCpuMs } from './daemon-process.js';
import { clockMs } from './network-client.js';

const workerFile = new URL('./bench-network-worker.js', import.meta.url);
const tasks = 100_000;
const phaseNames = ['transition', 'read', 'summary', 'watch', 'fanout'];
export const finishWaitMs = 30_000;   // how long subscribers may take to receive the last revision after it committed
export const keptUpLagMsMax = 1000;   // a subscriber that got the last revision later than this after its commit fell behind

interface Args {
  quick: boolean; dir: string; depths: number[]; warmupS: number; seconds: number; readConnections: number;
  readDepth: number; phases: Set<string>; daemonNodeArgs: string[];
}

function parse(argv: string[]): Args {
  const args: Args = { quick: false, dir: tmpdir(), depths: [8, 1], warmupS: 2, seconds: 10, readConnections: 8,
    readDepth: 16, phases: new Set(phaseNames), daemonNodeArgs: [] };
  let warmupS: number | null = null;
  let seconds: number | null = null;
  const count = (value: string | undefined, name: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a whole number >= 1`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') args.quick = true;
    else if (arg === '--dir') args.dir = argv[++i] ?? '';
    else if (arg === '--depth') args.depths = (argv[++i] ?? '').split(',').map((d) => count(d, '--depth'));
    else if (arg === '--warmup') warmupS = count(argv[++i], '--warmup');
    else if (arg === '--seconds') seconds = count(argv[++i], '--seconds');
    else if (arg === '--read-connections') args.readConnections = count(argv[++i], '--read-connections');
    else if (arg === '--read-depth') args.readDepth = count(argv[++i], '--read-depth');
    else if (arg === '--phases') args.phases = new Set((argv[++i] ?? '').split(','));
    else if (arg === '--daemon-node-args') args.daemonNodeArgs = (argv[++i] ?? '').split(' ').filter((a) => a !== '');
    else {
      throw new Error(`unknown argument ${arg} (known: --quick --dir DIR --depth N[,N] --warmup S --seconds S ` +
        `--read-connections N --read-depth N --phases ${phaseNames.join(',')} --daemon-node-args "ARGS")`);
    }
  }
  for (const phase of args.phases) if (!phaseNames.includes(phase)) throw new Error(`unknown phase ${phase}`);
  if (args.depths.some((d) => d > 512)) throw new Error('--depth at most 512 (the daemon answers 1024 in flight)');
  args.warmupS = warmupS ?? (args.quick ? 1 : 2);
  args.seconds = seconds ?? (args.quick ? 3 : 10);
  return args;
}

// ---------------------------------------------------------------------------------------------------------------
// Workers

interface Message { type: string; [field: string]: unknown }

/** A client thread: resolves `ready` when connected, then one result per 'go' (or 'finish'). */
class Client {
  readonly worker: Worker;
  readonly ready: Promise<Message>;
  private readonly results: Message[] = [];
  private waiting: ((message: Message) => void) | null = null;
  private readonly failed: Promise<never>;

  constructor(job: Job) {
    this.worker = new Worker(workerFile, { workerData: job });
    this.failed = new Promise<never>((_resolve, reject) => {
      this.worker.on('error', reject);
      this.worker.on('exit', (code) => reject(new Error(`a ${job.role} worker exited (code ${code}) before its result`)));
    });
    this.failed.catch(() => undefined); // observed through ready and result
    let readyResolve: (message: Message) => void = () => undefined;
    this.ready = Promise.race([new Promise<Message>((resolve) => { readyResolve = resolve; }), this.failed]);
    this.worker.on('message', (message: Message) => {
      if (message.type === 'ready') return readyResolve(message);
      if (this.waiting !== null) {
        this.waiting(message);
        this.waiting = null;
      } else {
        this.results.push(message);
      }
    });
  }

  post(message: Go | Finish | { type: 'stop' }): void {
    this.worker.postMessage(message);
  }

  result(): Promise<Message> {
    const queued = this.results.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return Promise.race([new Promise<Message>((resolve) => { this.waiting = resolve; }), this.failed]);
  }

  async end(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// CPU and server counters

interface CpuSample { atMs: number; daemonMs: number; daemonThreads: Map<number, number>; clientMs: number; machineMs: number }

function cpuSample(pid: number): CpuSample {
  const usage = process.cpuUsage();
  return { atMs: clockMs(), daemonMs: processCpuMs(pid), daemonThreads: threadsCpuMs(pid),
    clientMs: (usage.user + usage.system) / 1000, machineMs: machineBusyMs() };
}

/** Samples CPU at the start and the end of a measurement window (timers on this idle main thread). */
class CpuWindow {
  private readonly samples: Promise<[CpuSample, CpuSample]>;

  constructor(pid: number, go: Go) {
    const at = (ms: number) => new Promise<CpuSample>((resolve) => setTimeout(() => resolve(cpuSample(pid)), Math.max(0, ms - clockMs())));
    this.samples = Promise.all([at(go.warmupEndMs), at(go.endMs)]);
  }

  /** The CPU row of a phase; `workerMs` is each client thread's own CPU time over the window. */
  async row(pid: number, phase: string, workerMs: number[]): Promise<Row> {
    const [a, b] = await this.samples;
    const ms = b.atMs - a.atMs;
    const cores = (cpuMs: number) => round(cpuMs / ms, 3);
    const threads: number[] = [];
    for (const [tid, after] of b.daemonThreads) if (tid !== pid) threads.push(after - (a.daemonThreads.get(tid) ?? 0));
    threads.sort((x, y) => y - x);
    const daemonMs = b.daemonMs - a.daemonMs;
    const clientMs = b.clientMs - a.clientMs;
    const machineMs = b.machineMs - a.machineMs;
    return { name: 'cpu', tasks, phase, value: cores(daemonMs), unit: 'cores',
      daemonCores: cores(daemonMs),
      daemonMainThreadCores: cores((b.daemonThreads.get(pid) ?? 0) - (a.daemonThreads.get(pid) ?? 0)),
      daemonBusiestOtherThreadsCores: threads.slice(0, 3).map((t) => cores(t)).join(' '),
      clientCores: cores(clientMs), clientWorkerThreadsCores: workerMs.map((t) => cores(t)).join(' '),
      machineBusyCores: cores(machineMs), otherProcessesCores: cores(Math.max(0, machineMs - daemonMs - clientMs)),
      windowMs: Math.round(ms) };
  }
}

/** A few of the daemon's /metrics values (counters and histogram sums), by name. */
async function serverCounters(daemon: DaemonProcess): Promise<Map<string, number>> {
  const text = await (await fetch(`${daemon.http}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(strata_group_transactions_(?:sum|count)|strata_(?:fsync|commit)_seconds_(?:sum|count)|strata_fsync_seconds_bucket\{le="0\.001"\}|strata_slow_consumer_\w+) (\S+)$/.exec(line);
    if (match !== null) values.set(match[1]!, Number(match[2]));
  }
  return values;
}

function counterFields(before: Map<string, number>, after: Map<string, number>, ms: number): Record<string, number> {
  const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  const groups = delta('strata_group_transactions_count');
  return { groupsPerS: perSecond(groups, ms), transactionsPerGroup: round(delta('strata_group_transactions_sum') / Math.max(1, groups), 3),
    appendSyncMsMean: round((1000 * delta('strata_fsync_seconds_sum')) / Math.max(1, delta('strata_fsync_seconds_count')), 3),
    appendSyncOver1msShare: round(1 - delta('strata_fsync_seconds_bucket{le="0.001"}') / Math.max(1, delta('strata_fsync_seconds_count')), 3),
    serverCommitMsMean: round((1000 * delta('strata_commit_seconds_sum')) / Math.max(1, delta('strata_commit_seconds_count')), 3),
    slowConsumerCatchups: delta('strata_slow_consumer_catchups_total'),
    slowConsumerCompacted: delta('strata_slow_consumer_compacted_total'),
    slowConsumerClosed: delta('strata_slow_consumer_closed_total') };
}

// ---------------------------------------------------------------------------------------------------------------
// Phases

class Bench {
  readonly rows = new Rows();

  constructor(readonly args: Args, readonly daemon: DaemonProcess) {}

  /** A window starting shortly, with the configured warm-up and measurement. */
  window(depth = 0): Go {
    const startMs = clockMs() + 20;
    const warmupEndMs = startMs + this.args.warmupS * 1000;
    return { type: 'go', startMs, warmupEndMs, endMs: warmupEndMs + this.args.seconds * 1000, depth };
  }

  job<R extends Job['role']>(role: R, fields: Omit<Extract<Job, { role: R }>, 'url' | 'tasks' | 'seed' | 'role'>): Job {
    return { role, url: this.daemon.url, tasks, seed: 7, ...fields } as Job;
  }

  async bulkLoad(): Promise<void> {
    const client = new Client(this.job('bulk', { tasksPerTransaction: 1000, inFlight: 4 }));
    await client.ready;
    const before = cpuSample(this.daemon.pid);
    client.post({ type: 'go', startMs: 0, warmupEndMs: 0, endMs: 0, depth: 0 });
    const result = await client.result();
    const after = cpuSample(this.daemon.pid);
    await client.end();
    const ms = result.ms as number;
    this.rows.add({ name: 'bulk_load', tasks, value: perSecond(tasks, ms), unit: 'tasks/s', via: 'network',
      tasksPerTransaction: 1000, inFlight: 4, wallMs: Math.round(ms),
      daemonCores: round((after.daemonMs - before.daemonMs) / (after.atMs - before.atMs), 3),
      clientCores: round((after.clientMs - before.clientMs) / (after.atMs - before.atMs), 3) });
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.daemon.pid}/status`, 'utf8'));
    this.rows.add({ name: 'server_rss_mib', tasks, value: Math.round(Number(rss?.[1] ?? 0) / 1024), unit: 'MiB',
      when: 'after the bulk load' });
  }

  async transitions(): Promise<void> {
    const threads = 2;
    const connections = 32;
    const clients: Client[] = [];
    for (let t = 0; t < threads; t++) {
      const clientIndexes: number[] = [];
      for (let c = t; c < connections; c += threads) clientIndexes.push(c);
      clients.push(new Client(this.job('transition', { clientIndexes, clientCount: connections, depth: 0 })));
    }
    await Promise.all(clients.map((c) => c.ready));
    for (const depth of this.args.depths) {
      log(`net_transition: ${connections} connections × depth ${depth}, ${this.args.seconds} s`);
      const before = await serverCounters(this.daemon);
      const go = this.window(depth);
      const cpu = new CpuWindow(this.daemon.pid, go);
      for (const client of clients) client.post(go);
      const results = await Promise.all(clients.map((c) => c.result()));
      const counters = counterFields(before, await serverCounters(this.daemon), go.endMs - go.startMs);
      const latency = new Latency();
      let count = 0;
      for (const r of results) {
        count += r.count as number;
        for (const ms of r.latencies as Float64Array) latency.recordMs(ms);
      }
      const common = { connections, depth, inFlight: connections * depth };
      this.rows.add({ name: 'net_transition', tasks, value: perSecond(count, go.endMs - go.warmupEndMs),
        unit: 'transitions/s', ...common, threads, seconds: this.args.seconds, ...counters });
      this.latencyRows('net_transition', latency, common);
      this.rows.add(await cpu.row(this.daemon.pid, `net_transition depth ${depth}`, results.map((r) => r.cpuMs as number)));
    }
    for (const client of clients) client.post({ type: 'stop' });
    await Promise.all(clients.map((c) => c.end()));
  }

  private latencyRows(name: string, latency: Latency, fields: Record<string, string | number>): void {
    for (const [suffix, percentile] of [['p50', 50], ['p99', 99], ['p999', 99.9]] as const) {
      this.rows.add({ name: `${name}_${suffix}_ms`, tasks, value: round(latency.percentileMs(percentile), 3), unit: 'ms',
        ...fields, samples: latency.count });
    }
  }

  async readJob(): Promise<void> {
    const threads = 2;
    const perThread = Math.max(1, Math.round(this.args.readConnections / threads));
    const clients: Client[] = [];
    for (let t = 0; t < threads; t++) {
      clients.push(new Client(this.job('read', { stream: t, connections: perThread, depth: this.args.readDepth })));
    }
    await Promise.all(clients.map((c) => c.ready));
    log(`net_read_job: ${threads * perThread} connections × depth ${this.args.readDepth}, ${this.args.seconds} s`);
    const go = this.window();
    const cpu = new CpuWindow(this.daemon.pid, go);
    for (const client of clients) client.post(go);
    const results = await Promise.all(clients.map((c) => c.result()));
    await Promise.all(clients.map((c) => c.end()));
    const latency = new Latency();
    let count = 0;
    for (const r of results) {
      count += r.count as number;
      for (const ms of r.latencies as Float64Array) latency.recordMs(ms);
    }
    const common = { connections: threads * perThread, depth: this.args.readDepth };
    this.rows.add({ name: 'net_read_job', tasks, value: perSecond(count, go.endMs - go.warmupEndMs), unit: 'queries/s',
      ...common, tasksPerQuery: 50, configDetail: 'FULL', threads, seconds: this.args.seconds });
    this.latencyRows('net_read_job', latency, common);
    this.rows.add(await cpu.row(this.daemon.pid, 'net_read_job', results.map((r) => r.cpuMs as number)));
  }

  async summaries(): Promise<void> {
    const client = new Client(this.job('summary', {}));
    await client.ready;
    log(`net_summary_ms: one query at a time, ${this.args.seconds} s`);
    const go = this.window();
    const cpu = new CpuWindow(this.daemon.pid, go);
    client.post(go);
    const result = await client.result();
    await client.end();
    for (const [query, key] of [['RoleSummaryQuery', 'role'], ['JobSummaryQuery', 'job']] as const) {
      const latency = new Latency();
      for (const ms of result[key] as Float64Array) latency.recordMs(ms);
      const s = latency.summary();
      this.rows.add({ name: 'net_summary_ms', tasks, value: s.p50, unit: 'ms', query, p50: s.p50, p90: s.p90,
        p99: s.p99, max: s.max, samples: s.count, answer: key === 'role' ? '100 roles' : "one role's 20 jobs" });
    }
    this.rows.add(await cpu.row(this.daemon.pid, 'net_summary_ms', [result.cpuMs as number]));
  }

  /**
   * Subscribers in `threads` threads, one committer at `rate` commits/s of `batch` tasks; then every
   * (revision, subscriber) of the commits sent in the measurement window is matched with its send time.
   */
  async watch(name: string, subscriberCount: number, rate: number, batch: number): Promise<void> {
    const threads = 2;
    const subscriberClients: Client[] = [];
    for (let t = 0; t < threads; t++) {
      const count = Math.floor(subscriberCount / threads) + (t < subscriberCount % threads ? 1 : 0);
      subscriberClients.push(new Client(this.job('subscribers', { count })));
    }
    const committer = new Client(this.job('committer', { rate, batch }));
    await Promise.all([...subscriberClients, committer].map((c) => c.ready));
    log(`${name}: ${subscriberCount} subscribers, ${rate} commits/s of ${batch} task(s), ${this.args.seconds} s`);
    const before = await serverCounters(this.daemon);
    const go = this.window();
    const cpu = new CpuWindow(this.daemon.pid, go);
    for (const client of [...subscriberClients, committer]) client.post(go);
    const commits = await committer.result();
    const revisions = commits.revisions as Float64Array;
    const lastRevision = revisions.reduce((a, b) => Math.max(a, b), 0);
    const finish: Finish = { type: 'finish', lastRevision, deadlineMs: clockMs() + finishWaitMs };
    for (const client of subscriberClients) client.post(finish);
    const subscribed = await Promise.all(subscriberClients.map((c) => c.result()));
    const counters = counterFields(before, await serverCounters(this.daemon), go.endMs - go.startMs);
    await Promise.all([...subscriberClients, committer].map((c) => c.end()));
    const workerMs = [...subscribed.map((r) => r.cpuMs as number), commits.cpuMs as number];
    const cpuRow = await cpu.row(this.daemon.pid, name, workerMs);
    this.watchRows(name, go, commits, subscribed.flatMap((r) => r.subscribers as SubscriberResult[]), batch, rate,
      counters);
    this.rows.add(cpuRow);
  }

  private watchRows(name: string, go: Go, commits: Message, subscribers: SubscriberResult[], batch: number,
    rate: number, counters: Record<string, number>): void {
    const sentMs = commits.sentMs as Float64Array;
    const ackMs = commits.ackMs as Float64Array;
    const revisions = commits.revisions as Float64Array;
    let first = 0;
    while (first < sentMs.length && sentMs[first]! < go.warmupEndMs) first++;
    const measured = sentMs.length - first;
    const lastRevision = revisions[sentMs.length - 1]!;
    const lastAckMs = ackMs.reduce((a, b) => Math.max(a, b), 0);
    const delivery = new Latency();
    const commitLatency = new Latency();
    for (let k = first; k < sentMs.length; k++) commitLatency.recordMs(ackMs[k]! - sentMs[k]!);
    let delivered = 0;
    let complete = 0;
    let keptUp = 0;
    let lagRevisionsMax = 0;
    let lagMsMax = 0;
    let eventsMin = Infinity;
    let bytes = 0;              // frames received by every subscriber, progress messages included
    let revisionsReceived = 0;
    for (const s of subscribers) {
      let mine = 0;
      for (let k = first; k < sentMs.length; k++) {
        const at = s.deliveries[revisions[k]! - s.base - 1] ?? 0;
        if (at <= 0) continue;
        mine++;
        delivery.recordMs(at - sentMs[k]!);
      }
      delivered += mine;
      const all = mine === measured && s.gaps === 0 && s.disorder === 0 && s.ended === '' && s.last >= lastRevision;
      if (all) complete++;
      // Lag when the last commit was acknowledged: revisions not yet received, and how late the last one came.
      let newest = s.base;
      for (let i = 0; i < s.deliveries.length; i++) if (s.deliveries[i]! > 0 && s.deliveries[i]! <= lastAckMs) newest = s.base + 1 + i;
      lagRevisionsMax = Math.max(lagRevisionsMax, lastRevision - newest);
      const lastAt = s.deliveries[lastRevision - s.base - 1] ?? 0;
      const lagMs = lastAt > 0 ? lastAt - lastAckMs : finishWaitMs;
      lagMsMax = Math.max(lagMsMax, lagMs);
      if (all && lagMs <= keptUpLagMsMax) keptUp++;
      eventsMin = Math.min(eventsMin, s.events);
      bytes += s.bytes;
      revisionsReceived += s.last - s.base;
    }
    const windowMs = go.endMs - go.warmupEndMs;
    const common = { subscribers: subscribers.length, commitsPerSTarget: rate, tasksPerCommit: batch };
    const s = delivery.summary();
    this.rows.add({ name: `${name}_p99_ms`, tasks, value: s.p99, unit: 'ms', ...common, p50: s.p50, p90: s.p90,
      p999: round(delivery.percentileMs(99.9), 4), max: s.max, delivered, expected: measured * subscribers.length,
      commitsMeasured: measured, commitsPerS: perSecond(measured, windowMs),
      eventsPerS: perSecond(measured * batch, windowMs), subscribersComplete: complete,
      subscribersKeptUp: keptUp, finalLagRevisionsMax: lagRevisionsMax, finalLagMsMax: round(lagMsMax, 4),
      eventsReceivedMin: eventsMin,
      receivedBytesPerRevision: Math.round(bytes / Math.max(1, revisionsReceived)),
      commitP50Ms: round(commitLatency.percentileMs(50), 4),
      commitP99Ms: round(commitLatency.percentileMs(99), 4),
      committerLateMsMax: round(commits.lateMsMax as number, 3), committerHeldBack: commits.heldBack as number,
      ends: subscribers.filter((x) => x.ended !== '').map((x) => x.ended).slice(0, 3).join('; '), ...counters });
  }
}

interface SubscriberResult {
  base: number; last: number; deliveries: Float64Array; events: number; gaps: number; disorder: number;
  ended: string; closeCode: number; bytes: number;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const root = mkdtempSync(join(args.dir, 'strata-bench-network-'));
  const config = { readerThreads: 1, snapshot: { everyMs: 0, logBytes: 0 }, backup: { everyMs: 0 } };
  let daemon: DaemonProcess | null = null;
  let bench: Bench | null = null;
  try {
    daemon = await DaemonProcess.start({ dataDir: join(root, 'data'), configFile: join(root, 'config.json'), config,
      nodeArgs: args.daemonNodeArgs });
    log(`stratad ${daemon.pid} at ${daemon.url}; data in ${root}`);
    bench = new Bench(args, daemon);
    log('bulk load: 100k tasks over the network');
    await bench.bulkLoad();
    if (args.phases.has('transition')) await bench.transitions();
    if (args.phases.has('read')) await bench.readJob();
    if (args.phases.has('summary')) await bench.summaries();
    if (args.phases.has('watch')) await bench.watch('watch', 10, 200, 1);
    if (args.phases.has('fanout')) await bench.watch('watch_fanout', 100, 1000, 20);
  } finally {
    if (daemon !== null) {
      log(`stopping stratad ${daemon.pid} (SIGTERM)`);
      const code = await daemon.stop();
      bench?.rows.add({ name: 'daemon_exit_code', tasks, value: code ?? -1, unit: 'code', signal: 'SIGTERM' });
      if (code !== 0) log(`stratad exited with ${code}: ${daemon.stderr.slice(-2000)}`);
    }
    rmSync(root, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(bench!.rows.rows, null, 1)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench-network: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
