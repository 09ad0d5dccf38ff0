/**
 * loadtest/open-loop.ts (issue 6, first piece): the fixed-rate schedule, latency from intended times (coordinated
 * omission corrected), and histograms merged across worker threads. Clocks are given, never read: no timing here.
 */
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { OperationHistogram, Schedule, behindMs, type EncodedOperation } from '../loadtest/open-loop.js';

test('intended times are start + k / rate, and due() hands each out once, in order', (t) => {
  const s = new Schedule(1000, 5000); // one per ms
  t.deepEqual(s.due(4999), []);
  t.deepEqual(s.due(5000), [5000]);
  t.deepEqual(s.due(5003.5), [5001, 5002, 5003]);
  t.deepEqual(s.due(5003.9), []);
  t.is(s.issued, 4);
  t.is(s.nextDueMs(), 5004);
  t.deepEqual(s.due(5010, 2), [5004, 5005], 'at most max at a time');
  t.is(s.lagMs(5010), 4);
  t.false(s.behind(5010));
  t.true(s.behind(5006 + behindMs + 1));
  const slow = new Schedule(3, 0);
  t.deepEqual(slow.due(1000).map((x) => Math.round(x)), [0, 333, 667, 1000]);
  t.throws(() => new Schedule(0, 0), { instanceOf: RangeError });
  t.throws(() => new Schedule(Number.NaN, 0), { instanceOf: RangeError });
});

test('a stall shows in the corrected percentiles, not only in one request', (t) => {
  // 1000 req/s for 10 s; each answered in 1 ms, except that the server stalls 2 s at t = 5 s: the requests
  // intended during the stall are sent late (the generator waits for the connection) and answered at its end.
  const s = new Schedule(1000, 0);
  const h = new OperationHistogram();
  for (const intended of s.due(10_000)) {
    const sent = intended >= 5000 && intended < 7000 ? 7000 : intended; // held back by the stall
    h.record(intended, sent, sent + 1);
  }
  const summary = h.summary();
  t.is(summary.count, 10_001);
  // 20 % of the requests were intended during the stall: p90 is ~1 s from its intended time, the max ~2 s.
  t.true(summary.p90 > 900 && summary.p90 < 1100, `p90 ${summary.p90}`);
  t.true(summary.max > 1990 && summary.max < 2010, `max ${summary.max}`);
  t.is(summary.p50, 1);
  // Measured from the actual send, the stall disappears (what a closed-loop tester reports).
  t.is(summary.rawP99, 1);
});

test('histograms recorded in several worker threads merge into one', async (t) => {
  const file = fileURLToPath(new URL('./support/histogram-worker.js', import.meta.url));
  const run = (count: number, ms: number, errors: number) => new Promise<EncodedOperation>((resolve, reject) => {
    const worker = new Worker(file, { workerData: { count, ms, errors } });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const parts = await Promise.all([run(900, 1, 0), run(90, 10, 2), run(10, 100, 1)]);
  const merged = new OperationHistogram();
  for (const part of parts) merged.add(part);
  const s = merged.summary();
  t.is(s.count, 1000);
  t.is(s.errors, 3);
  t.is(s.p50, 1);
  // Ranks 1-900 are 1 ms, 901-990 are 10 ms, 991-1000 are 100 ms (3 significant digits).
  t.true(s.p90 >= 0.999 && s.p90 <= 1.001, `p90 ${s.p90}`);
  t.true(s.p99 >= 9.99 && s.p99 <= 10.01, `p99 ${s.p99}`);
  t.true(s.p999 >= 99.9 && s.p999 <= 100.1, `p99.9 ${s.p999}`);
  t.true(s.max >= 99.9 && s.max <= 100.1);
  t.throws(() => merged.add({ corrected: 'not base64 at all', raw: '', errors: 0 }));
});
