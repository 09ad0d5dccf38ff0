/**
 * The durability benchmark (`npm run bench:durability`): group commit through the write-ahead log, recovery
 * time, snapshot time and its effect on commit latency, log bytes per transition. Prints a JSON array of
 * {name, value, unit, ...} rows on stdout; progress and each row on stderr. Owner: its process's main thread.
 * Flags: --quick (short phases, 100k tasks only), --dir DIR (data directories go under it; default the OS
 * temporary directory, which must be on a real disk: fdatasync is what is measured).
 * Phases (docs/benchmarks.md):
 *  1. durable_commit at committers = 1, 32, 256: in-process async committers, each stepping its own tasks'
 *     lifecycles (loadtest/workload.ts TransitionGenerator); commits/s, fdatasyncs/s, p50/p99/p99.9 latency;
 *     log_bytes_per_transition.
 *  2. snapshot_s at 1M tasks (100k with --quick), and snapshot_p999_ratio: commit p99.9 at 32 committers while
 *     the snapshot is written, over the same without.
 *  3. recovery_s at 100k and 1M tasks: snapshot + a 100k-transaction log tail (20k with --quick), close, time
 *     Engine.open (split into snapshot load and replay).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../daemon/engine.js';
import { Latency, log, nowMs, perSecond, round, Rows, sleep, transactionError } from './bench-support.js';
import { bulkLoadEngine } from './bench-reads.js';
import { TransitionGenerator, workloadOptions, type WorkloadOptions } from './workload.js';

interface Args { quick: boolean; dir: string }

function parse(argv: string[]): Args {
  const args: Args = { quick: false, dir: tmpdir() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') args.quick = true;
    else if (arg === '--dir') args.dir = argv[++i] ?? '';
    else throw new Error(`unknown argument ${arg} (known: --quick, --dir DIR)`);
  }
  return args;
}

export const committersMax = 256;

/**
 * Committers that each own a disjoint set of tasks and step their lifecycles, one transaction at a time. One
 * set of committersMax generators serves every phase (a phase of k committers runs the first k), so that each
 * generator's belief about its tasks' statuses stays true and every compare-and-set succeeds.
 */
class Committers {
  private readonly generators: TransitionGenerator[];
  latency = new Latency();
  commits = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(o: WorkloadOptions, seed: number) {
    this.generators = Array.from({ length: committersMax },
      (_, c) => new TransitionGenerator(o, { clientIndex: c, clientCount: committersMax, seed }));
  }

  start(engine: Engine, count: number): void {
    this.running = true;
    this.loops = this.generators.slice(0, count).map(async (generator) => {
      while (this.running) {
        const bytes = generator.nextBytes();
        const t0 = nowMs();
        const result = await engine.commit(bytes);
        this.latency.recordMs(nowMs() - t0);
        const error = transactionError(result);
        if (error !== null) throw new Error(`commit failed: ${error}`);
        this.commits++;
      }
    });
  }

