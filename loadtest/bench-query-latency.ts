/**
 * Sequential round trips of one trivial query (SchedulerQuery) through Engine.query, one reader thread: the fixed
 * cost of the path main thread -> reader pool -> reader -> back, without a network or a store to read. Used to
 * check that the supervised reader pool (daemon/reader-pool.ts) adds nothing measurable (docs/benchmarks.md,
 * "Operations"). Prints one JSON row per round.
 *   node dist/loadtest/bench-query-latency.js [--rounds 5] [--queries 5000] [--warmup 2000]
 */
import { Engine } from '../daemon/engine.js';
import { encode, make } from '../core/codec.js';
import * as f from '../core/fbs/strata.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at < 0 ? fallback : Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

const rounds = option('rounds', 5);
const queries = option('queries', 5000);
const warmup = option('warmup', 2000);
const engine = await Engine.open({ readerThreads: 1 });
const request = encode(make(f.QueryRequestT, { queryType: f.Query.SchedulerQuery, query: make(f.SchedulerQueryT, {}) }));
for (let i = 0; i < warmup; i++) await engine.query(request);
const rows: Record<string, unknown>[] = [];
for (let round = 0; round < rounds; round++) {
  const started = performance.now();
  for (let i = 0; i < queries; i++) await engine.query(request);
  rows.push({ name: 'query_round_trip_us', round, queries, value: Math.round((performance.now() - started) / queries * 10_000) / 10, unit: 'us' });
}
await engine.close();
process.stdout.write(`${JSON.stringify(rows, null, 1)}\n`);
