/**
 * Snapshot benchmark: bulk-loads the standard workload into a WriterCore (this thread, no log), writes a snapshot
 * of it, loads the snapshot into a fresh WriterCore, and checks that both answer the same. Owner: the benchmark
 * process's main thread. Prints one JSON row per size on stdout (progress on stderr).
 * Usage: node dist/loadtest/bench-snapshot.js [--sizes 100000,1000000] [--directory /tmp/x]
 *        node dist/loadtest/bench-snapshot.js --load FILE   (loads a kept snapshot in a fresh process, as recovery does:
 *                                                          no original store in memory beside it)
 * Invariants: the load is timed alone (file to published revision); the write is timed in this thread (the daemon
 * runs it in a worker while the writer goes on).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeQueryResponse } from '../core/codec.js';
import * as layout from '../core/layout.js';
import { StoreReader } from '../core/store.js';
import { ArenaView } from '../core/arena.js';
import { encode } from '../core/codec.js';
import { JobSummaryQueryT, Query, QueryRequestT, RoleSummaryQueryT, TaskQueryT } from '../core/fbs/strata.js';
import { pinClockMs, ReaderSlot } from '../workers/reader/pin.js';
import { QueryRunner } from '../workers/reader/queries.js';
import { writeSnapshot } from '../workers/snapshot/write.js';
import { loadSnapshot } from '../workers/writer/restore.js';
import type { WriterCore } from '../workers/writer/writer.js';
import { newWriterCore } from './bench-writer.js';
import { transactionError } from './bench-support.js';
import { bulkLoadTransactionBytes, workloadOptions } from './workload.js';

function args(argv: string[]): { sizes: number[]; directory: string | null; load: string | null } {
  let sizes = [100_000];
  let directory: string | null = null;
  let load: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--sizes') sizes = argv[++i]!.split(',').map(Number);
    else if (argv[i] === '--directory') directory = argv[++i]!;
    else if (argv[i] === '--load') load = argv[++i]!;
    else throw new Error(`unknown argument ${argv[i]} (known: --sizes N,N --directory PATH --load FILE)`);
  }
  return { sizes, directory, load };
}

/** Loads a kept snapshot into a fresh WriterCore: wall and CPU time (all threads: GC and compilers too). */
function loadAlone(path: string): Record<string, number | string> {
  const { writer } = newWriterCore(false);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const loaded = loadSnapshot(writer, path);
  const loadMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    name: 'snapshot_load', tasks: loaded.counts.tasks, bytes: loaded.bytes, chunks: loaded.chunks,
    loadMs: Math.round(loadMs), cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    systemMs: Math.round(cpu.system / 1000), loadTasksPerSecond: Math.round(loaded.counts.tasks / (loadMs / 1000)),
    arenaBytesUsed: writer.stats().arenaBytesUsed,
  };
}

/** The answers of a few whole-store queries, read under a pin of the published revision. */
function answers(writer: WriterCore, arena: SharedArrayBuffer, control: SharedArrayBuffer): string[] {
  const view = new ArenaView(arena);
  const store = new StoreReader(view, new Uint32Array(layout.rootWords));
  const slot = new ReaderSlot(control, 0x7ffc_0000);
  const root = slot.pin(pinClockMs());
  store.roots.set(view.u32.subarray(root >>> 2, (root >>> 2) + layout.rootWords));
  store.revision = view.f64[(root >>> 3) + layout.rootRevisionF64]!;
  const runner = new QueryRunner(view, store, () => slot.expired());
  const queries = [
    new QueryRequestT(Query.TaskQuery, Object.assign(new TaskQueryT(), { limit: 2000, offset: 12345 })),
    new QueryRequestT(Query.RoleSummaryQuery, new RoleSummaryQueryT()),
    new QueryRequestT(Query.JobSummaryQuery, new JobSummaryQueryT()),
  ];
  const out = queries.map((query) => JSON.stringify(decodeQueryResponse(runner.run(encode(query))),
    (_, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)));
  slot.release();
  slot.close();
  void writer;
  return out;
}

function run(tasks: number, directory: string): Record<string, number | string | boolean> {
  const original = newWriterCore(false);
  let t0 = performance.now();
  for (const bytes of bulkLoadTransactionBytes(workloadOptions(tasks), 1000)) {
    const error = transactionError(original.writer.commit(bytes));
    if (error !== null) throw new Error(`bulk load failed: ${error}`);
    original.writer.publish();
  }
  const buildMs = performance.now() - t0;
  process.stderr.write(`${tasks} tasks built in ${Math.round(buildMs)} ms\n`);
  const arena = original.writer.tables.view.sab;
  const written = writeSnapshot({
    arena, control: original.control, slotIndex: -1, root: 0, directory, revision: original.writer.revision, term: 0,
    idempotency: original.writer.idempotencyEntries(),
  });
  process.stderr.write(`written: ${JSON.stringify(written)}\n`);
  const copy = newWriterCore(false);
  t0 = performance.now();
  const loaded = loadSnapshot(copy.writer, written.path);
  const loadMs = performance.now() - t0;
  process.stderr.write(`loaded in ${Math.round(loadMs)} ms\n`);
  const same = JSON.stringify(answers(original.writer, arena, original.control)) ===
    JSON.stringify(answers(copy.writer, copy.writer.tables.view.sab, copy.control));
  const statsSame = original.writer.stats().taskCount === copy.writer.stats().taskCount &&
    original.writer.stats().configCount === copy.writer.stats().configCount;
  return {
    name: 'snapshot', tasks, bytes: written.bytes, chunks: written.chunks, writeMs: Math.round(written.ms),
    writeTasksPerSecond: Math.round(tasks / (written.ms / 1000)), loadMs: Math.round(loadMs),
    loadTasksPerSecond: Math.round(tasks / (loadMs / 1000)), loadedRevision: loaded.revision,
    arenaBytesUsed: copy.writer.stats().arenaBytesUsed, sameAnswers: same && statsSame,
  };
}

const options = args(process.argv.slice(2));
if (options.load !== null) {
  process.stdout.write(`${JSON.stringify(loadAlone(options.load))}\n`);
} else {
  const directory = options.directory ?? mkdtempSync(join(tmpdir(), 'strata-bench-snapshot-'));
  try {
    for (const size of options.sizes) process.stdout.write(`${JSON.stringify(run(size, directory))}\n`);
  } finally {
    if (options.directory === null) rmSync(directory, { recursive: true, force: true });
  }
}
