/**
 * `npm run bench:engine`: the engine's figures on the standard workload (shared reference workload.md) at 10k,
 * 100k and 1M tasks, in process, without a log or fsync. Owner: the benchmark process's main thread.
 *
 *   node --expose-gc dist/loadtest/bench-engine.js [--sizes 10000,100000,1000000] [--quick] [--hold-pin]
 *                                                  [--reader-threads N] [--changes] [--writer-only]
 *
 * Per size: (1) a WriterCore in this thread, bulk-loaded, then commit_single (publish every / per group of 64),
 * commit_batch64, commit_batch1000; dropped. (2) an Engine (writer worker + default reader pool), bulk-loaded
 * (bytes_per_task at 1M), then read_task, role and unscoped query latencies, read_job idle and under commits;
 * closed. stdout gets only the JSON array of rows at the end; progress and each row go to stderr.
 *
 * A phase that fails (a commit or a query answered with an error, a crash) adds a row named `failed` with the
 * error, the run goes on with the next phase that does not depend on it, and the exit code is 1.
 * --hold-pin holds a reader pin through the transition phases, so the writer reclaims nothing meanwhile: the
 * writer's figures when a long reader (a snapshot, a slow scan) holds an old revision; its rows say
 * `reclamation: "blocked"`. --changes: the writer encodes a change record per revision (an engine with a watcher,
 * EngineOptions.onChanges); rows say `changes: "on"`. --writer-only: phase (1) only.
 */
import { Engine } from '../daemon/engine.js';
import { type BenchArgs, collect, log, nowMs, parseArgs, PinHold, round, type Row, Rows } from './bench-support.js';
import {
  bulkLoadEngine, bytesPerTask, memoryBefore, readJob, readTask, type ReadCounts, summaries,
} from './bench-reads.js';
import { Transitions } from './bench-transitions.js';
import { bulkLoadWriter, newWriterCore, writerPhases, type WriterCounts } from './bench-writer.js';
import { workloadOptions } from './workload.js';

const seed = 1;
const bytesPerTaskSize = 1_000_000;           // the target is stated at 1M tasks with 20k configs
const bytesPerTaskConfigs = 20_000;

// About 5 s per figure at the rates seen so far (10-40k/s); --hold-pin keeps every retired block (~13 KB a
// single commit at 100k tasks), so it commits less to stay within the 3 GiB arena at 1M tasks.
const writerCountsFull: WriterCounts = { single: 100_000, batchTransitions: 100_000, warmup: 10_000 };
const writerCountsHoldPin: WriterCounts = { single: 40_000, batchTransitions: 40_000, warmup: 5_000 };
const writerCountsQuick: WriterCounts = { single: 5_000, batchTransitions: 8_000, warmup: 1_000 };
const readCountsFull: ReadCounts = { seconds: 5, inFlight: 512, latencySamples: 2_000, commitRate: 10_000 };
const readCountsQuick: ReadCounts = { seconds: 1, inFlight: 512, latencySamples: 200, commitRate: 10_000 };

/** Runs one phase; a failure becomes a `failed` row (and exit code 1) instead of ending the run. */
async function attempt(rows: Rows, tasks: number, phase: string, run: () => Promise<void> | void): Promise<boolean> {
  try {
    await run();
    return true;
  } catch (error) {
    const message = (error as Error)?.message ?? String(error);
    log(`${tasks} tasks: phase ${phase} failed: ${(error as Error)?.stack ?? message}`);
    rows.add({ name: 'failed', tasks, value: 0, unit: 'none', phase, error: message });
    process.exitCode = 1;
    return false;
  }
}

