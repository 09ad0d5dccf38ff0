/**
 * The load generator (`npm run loadtest -- --scenario NAME ...`, issue 6): open-loop (default) or closed-loop load
 * of one scenario of the standard workload (reference/workload.md) against a running stratad (--url) or one it
 * starts (--spawn), from worker threads (loadtest-worker.ts). Writes report.json (and report.html when
 * loadtest/report-html.ts exists) in --out DIR, a table on stdout and a progress line on stderr each second.
 * Owner: its process's main thread, which only coordinates, merges histograms and samples /metrics.
 * Invariants: flags are checked before anything starts (exit 2 with a message); a daemon it started is stopped by
 * PID whatever happens; the report keeps exactly the shape documented in the README of issue 6.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as f from '../core/fbs/strata.js';
import { DaemonProcess } from './daemon-process.js';
import type { Done, Go, LoadJob, MixOperation, Tick } from './loadtest-worker.js';
import { clockMs, Connection, errorText } from './network-client.js';
import { behindMs, OperationHistogram } from './open-loop.js';

/** loadtest-worker.ts's mixOperations (importing that module would run a worker here). */
const mixOperations: readonly MixOperation[] = ['transitions', 'read-job', 'summaries', 'quota'];
const workerFile = new URL('./loadtest-worker.js', import.meta.url);
const exitUsage = 2;
export const sweepStepsMax = 20;
export const sweepFactor = 1.5;
export const readyWaitMsMax = 120_000;  // a restarted daemon must be ready within this

const scenarios: Record<string, string> = {
  'bulk-load': 'the standard data set (roles × envs × jobs × instances, one ~1.5 KiB config per job), transactions of 1,000 tasks (--tasks N)',
  transitions: 'transition storms at --rate transactions/s, --batch N (1..1000) transitions per transaction',
  'read-job': "one random job's tasks, configs in full",
  summaries: "the role summary and one role's job summaries, in turn",
  quota: 'QuotaQuery of a random role',
  watch: '--subscribers N on extra connections; a committer at --rate; latency from commit send to each delivery',
  mix: 'a mix of the above, --mix transitions=60,read-job=30,summaries=5,quota=5 (the default)',
  snapshot: 'the mix, with a SnapshotRequest and a BackupRequest in the middle of the run (events)',
  restart: 'the mix and --subscribers (with --spawn): SIGTERM and restart the daemon in the middle; recovery time, watches resumed',
};

interface Args {
  scenario: string; rate: number; durationS: number; connections: number; threads: number; url: string;
  token: string; out: string; spawn: boolean; closed: boolean; sweep: boolean; p99TargetMs: number; batch: number;
  subscribers: number; mix: [MixOperation, number][]; tasks: number; inFlight: number;
}

class UsageError extends Error {}

function usage(): string {
  const lines = ['usage: npm run loadtest -- --scenario NAME [--rate R] [--duration S] [--connections C] [--threads T]',
    '  [--url ws://127.0.0.1:7420/v1] [--token T] [--out DIR] [--spawn] [--closed] [--sweep --p99-target MS]',
    '  [--batch N] [--subscribers N] [--mix op=weight,...] [--tasks N] [--in-flight N]', '', 'scenarios:'];
  for (const [name, text] of Object.entries(scenarios)) lines.push(`  ${name.padEnd(12)} ${text}`);
  return `${lines.join('\n')}\n`;
}

function parseMix(text: string): [MixOperation, number][] {
  const mix: [MixOperation, number][] = [];
  for (const part of text.split(',')) {
    const [op, weight] = part.split('=');
    if (!(mixOperations as readonly string[]).includes(op ?? '')) {
      throw new UsageError(`--mix: unknown operation ${op} (known: ${mixOperations.join(', ')})`);
    }
    const w = Number(weight);
    if (!(w > 0) || !Number.isFinite(w)) throw new UsageError(`--mix: ${op} needs a weight > 0`);
    mix.push([op as MixOperation, w]);
  }
  return mix;
}

