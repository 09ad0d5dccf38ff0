/**
 * loadtest/report-html.ts: the report page is self-contained (no network reference), escapes every string from
 * the report, plots percentiles on the 1 / (1 − p) scale, and renders partial or odd reports without throwing.
 */
import test from 'ava';
import { renderHtml, percentileX, niceTicks, linearScale, polylinePoints, downsample, ratePoints, escapeHtml,
  normaliseReport, type LoadReport, type OperationReport } from '../loadtest/report-html.js';

const evilName = '<script>alert(1)</script>';

/** A seeded, deterministic report resembling a 60 s open-loop run with a snapshot in the middle. */
function realisticReport(): LoadReport {
  let seed = 7;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const op = (base: number, count: number): OperationReport => {
    const percentiles: [number, number][] = [];
    for (let k = 0; k <= 12; k++) {
      const p = 100 - 100 / 2 ** k; // 0, 50, 75, ..., 99.98
      percentiles.push([p, base * (1 + k * k * 0.2)]);
    }
    percentiles.push([100, base * 60]);
    return { count, errors: 3, throughput: count / 60, p50: base, p90: base * 2, p99: base * 9, p999: base * 20,
      p9999: base * 35, max: base * 60, rawP99: base * 4, percentiles };
  };
  const timeline = Array.from({ length: 60 }, (_, t) => ({
    t, ops: {
      put: { count: 1000 + Math.round(random() * 20), p50: 0.8, p99: t >= 30 && t < 33 ? 45 : 3, max: 50 },
      range: { count: 250, p50: 1.6, p99: 6 + random(), max: 12 },
    },
  }));
  const samples = Array.from({ length: 12 }, (_, i) => ({
    t: i * 5, metrics: { strata_commit_queue_depth: i % 4, strata_revision: i * 5000,
      process_resident_memory_bytes: (200 + i) * 2 ** 20 },
  }));
  return {
    scenario: 'scheduler-steady', mode: 'open', rate: 1250, durationS: 60, connections: 64, threads: 4,
    startedAt: '2025-01-02T03:04:05.000Z', url: 'ws://127.0.0.1:7420/',
    machine: { cpus: 16, memoryGiB: 62.7, node: 'v20.18.0' },
    generator: { cpuCores: 1.37, maxLagMs: 4.2, behindSeconds: 0, warnings: ['generator lag above 100 ms at t=31 s'] },
    operations: { put: op(0.8, 61_234), range: op(1.6, 15_000) },
    timeline, events: [{ t: 30, what: 'snapshot started' }, { t: 33, what: 'snapshot done' }],
    server: { samples },
    sweep: [{ rate: 1000, achieved: 1000, p99: 2.5, met: true }, { rate: 4000, achieved: 3100, p99: 250, met: false }],
    restart: { recoveryMs: 812, subscribers: 40, resumedWithoutGap: 40 },
  };
}

function count(html: string, needle: RegExp): number {
  return (html.match(needle) ?? []).length;
}

function assertWellFormed(t: import('ava').ExecutionContext, html: string): void {
  t.is(count(html, /<html[\s>]/g), 1);
  t.is(count(html, /<\/html>/g), 1);
  t.is(count(html, /<body>/g), 1);
  t.is(count(html, /<svg[\s>]/g), count(html, /<\/svg>/g), 'balanced svg');
  t.is(count(html, /<table>/g), count(html, /<\/table>/g), 'balanced table');
  t.is(count(html, /<figure>/g), count(html, /<\/figure>/g), 'balanced figure');
  t.false(/NaN|undefined|Infinity/.test(html.replace(/<title>.*?<\/title>/, '')), 'no NaN/undefined/Infinity');
}

test('a realistic report: one page, every operation and key figure, balanced svg', (t) => {
  const report = realisticReport();
  const html = renderHtml(report);
  assertWellFormed(t, html);
  t.true(html.startsWith('<!DOCTYPE html>'));
  for (const name of ['put', 'range']) t.true(html.includes(`>${name}<`), name);
  for (const figure of ['scheduler-steady', '61,234', '15,000', '1,250', 'v20.18.0', '2025-01-02T03:04:05.000Z',
    'ws://127.0.0.1:7420/', '7.2', '48.0', 'snapshot started', 'snapshot done', 'strata_commit_queue_depth',
    'strata_revision (rate /s)', 'process_resident_memory_bytes (MiB)', 'generator lag above 100 ms', '812',
    'coordinated omission', 'missed', '99.99%']) {
    t.true(html.includes(escapeHtml(figure)), figure);
  }
  for (const id of ['percentiles', 'latency-over-time', 'throughput-over-time', 'sweep', 'server-0']) {
    t.true(html.includes(`id="${id}"`), id);
  }
  t.true(html.includes('<h2>Restart</h2>'));
});