async function writerAlone(tasks: number, counts: WriterCounts, args: BenchArgs, rows: Rows): Promise<void> {
  const o = workloadOptions(tasks, seed);
  log(`${tasks} tasks: writer alone, bulk load`);
  const { writer, control } = newWriterCore(args.holdPin, args.changes);
  if (!await attempt(rows, tasks, 'bulk_load writer_core', () => { bulkLoadWriter(writer, o, tasks, rows); })) return;
  const transitions = new Transitions(o, tasks, seed);
  const hold = args.holdPin ? new PinHold(control) : null;
  await attempt(rows, tasks, 'commit (writer alone)',
    () => writerPhases(writer, transitions, tasks, counts, hold === null ? 'on' : 'blocked', rows));
  hold?.release();
}

async function engine(tasks: number, counts: ReadCounts, args: BenchArgs, rows: Rows): Promise<void> {
  const o = tasks === bytesPerTaskSize ? { ...workloadOptions(tasks, seed), distinctConfigs: bytesPerTaskConfigs }
    : workloadOptions(tasks, seed);
  const configs = o.distinctConfigs ?? o.roles * o.envs * o.jobsPerEnv;
  log(`${tasks} tasks: engine, bulk load`);
  const opened = await Engine.open({
    ...(args.holdPin ? { pinMsMax: PinHold.pinMsMax } : {}),
    ...(args.readerThreads !== undefined ? { readerThreads: args.readerThreads } : {}),
    ...(args.changes ? { onChanges: () => undefined } : {}),
  });
  try {
    const loaded = await attempt(rows, tasks, 'bulk_load engine', async () => {
      const before = await memoryBefore(opened);
      await bulkLoadEngine(opened, o, tasks, rows);
      await bytesPerTask(opened, before, tasks, configs, tasks === bytesPerTaskSize ? rows : null);
    });
    if (!loaded) return;
    log(`${tasks} tasks: read_task`);
    await attempt(rows, tasks, 'read_task', () => readTask(opened, o, tasks, counts, seed, rows));
    log(`${tasks} tasks: summaries and unscoped query`);
    await attempt(rows, tasks, 'summaries', () => summaries(opened, o, tasks, counts, seed, rows));
    log(`${tasks} tasks: read_job, idle then under commits`);
    await attempt(rows, tasks, 'read_job',
      () => readJob(opened, o, tasks, counts, seed, new Transitions(o, tasks, seed + 1), args.holdPin, rows));
    log(`${tasks} tasks: writer stats ${JSON.stringify(await opened.writerStats())}`);
  } finally {
    await opened.close();
  }
}

/** commit_single at 1M over 10k (the issue: within 1.5x), per publish variant. */
function ratios(rows: Rows, sizes: number[]): void {
  const small = Math.min(...sizes);
  const large = Math.max(...sizes);
  if (small === large) return;
  for (const publish of ['every', 'group']) {
    const a = rows.find('commit_single', small, 'publish', publish);
    const b = rows.find('commit_single', large, 'publish', publish);
    if (a === undefined || b === undefined) continue;
    rows.add({ name: 'commit_single_ratio', tasks: large, value: round(a.value / b.value, 3), unit: 'x',
      publish, of: `${small} / ${large} tasks`, smallCommitsPerSecond: a.value, largeCommitsPerSecond: b.value });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const writerCounts = args.quick ? writerCountsQuick : args.holdPin ? writerCountsHoldPin : writerCountsFull;
  const readCounts = args.quick ? readCountsQuick : readCountsFull;
  const rows = new Rows();
  const t0 = nowMs();
  log(`sizes ${args.sizes.join(', ')}${args.quick ? ' (quick)' : ''}${args.holdPin ? ' (--hold-pin)' : ''}; ` +
    `node ${process.version}`);
  for (const tasks of args.sizes) {
    await writerAlone(tasks, writerCounts, args, rows);
    await collect();
    if (args.writerOnly) continue;
    await engine(tasks, readCounts, args, rows);
    await collect();
  }
  ratios(rows, args.sizes);
  log(`done in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  process.stdout.write(`${JSON.stringify(rows.rows satisfies Row[], null, 1)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench-engine failed: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exitCode = 1;
});