export function parse(argv: string[]): Args {
  const args: Args = { scenario: '', rate: 200, durationS: 30, connections: 8, threads: 2,
    url: 'ws://127.0.0.1:7420/v1', token: '', out: '', spawn: false, closed: false, sweep: false, p99TargetMs: 10,
    batch: 1, subscribers: 10, mix: parseMix('transitions=60,read-job=30,summaries=5,quota=5'), tasks: 100_000,
    inFlight: 64 };
  const value = (i: number, name: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
    return v;
  };
  const number = (i: number, name: string, min: number, max: number, integer = true): number => {
    const n = Number(value(i, name));
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new UsageError(`${name} needs a ${integer ? 'whole ' : ''}number from ${min} to ${max}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--scenario': args.scenario = value(++i, arg); break;
      case '--rate': args.rate = number(++i, arg, 0.1, 10_000_000, false); break;
      case '--duration': args.durationS = number(++i, arg, 1, 86_400, false); break;
      case '--connections': args.connections = number(++i, arg, 1, 10_000); break;
      case '--threads': args.threads = number(++i, arg, 1, 64); break;
      case '--url': args.url = value(++i, arg); break;
      case '--token': args.token = value(++i, arg); break;
      case '--out': args.out = value(++i, arg); break;
      case '--spawn': args.spawn = true; break;
      case '--closed': args.closed = true; break;
      case '--sweep': args.sweep = true; break;
      case '--p99-target': args.p99TargetMs = number(++i, arg, 0.001, 600_000, false); break;
      case '--batch': args.batch = number(++i, arg, 1, 1000); break;
      case '--subscribers': args.subscribers = number(++i, arg, 0, 10_000); break;
      case '--mix': args.mix = parseMix(value(++i, arg)); break;
      case '--tasks': args.tasks = number(++i, arg, 1000, 10_000_000); break;
      case '--in-flight': args.inFlight = number(++i, arg, 1, 512); break;
      default: throw new UsageError(`unknown argument ${arg}`);
    }
  }
  if (args.scenario === '') throw new UsageError('--scenario is required');
  if (!(args.scenario in scenarios)) throw new UsageError(`unknown scenario ${args.scenario}`);
  if (args.tasks % 1000 !== 0) throw new UsageError('--tasks must be whole thousands');
  if (args.closed && args.sweep) throw new UsageError('--closed and --sweep exclude each other');
  if (args.scenario === 'restart' && !args.spawn) throw new UsageError('--scenario restart needs --spawn');
  if (args.threads > args.connections) args.threads = args.connections;
  if (!/^wss?:\/\//.test(args.url)) throw new UsageError('--url must be ws://HOST:PORT/v1 or wss://...');
  if (args.out === '') args.out = join('loadtest-out', `${args.scenario}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  return args;
}

// ---------------------------------------------------------------------------------------------------------------
// Worker threads

interface Message { type: string; [field: string]: unknown }

class Thread {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  private waiting: ((done: Done) => void) | null = null;
  readonly failed: Promise<never>;

  constructor(job: LoadJob, onTick: (tick: Tick) => void, onError: (message: string) => void) {
    this.worker = new Worker(workerFile, { workerData: job });
    this.failed = new Promise<never>((_resolve, reject) => {
      this.worker.on('error', reject);
      this.worker.on('exit', (code) => reject(new Error(`a load worker exited (code ${code})`)));
    });
    this.failed.catch(() => undefined);
    let readyResolve: () => void = () => undefined;
    this.ready = Promise.race([new Promise<void>((resolve) => { readyResolve = resolve; }), this.failed]);
    this.worker.on('message', (message: Message) => {
      if (message.type === 'ready') readyResolve();
      else if (message.type === 'tick') onTick(message as unknown as Tick);
      else if (message.type === 'error') onError(String(message.message));
      else if (message.type === 'done' && this.waiting !== null) {
        this.waiting(message as unknown as Done);
        this.waiting = null;
      }
    });
  }

  run(go: Go): Promise<Done> {
    const done = new Promise<Done>((resolve) => { this.waiting = resolve; });
    this.worker.postMessage(go);
    return Promise.race([done, this.failed]);
  }

  async end(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.worker.postMessage({ type: 'stop' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The run

interface Sample { t: number; metrics: Record<string, number> }

/** Unlabelled samples and the _sum/_count of histograms, from Prometheus text. */
export function parseMetrics(text: string): Record<string, number> {
  const metrics: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)/.exec(line);
    if (match === null) continue;
    const v = Number(match[2]);
    if (Number.isFinite(v)) metrics[match[1]!] = v;
  }
  return metrics;
}

function httpOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

class Run {
  startMs = 0;
  readonly total = new Map<string, OperationHistogram>();
  readonly seconds = new Map<number, Map<string, OperationHistogram>>();
  readonly events: { t: number; what: string }[] = [];
  readonly warnings: string[] = [];
  readonly samples: Sample[] = [];
  maxLagMs = 0;
  behindSeconds = 0;
  secondOffset = 0;          // a sweep's later steps continue the timeline
  errorMessages = new Map<string, number>();
  private lastSecondMs = -1;
  private latestSecond = 0;

  constructor(readonly args: Args, public url: string, public http: string) {}

  t(): number {
    return round3((clockMs() - this.startMs) / 1000);
  }

  event(what: string): void {
    this.events.push({ t: this.t(), what });
    process.stderr.write(`loadtest: ${what}\n`);
  }

  warn(what: string): void {
    if (!this.warnings.includes(what)) {
      this.warnings.push(what);
      process.stderr.write(`loadtest: warning: ${what}\n`);
    }
  }

  tick = (tick: Tick): void => {
    const second = this.secondOffset + tick.second;
    this.latestSecond = Math.max(this.latestSecond, second);
    let bucket = this.seconds.get(second);
    if (bucket === undefined) {
      bucket = new Map();
      this.seconds.set(second, bucket);
    }
    for (const [op, encoded] of Object.entries(tick.ops)) {
      for (const map of [bucket, this.total]) {
        let h = map.get(op);
        if (h === undefined) {
          h = new OperationHistogram();
          map.set(op, h);
        }
        h.add(encoded);
      }
    }
    this.maxLagMs = Math.max(this.maxLagMs, tick.lagMsMax);
    if (tick.lagMsMax > behindMs) {
      if (this.behindSeconds++ === 0) {
        this.warn(`a worker fell behind its schedule (lag ${Math.round(tick.lagMsMax)} ms at ${second} s): ` +
          'the generator, not the server, may be the bound (see generator.maxLagMs and behindSeconds)');
      }
    }
  };

  onError = (message: string): void => {
    const key = message.slice(0, 200);
    this.errorMessages.set(key, (this.errorMessages.get(key) ?? 0) + 1);
  };

  /** The progress line of the last complete second. */
  progress(): void {
    const second = this.latestSecond - 1;    // the newest second may still miss a thread's tick
    if (second < 0 || second === this.lastSecondMs) return;
    this.lastSecondMs = second;
    const bucket = this.seconds.get(second);
    let count = 0;
    let p99 = 0;
    for (const h of bucket?.values() ?? []) {
      count += h.corrected.totalCount;
      p99 = Math.max(p99, h.summary().p99);
    }
    let errors = 0;
    for (const h of this.total.values()) errors += h.errors;
    process.stderr.write(`[${String(second + 1).padStart(4)} s] ${count} ops/s, p99 ${p99} ms, errors ${errors}, ` +
      `lag max ${Math.round(this.maxLagMs)} ms\n`);
  }

  async sample(): Promise<void> {
    try {
      const response = await fetch(`${this.http}/metrics`, { signal: AbortSignal.timeout(900) });
      if (!response.ok) return;
      this.samples.push({ t: this.t(), metrics: parseMetrics(await response.text()) });
    } catch {
      // the daemon is restarting or slow: a gap in the samples says so
    }
  }
}

/** Sends one request on a fresh connection and waits for the answer (status, snapshot, backup). */
async function ask(url: string, token: string, type: f.Body,
  build: (b: import('flatbuffers').Builder) => number): Promise<f.Envelope> {
  const connection = await Connection.open(url, 'loadtest-admin', token);
  try {
    return await new Promise<f.Envelope>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${f.Body[type]}`)), 600_000);
      connection.onFrame = (envelope) => {
        clearTimeout(timer);
        resolve(envelope);
      };
      connection.request(type, build);
    });
  } finally {
    connection.close();
  }
}

async function storedTasks(url: string, token: string): Promise<number> {
  const envelope = await ask(url, token, f.Body.StatusRequest, (b) => f.StatusRequest.createStatusRequest(b));
  if (envelope.bodyType() !== f.Body.StatusResponse) throw new Error(`status: ${errorText(envelope)}`);
  return Number((envelope.body(new f.StatusResponse()) as f.StatusResponse).tasks());
}

function baseJob(args: Args, url: string): LoadJob {
  return { kind: 'load', url, token: args.token, threadIndex: 0, threads: 1, tasks: args.tasks, seed: 1,
    connections: 1, connectionsTotal: 1, mix: args.mix, closed: args.closed, batch: args.batch, subscribers: 0,
    inFlightMax: args.inFlight, tasksPerTransaction: 1000 };
}

async function bulkLoad(run: Run, args: Args, record: boolean): Promise<void> {
  const thread = new Thread({ ...baseJob(args, run.url), kind: 'bulk', inFlightMax: 4 },
    record ? run.tick : () => undefined, run.onError);
  await thread.ready;
  const t0 = clockMs();
  run.secondOffset = Math.round((t0 + 10 - run.startMs) / 1000);
  const done = await thread.run({ type: 'go', startMs: clockMs() + 10, endMs: 0, rate: 0 });
  await thread.end();
  const s = (clockMs() - t0) / 1000;
  run.event(`bulk load: ${done.tasksLoaded} tasks in ${s.toFixed(1)} s (${Math.round(done.tasksLoaded / s)} tasks/s), revision ${done.revision}`);
}

async function main(): Promise<number> {
  let args: Args;
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return 0;
  }
  try {
    args = parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`loadtest: ${error.message}\n${usage()}`);
    return exitUsage;
  }
  mkdirSync(args.out, { recursive: true });
  let daemon: DaemonProcess | null = null;
  let root = '';
  const startedAt = new Date().toISOString();
  const cpu0 = process.cpuUsage();
  const wall0 = clockMs();
  const config = { readerThreads: 1 };
  try {
    let url = args.url;
    let http = httpOf(url);
    if (args.spawn) {
      root = mkdtempSync(join(tmpdir(), 'strata-loadtest-'));
      // A daemon that restarts keeps its port; it must lie below the ephemeral range (32768-60999 on Linux): the
      // clients reconnecting while it is down would otherwise now and then connect a socket to itself on that very
      // port (TCP simultaneous open), which then holds it. Port 0 picks from the ephemeral range, so not for restart.
      const listen = args.scenario === 'restart' ? `127.0.0.1:${20_000 + Math.floor(Math.random() * 10_000)}` : undefined;
      daemon = await DaemonProcess.start({ dataDir: join(root, 'data'), configFile: join(root, 'config.json'), config,
        nodeArgs: [], listen });
      url = daemon.url;
      http = daemon.http;
    }
    const run = new Run(args, url, http);
    run.startMs = clockMs();
    if (daemon !== null) run.event(`stratad ${daemon.pid} started at ${url}`);
    const sampler = setInterval(() => { void run.sample(); run.progress(); }, 1000);
    void run.sample();
    let sweep: { rate: number; achieved: number; p99: number; met: boolean }[] | null = null;
    let restart: { recoveryMs: number; subscribers: number; resumedWithoutGap: number } | null = null;
    let rate = args.rate;
    let measuredS = args.durationS;
    try {
      if (args.scenario === 'bulk-load') {
        const t0 = clockMs();
        await bulkLoad(run, args, true);
        measuredS = (clockMs() - t0) / 1000;
      } else {
        const tasks = await storedTasks(url, args.token);
        if (tasks === 0) {
          run.event(`the store is empty: bulk load of ${args.tasks} tasks first`);
          await bulkLoad(run, args, false);
        } else if (tasks % 1000 === 0 && tasks !== args.tasks) {
          run.event(`the store holds ${tasks} tasks: the workload follows it`);
          args.tasks = tasks;
        }
        const watch = args.scenario === 'watch';
        const withSubscribers = watch || args.scenario === 'restart';
        const mix: [MixOperation, number][] = watch || args.scenario === 'transitions' ? [['transitions', 1]]
          : args.scenario === 'read-job' || args.scenario === 'summaries' || args.scenario === 'quota'
            ? [[args.scenario as MixOperation, 1]] : args.mix;
        const threads: Thread[] = [];
        for (let t = 0; t < args.threads; t++) {
          const connections = Math.floor(args.connections / args.threads) + (t < args.connections % args.threads ? 1 : 0);
          const subscribers = withSubscribers
            ? Math.floor(args.subscribers / args.threads) + (t < args.subscribers % args.threads ? 1 : 0) : 0;
          threads.push(new Thread({ ...baseJob(args, url), threadIndex: t, threads: args.threads, connections,
            connectionsTotal: args.connections, mix, subscribers }, run.tick, run.onError));
        }
        await Promise.all(threads.map((t) => t.ready));
        run.event(`${args.threads} threads ready: ${args.connections} connections` +
          (withSubscribers ? `, ${args.subscribers} subscribers` : ''));
        const step = async (stepRate: number, seconds: number, during?: () => Promise<void>): Promise<Done[]> => {
          const startMs = clockMs() + 50;
          run.secondOffset = Math.round((startMs - run.startMs) / 1000);
          const go: Go = { type: 'go', startMs, endMs: startMs + seconds * 1000, rate: stepRate / args.threads };
          const results = Promise.all(threads.map((t) => t.run(go)));
          if (during !== undefined) await during();
          return results;
        };
        if (args.sweep) {
          sweep = [];
          let best = 0;
          for (let s = 0; s < sweepStepsMax; s++) {
            const stepRate = args.rate * sweepFactor ** s;
            const before = new Map([...run.total].map(([op, h]) => [op, h.corrected.totalCount]));
            const stepTotal = new OperationHistogram();
            const stepStart = Math.round((clockMs() + 50 - run.startMs) / 1000);
            run.event(`sweep step ${s + 1}: ${Math.round(stepRate)} requests/s for ${args.durationS} s`);
            await step(stepRate, args.durationS);
            let count = 0;
            for (const [second, bucket] of run.seconds) {
              if (second < stepStart) continue;
              for (const [op, h] of bucket) if (op !== 'watch') stepTotal.corrected.add(h.corrected);
            }
            for (const [op, h] of run.total) count += h.corrected.totalCount - (before.get(op) ?? 0);
            const p99 = stepTotal.summary().p99;
            const met = p99 <= args.p99TargetMs;
            sweep.push({ rate: round3(stepRate), achieved: round3(count / args.durationS), p99, met });
            if (met) best = stepRate;
            if (!met) break;
          }
          rate = round3(best);
          measuredS = (clockMs() - run.startMs) / 1000;
        } else {
          const t0 = clockMs();
          let dones: Done[];
          if (args.scenario === 'snapshot') {
            dones = await step(rate, args.durationS, async () => {
              await new Promise((resolve) => setTimeout(resolve, (args.durationS * 1000) / 3));
              for (const [name, type, build] of [
                ['snapshot', f.Body.SnapshotRequest, (b: import('flatbuffers').Builder) => f.SnapshotRequest.createSnapshotRequest(b)],
                ['backup', f.Body.BackupRequest, (b: import('flatbuffers').Builder) => f.BackupRequest.createBackupRequest(b)],
              ] as const) {
                run.event(`${name} requested`);
                const a = clockMs();
                const answer = await ask(url, args.token, type, build);
                if (answer.bodyType() === f.Body.FileResponse) {
                  const file = answer.body(new f.FileResponse()) as f.FileResponse;
                  run.event(`${name} done in ${Math.round(clockMs() - a)} ms: revision ${file.revision()}, ` +
                    `${file.bytes()} bytes, ${file.tasks()} tasks`);
                } else {
                  run.event(`${name} failed after ${Math.round(clockMs() - a)} ms: ${errorText(answer)}`);
                  run.warn(`${name} failed: ${errorText(answer)}`);
                }
              }
            });
          } else if (args.scenario === 'restart') {
            let recoveryMs = -1;
            dones = await step(rate, args.durationS, async () => {
              await new Promise((resolve) => setTimeout(resolve, (args.durationS * 1000) / 3));
              const port = new URL(daemon!.url).port;
              run.event(`SIGTERM to stratad ${daemon!.pid}`);
              const code = await daemon!.stop();
              run.event(`stratad exited with ${code}; restarting on port ${port}`);
              const a = clockMs();
              for (let attempt = 1; ; attempt++) {
                try {
                  daemon = await DaemonProcess.start({ dataDir: join(root, 'data'), configFile: join(root, 'config.json'),
                    config, nodeArgs: [], listen: `127.0.0.1:${port}` });
                  break;
                } catch (error) {
                  // the port may be held a moment longer (sockets closing): retry for a while
                  if (clockMs() - a > readyWaitMsMax || !String(error).includes('cannot listen')) throw error;
                  if (attempt === 1) run.event(`port ${port} still busy: retrying`);
                  await new Promise((resolve) => setTimeout(resolve, 100));
                }
              }
              for (;;) {
                const ready = await fetch(`${daemon.http}/readyz`).then((r) => r.status, () => 0);
                if (ready === 200 || clockMs() - a > readyWaitMsMax) break;
                await new Promise((resolve) => setTimeout(resolve, 20));
              }
              recoveryMs = Math.round(clockMs() - a);
              run.event(`stratad ${daemon.pid} ready again after ${recoveryMs} ms`);
            });
            const subscribers = dones.reduce((s, d) => s + d.subscribers, 0);
            const resumedWithoutGap = dones.reduce((s, d) => s + d.resumedWithoutGap, 0);
            restart = { recoveryMs, subscribers, resumedWithoutGap };
            if (resumedWithoutGap < subscribers) run.warn(`${subscribers - resumedWithoutGap} subscribers did not resume without a gap`);
          } else {
            dones = await step(rate, args.durationS);
          }
          measuredS = (clockMs() - t0) / 1000;
          void dones;
        }
        await Promise.all(threads.map((t) => t.end()));
      }
    } finally {
      clearInterval(sampler);
    }
    await run.sample();
    const usage = process.cpuUsage(cpu0);
    const cpuCores = round3((usage.user + usage.system) / 1000 / (clockMs() - wall0));
    if (cpuCores > 0.8 * cpus().length) run.warn(`the generator used ${cpuCores} cores of ${cpus().length}: it competes with the server`);
    for (const [message, count] of run.errorMessages) run.warn(`errors (${count}× at least): ${message}`);
    const report = buildReport(run, args, { rate, measuredS, startedAt, cpuCores, sweep, restart });
    writeFileSync(join(args.out, 'report.json'), `${JSON.stringify(report, null, 1)}\n`);
    await writeHtml(report, args.out);
    process.stdout.write(table(report));
    process.stdout.write(`report: ${join(args.out, 'report.json')}\n`);
    return 0;
  } finally {
    if (daemon !== null) {
      const code = await (daemon as DaemonProcess).stop();
      if (code !== 0) process.stderr.write(`loadtest: stratad exited with ${code}: ${(daemon as DaemonProcess).stderr.slice(-2000)}\n`);
    }
    if (root !== '') rmSync(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The report

/** [percentile, ms] pairs of the corrected histogram's percentile iteration (5 ticks per half distance). */
export function percentiles(h: OperationHistogram): [number, number][] {
  if (h.corrected.totalCount === 0) return [];
  const out: [number, number][] = [];
  for (const line of (h.corrected.outputPercentileDistribution as (ticks: number, scale: number, csv: boolean) => string)(5, 1000, true).split('\n').slice(1)) {
    const [value, percentile] = line.split(',').map(Number);
    if (value === undefined || percentile === undefined || !Number.isFinite(value) || !Number.isFinite(percentile)) continue;
    out.push([Math.round(percentile * 100 * 1e6) / 1e6, value]);
  }
  if (out.length === 0 || out[out.length - 1]![0] !== 100) out.push([100, h.summary().max]);
  return out;
}

interface Extra {
  rate: number; measuredS: number; startedAt: string; cpuCores: number;
  sweep: { rate: number; achieved: number; p99: number; met: boolean }[] | null;
  restart: { recoveryMs: number; subscribers: number; resumedWithoutGap: number } | null;
}

function buildReport(run: Run, args: Args, extra: Extra) {
  const operations: Record<string, unknown> = {};
  for (const [op, h] of [...run.total].sort(([a], [b]) => a.localeCompare(b))) {
    const s = h.summary();
    operations[op] = { count: s.count, errors: s.errors, throughput: round3(s.count / Math.max(0.001, extra.measuredS)),
      p50: s.p50, p90: s.p90, p99: s.p99, p999: s.p999, p9999: s.p9999, max: s.max, rawP99: s.rawP99,
      percentiles: percentiles(h) };
  }
  const timeline = [...run.seconds].sort(([a], [b]) => a - b).map(([second, bucket]) => {
    const ops: Record<string, { count: number; p50: number; p99: number; max: number }> = {};
    for (const [op, h] of bucket) {
      const s = h.summary();
      ops[op] = { count: s.count, p50: s.p50, p99: s.p99, max: s.max };
    }
    return { t: second + 1, ops };
  });
  return {
    scenario: args.scenario, mode: args.sweep ? 'sweep' : args.closed ? 'closed' : 'open', rate: extra.rate,
    durationS: round3(extra.measuredS), connections: args.connections, threads: args.threads,
    startedAt: extra.startedAt, url: run.url,
    machine: { cpus: cpus().length, memoryGiB: round3(totalmem() / 2 ** 30), node: process.version },
    generator: { cpuCores: extra.cpuCores, maxLagMs: round3(run.maxLagMs), behindSeconds: run.behindSeconds,
      warnings: run.warnings },
    operations, timeline, events: run.events, server: { samples: run.samples },
    sweep: extra.sweep, restart: extra.restart,
  };
}

type Report = ReturnType<typeof buildReport>;

async function writeHtml(report: Report, out: string): Promise<void> {
  let module: { renderHtml?: (report: unknown) => string };
  try {
    module = await import(new URL('./report-html.js', import.meta.url).href) as typeof module;
  } catch {
    return; // not written yet
  }
  if (typeof module.renderHtml === 'function') writeFileSync(join(out, 'report.html'), module.renderHtml(report));
}

function table(report: Report): string {
  const rows = [['op', 'count', 'errors', 'per s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms']];
  for (const [op, o] of Object.entries(report.operations) as [string, Record<string, number>][]) {
    rows.push([op, o.count!, o.errors!, o.throughput!, o.p50!, o.p99!, o.p999!, o.max!].map(String));
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  lines.unshift(`${report.scenario} (${report.mode}, ${report.rate}/s, ${report.durationS} s, generator ${report.generator.cpuCores} cores)`);
  if (report.sweep !== null) {
    for (const s of report.sweep) lines.push(`sweep ${s.rate}/s: achieved ${s.achieved}/s, p99 ${s.p99} ms ${s.met ? 'met' : 'missed'}`);
  }
  if (report.restart !== null) {
    lines.push(`restart: ready after ${report.restart.recoveryMs} ms, ${report.restart.resumedWithoutGap} of ` +
      `${report.restart.subscribers} subscribers resumed without a gap`);
  }
  for (const w of report.generator.warnings) lines.push(`warning: ${w}`);
  return `${lines.join('\n')}\n`;
}

main().then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`loadtest: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