  reset(): void {
    this.latency = new Latency();
    this.commits = 0;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

async function durableCommit(engine: Engine, c: Committers, tasks: number, committers: number, seconds: number,
  rows: Rows): Promise<void> {
  c.reset();
  c.start(engine, committers);
  await sleep(1000);
  c.reset();
  const before = await engine.writerStats();
  const t0 = nowMs();
  await sleep(seconds * 1000);
  const after = await engine.writerStats();
  const ms = nowMs() - t0;
  const commits = c.commits;
  const latency = c.latency;
  await c.stop();
  const syncs = after.logSyncs! - before.logSyncs!;
  const bytes = after.logBytesWritten! - before.logBytesWritten!;
  const fsyncMs = after.fsyncMsTotal! - before.fsyncMsTotal!;
  const common = { tasks, committers };
  rows.add({ name: 'durable_commit', value: perSecond(commits, ms), unit: 'transitions/s', ...common,
    fdatasyncPerS: perSecond(syncs, ms), transactionsPerGroup: round(commits / Math.max(1, syncs), 3),
    fsyncMsMean: round(fsyncMs / Math.max(1, syncs), 3), seconds,
    writerCommitUsPerTxn: round(1000 * (after.commitMsTotal! - before.commitMsTotal!) / Math.max(1, commits), 3),
    writerAppendMsPerGroup: round((after.appendMsTotal! - before.appendMsTotal!) / Math.max(1, syncs), 3),
    writerBusyShare: round((after.commitMsTotal! - before.commitMsTotal! + after.appendMsTotal! - before.appendMsTotal!) / ms, 3) });
  rows.add({ name: 'commit_p50_ms', value: round(latency.percentileMs(50), 3), unit: 'ms', ...common });
  rows.add({ name: 'commit_p99_ms', value: round(latency.percentileMs(99), 3), unit: 'ms', ...common });
  rows.add({ name: 'commit_p999_ms', value: round(latency.percentileMs(99.9), 3), unit: 'ms', ...common });
  rows.add({ name: 'log_bytes_per_transition', value: round(bytes / Math.max(1, commits), 3), unit: 'bytes', ...common,
    note: 'log bytes (framing included) / committed lifecycle steps; ~1 in 6 steps is a replacement (upsert + delete)' });
}

/** Commits `count` lifecycle steps with committersMax committers, as fast as the engine takes them. */
async function tail(engine: Engine, c: Committers, count: number): Promise<number> {
  c.reset();
  c.start(engine, committersMax);
  const t0 = nowMs();
  while (c.commits < count) await sleep(20);
  await c.stop();
  return nowMs() - t0;
}

/**
 * At `tasks`: snapshot time, commit p99.9 at 32 committers with and without a snapshot being written, then a
 * 100k-transaction log tail after the snapshot, and the time to reopen (recovery = snapshot + tail replay).
 */
async function snapshotAndRecovery(root: string, tasks: number, seconds: number, tailCount: number, rows: Rows):
  Promise<void> {
  const o = workloadOptions(tasks, 1);
  const dataDir = join(root, `recovery-${tasks}`);
  const quiet = { snapshot: { everyMs: 0, logBytes: 0 }, backup: { everyMs: 0 } };
  const engine = await Engine.open({ dataDir, ...quiet });
  log(`${tasks} tasks: bulk load`);
  await bulkLoadEngine(engine, o, tasks, rows);
  const c = new Committers(o, 11);
  log(`${tasks} tasks: commit latency without a snapshot (32 committers, ${seconds} s)`);
  c.start(engine, 32);
  await sleep(1000);
  c.reset();
  await sleep(seconds * 1000);
  const without = c.latency.percentileMs(99.9);
  const withoutCount = c.commits;
  log(`${tasks} tasks: snapshot while 32 committers go on`);
  c.reset();
  const snapshot = await engine.snapshot();
  const during = c.latency.percentileMs(99.9);
  const duringCount = c.commits;
  await c.stop();
  rows.add({ name: 'snapshot_p999_ratio', value: round(during / without, 3), unit: 'ratio', tasks, committers: 32,
    p999DuringMs: round(during, 3), p999WithoutMs: round(without, 3), commitsWithout: withoutCount,
    commitsDuring: duringCount, snapshotUnderLoadS: round(snapshot.ms / 1000, 3) });
  // The recovery base: a snapshot with no commits going on (its time is snapshot_s), then exactly the tail.
  log(`${tasks} tasks: snapshot without load`);
  const idle = await engine.snapshot();
  rows.add({ name: 'snapshot_s', value: round(idle.ms / 1000, 3), unit: 's', tasks, bytes: idle.bytes,
    chunks: idle.chunks, paced: 'the worker sleeps as long as it works (idleRatio 1): about twice the unpaced time',
    underLoadS: round(snapshot.ms / 1000, 3) });
  log(`${tasks} tasks: ${tailCount} transactions of log tail`);
  const tailMs = await tail(engine, c, tailCount);
  await engine.close();
  log(`${tasks} tasks: reopen`);
  const t0 = nowMs();
  const reopened = await Engine.open({ dataDir, ...quiet });
  const ms = nowMs() - t0;
  const recovery = reopened.recovery!;
  rows.add({ name: 'recovery_s', value: round(ms / 1000, 3), unit: 's', tasks, replayed: recovery.replayed,
    snapshotLoadS: round((recovery.snapshot?.ms ?? 0) / 1000, 3),
    replayS: round((recovery.ms - (recovery.snapshot?.ms ?? 0)) / 1000, 3), tailCommitS: round(tailMs / 1000, 3) });
  await reopened.close();
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const rows = new Rows();
  const root = mkdtempSync(join(args.dir, 'strata-bench-durability-'));
  const seconds = args.quick ? 2 : 5;
  try {
    const tasks = 100_000;
    const o = workloadOptions(tasks, 1);
    const engine = await Engine.open({ dataDir: join(root, 'commit'), snapshot: { everyMs: 0, logBytes: 0 },
      backup: { everyMs: 0 } });
    log(`${tasks} tasks: bulk load through the log`);
    await bulkLoadEngine(engine, o, tasks, rows);
    const committers = new Committers(o, 7);
    for (const count of [1, 32, committersMax]) {
      log(`durable_commit, committers = ${count}`);
      await durableCommit(engine, committers, tasks, count, seconds, rows);
    }
    await engine.close();
    rmSync(join(root, 'commit'), { recursive: true, force: true });
    for (const size of args.quick ? [100_000] : [100_000, 1_000_000]) {
      await snapshotAndRecovery(root, size, seconds, args.quick ? 20_000 : 100_000, rows);
      rmSync(join(root, `recovery-${size}`), { recursive: true, force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(rows.rows, null, 1)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench-durability: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