test('offline: nothing refers to the network, no script, no external resource', (t) => {
  const report = realisticReport();
  report.url = 'https://example.com/strata';
  const html = renderHtml(report);
  t.false(/\b(src|href)\s*=/i.test(html), 'no src= or href=');
  t.false(/@import|url\(/i.test(html), 'no css import or url()');
  t.false(/<script|<link|<iframe|<img/i.test(html));
  // The only http(s) text is the report's own url, shown as text.
  t.is(count(html, /https?:\/\//g), 1);
  t.false(html.replace('https://example.com/strata', '').includes('http'));
});

test('strings from the report are escaped, in text and attributes', (t) => {
  const report = realisticReport();
  report.operations[evilName] = report.operations.put!;
  report.timeline[0]!.ops[evilName] = { count: 1, p50: 1, p99: 1, max: 1 };
  report.scenario = '"><img src=x onerror=alert(2)>';
  report.events.push({ t: 10, what: '<b>boom</b>' });
  report.generator.warnings.push('<i>warn</i> & "quote"');
  report.server.samples[0]!.metrics['<evil metric>'] = 1;
  const html = renderHtml(report);
  assertWellFormed(t, html);
  t.false(html.includes(evilName));
  t.false(html.includes('<img'));
  t.false(html.includes('<b>boom'));
  t.false(html.includes('<evil'));
  t.true(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  t.true(html.includes('data-series="&lt;script&gt;alert(1)&lt;/script&gt;"'));
  t.true(html.includes('&lt;i&gt;warn&lt;/i&gt; &amp; &quot;quote&quot;'));
  t.is(count(html, /<script/gi), 0);
});

test('the percentile plot: x grows with the percentile, 90 / 99 / 99.9 % at even steps', (t) => {
  t.is(percentileX(0), 0);
  t.true(Math.abs(percentileX(90) - 1) < 1e-9);
  t.true(Math.abs(percentileX(99) - 2) < 1e-9);
  t.true(Math.abs(percentileX(99.9) - 3) < 1e-9);
  t.is(percentileX(100), 6);
  const html = renderHtml(realisticReport());
  const plot = /<svg id="percentiles"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
  const lines = [...plot.matchAll(/<polyline data-series="([^"]*)"[^>]*points="([^"]*)"/g)];
  t.deepEqual(lines.map((m) => m[1]), ['put', 'range']);
  for (const line of lines) {
    const xs = line[2]!.split(' ').map((pair) => Number(pair.split(',')[0]));
    t.is(xs.length, 14);
    for (let i = 1; i < xs.length; i++) t.true(xs[i]! > xs[i - 1]!, `${line[1]} x[${i}] ${xs[i]} > ${xs[i - 1]}`);
  }
  for (const label of ['90%', '99%', '99.9%', '99.99%', '99.999%']) t.true(plot.includes(`>${label}<`), label);
});

test('empty, minimal and odd reports render without throwing', (t) => {
  for (const input of [{}, null, undefined, [], 'nonsense', { operations: null, timeline: 'x', server: {} }]) {
    const html = renderHtml(input as unknown as LoadReport);
    assertWellFormed(t, html);
    t.true(html.includes('No operations were recorded.'));
  }
  const minimal = normaliseReport({ scenario: 'min' });
  t.is(minimal.sweep, null);
  t.is(minimal.restart, null);
  // One timeline point, zero latencies, one server sample, an empty sweep, a NaN, a percentile list of one point.
  const odd = realisticReport();
  odd.timeline = [{ t: 0, ops: { put: { count: 0, p50: 0, p99: 0, max: 0 } } }];
  odd.operations = { put: { count: 0, errors: 0, throughput: 0, p50: 0, p90: 0, p99: 0, p999: 0, p9999: 0, max: 0,
    rawP99: Number.NaN, percentiles: [[100, 0]] } };
  odd.server.samples = [{ t: 0, metrics: { strata_revision: 5, strata_commit_queue_depth: 0 } }];
  odd.events = [{ t: 99, what: 'outside the run' }];
  odd.sweep = [];
  const html = renderHtml(odd);
  assertWellFormed(t, html);
  t.true(html.includes('–'), 'NaN shows as a dash');
  t.true(html.includes('The sweep has no steps.'));
});

test('helpers: ticks, scale, polyline, downsample, rate', (t) => {
  t.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  t.deepEqual(niceTicks(0, 0.9, 3), [0, 0.5, 1], 'the last tick covers the max');
  t.deepEqual(niceTicks(0.3, 1.2, 4), [0.5, 1, 1.5]);
  t.deepEqual(niceTicks(3, 3), [3]);
  t.deepEqual(niceTicks(Number.NaN, 1), []);
  const s = linearScale(0, 10, 100, 200);
  t.is(s(5), 150);
  t.is(linearScale(1, 1, 0, 10)(1), 5);
  t.is(polylinePoints([{ x: 0, y: 0 }, { x: Number.NaN, y: 1 }, { x: 10, y: 10 }], s, s), '100.0,100.0 200.0,200.0');
  const many = Array.from({ length: 10_000 }, (_, i) => ({ x: i, y: i === 5003 ? 999 : 1 }));
  const kept = downsample(many, 100);
  t.true(kept.length <= 100);
  t.true(kept.some((p) => p.y === 999), 'a spike survives');
  t.deepEqual(ratePoints([{ x: 0, y: 0 }, { x: 5, y: 50 }, { x: 5, y: 60 }, { x: 10, y: 40 }]),
    [{ x: 5, y: 10 }, { x: 10, y: 0 }]);
});
