/**
 * Renders a load generator's report.json (loadtest/loadtest.ts) as one self-contained HTML page. Owner: whoever
 * holds a finished report (the load generator's main thread, the CLI, a test); pure: no fs, no clock, no network.
 *
 * Invariants:
 * - Every string taken from the report passes through `escapeHtml` before it reaches the page, in text and in
 *   attributes alike; colours, sizes and numbers in markup are ours.
 * - The page references nothing outside itself: inline CSS and inline SVG drawn here, no script, no font, no
 *   src= or href= at all, so it reads the same offline, from a file, years later.
 * - Any input, however partial or odd (no operations, one timeline point, all-zero latencies, missing sections,
 *   NaN), renders without throwing: missing sections are left out, a number that is not finite shows as "–" and
 *   is not plotted.
 */
import { behindMs } from './open-loop.js';

export interface OperationReport {
  count: number; errors: number; throughput: number;
  p50: number; p90: number; p99: number; p999: number; p9999: number; max: number; rawP99: number;
  /** [percentile 0..100, latency ms], increasing in percentile, ends at 100. */
  percentiles: [number, number][];
}
export interface TimelineOperation { count: number; p50: number; p99: number; max: number }
export interface TimelinePoint { t: number; ops: Record<string, TimelineOperation> }
export interface SweepStep { rate: number; achieved: number; p99: number; met: boolean }
export interface LoadReport {
  scenario: string; mode: 'open' | 'closed' | 'sweep'; rate: number; durationS: number; connections: number;
  threads: number; startedAt: string; url: string;
  machine: { cpus: number; memoryGiB: number; node: string };
  generator: { cpuCores: number; maxLagMs: number; behindSeconds: number; warnings: string[] };
  operations: Record<string, OperationReport>;
  timeline: TimelinePoint[];
  events: { t: number; what: string }[];
  server: { samples: { t: number; metrics: Record<string, number> }[] };
  sweep: SweepStep[] | null;
  restart: { recoveryMs: number; subscribers: number; resumedWithoutGap: number } | null;
}

export const chartPointsMax = 1500;     // per series: an hour at one point a second, still a light SVG
export const serverMetricChartsMax = 48; // one small chart each; more is a metrics dump, not a report
export const percentileXMax = 6;        // 99.9999 %: beyond it (and at 100 %) points sit on the right edge
const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

// ---------- small pure helpers ----------

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;');
}

function finite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function num(value: unknown): number {
  return finite(value) ? value : Number.NaN;
}

/** Latency in ms with a precision that suits its size. */
export function formatMs(value: number): string {
  if (!finite(value)) return '–';
  const a = Math.abs(value);
  return value.toFixed(a === 0 ? 0 : a < 1 ? 3 : a < 10 ? 2 : a < 100 ? 1 : 0);
}

export function formatCount(value: number): string {
  if (!finite(value)) return '–';
  const rounded = Math.abs(value) >= 100 || Number.isInteger(value) ? Math.round(value).toString() : value.toFixed(1);
  return rounded.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Short tick label: 950, 1.2k, 3.4M, 1.1G; small values keep their decimals. */
export function formatSi(value: number): string {
  if (!finite(value)) return '–';
  const a = Math.abs(value);
  if (a >= 1e9) return `${+(value / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toPrecision(3)}`;
}

/** Maps [d0, d1] onto [r0, r1]; an empty domain maps to the middle of the range. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const span = d1 - d0;
  if (!(span > 0)) return () => (r0 + r1) / 2;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** Round-number ticks from the first at or above min to the first at or above max: 1, 2 or 5 times 10^k apart. */
export function niceTicks(min: number, max: number, countWanted = 5): number[] {
  if (!finite(min) || !finite(max)) return [];
  if (max <= min) return [min];
  const raw = (max - min) / Math.max(1, countWanted);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  const last = Math.ceil(max / step - 1e-9) * step;
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= last + step * 1e-9 && ticks.length < 50; v += step) {
    ticks.push(+v.toPrecision(12));
  }
  return ticks;
}

/** HdrHistogram plot x: log10(1 / (1 − p)), so 90 % → 1, 99 % → 2, 99.9 % → 3; capped at percentileXMax. */
export function percentileX(percentile: number): number {
  const p = Math.min(Math.max(percentile, 0), 100) / 100;
  if (p >= 1) return percentileXMax;
  return Math.min(Math.log10(1 / (1 - p)), percentileXMax);
}

export interface Point { x: number; y: number }

/** SVG polyline points, dropping points that are not finite. */
export function polylinePoints(points: Point[], sx: (v: number) => number, sy: (v: number) => number): string {
  const parts: string[] = [];
  for (const p of points) {
    if (finite(p.x) && finite(p.y)) parts.push(`${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`);
  }
  return parts.join(' ');
}

/** Keeps at most `max` points, taking the highest y of each run so spikes survive. */
export function downsample(points: Point[], max = chartPointsMax): Point[] {
  if (points.length <= max) return points;
  const size = Math.ceil(points.length / max);
  const kept: Point[] = [];
  for (let i = 0; i < points.length; i += size) {
    let best = points[i]!;
    for (let j = i + 1; j < Math.min(i + size, points.length); j++) {
      if (points[j]!.y > best.y) best = points[j]!;
    }
    kept.push(best);
  }
  return kept;
}

// ---------- the chart ----------

export interface Series { name: string; color: string; dashed: boolean; points: Point[] }
export interface Tick { value: number; label: string }
export interface Marker { x: number; label: string }
export interface ChartSpec {
  id: string; title: string; xLabel: string; yLabel: string; series: Series[];
  width: number; height: number;
  xDomain?: [number, number]; xTicks?: Tick[]; markers?: Marker[]; dots?: boolean;
}

function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!finite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

function chartFrame(spec: ChartSpec): { sx: (v: number) => number; sy: (v: number) => number;
  xTicks: Tick[]; yTicks: number[]; left: number; right: number; top: number; bottom: number } {
  const left = 54;
  const right = spec.width - 12;
  const top = 14;
  const bottom = spec.height - 34;
  const all = spec.series.flatMap((s) => s.points);
  let [x0, x1] = spec.xDomain ?? extent(all.map((p) => p.x));
  if (x1 <= x0) { x0 -= 0.5; x1 += 0.5; }
  const yMaxSeen = extent(all.map((p) => p.y))[1];
  const yTicks = niceTicks(0, yMaxSeen > 0 ? yMaxSeen * 1.05 : 1, Math.max(2, Math.floor(spec.height / 40)));
  const y1 = Math.max(yTicks[yTicks.length - 1] ?? 1, yMaxSeen);
  const xTicks = spec.xTicks ?? niceTicks(x0, x1, Math.floor(spec.width / 80)).map((v) => ({ value: v, label: formatSi(v) }));
  return { sx: linearScale(x0, x1, left, right), sy: linearScale(0, y1 > 0 ? y1 : 1, bottom, top),
    xTicks: xTicks.filter((t) => t.value >= x0 && t.value <= x1), yTicks, left, right, top, bottom };
}

function axes(spec: ChartSpec, f: ReturnType<typeof chartFrame>): string {
  const out: string[] = [];
  for (const v of f.yTicks) {
    const y = f.sy(v).toFixed(1);
    out.push(`<line class="grid" x1="${f.left}" x2="${f.right}" y1="${y}" y2="${y}"/>`,
      `<text x="${f.left - 4}" y="${y}" text-anchor="end" dy="0.32em">${escapeHtml(formatSi(v))}</text>`);
  }
  for (const t of f.xTicks) {
    const xValue = f.sx(t.value);
    const x = xValue.toFixed(1);
    const anchor = xValue > f.right - 24 ? 'end' : 'middle'; // the last label stays inside the picture
    out.push(`<line class="grid" x1="${x}" x2="${x}" y1="${f.top}" y2="${f.bottom}"/>`,
      `<text x="${x}" y="${f.bottom + 13}" text-anchor="${anchor}">${escapeHtml(t.label)}</text>`);
  }
  out.push(`<rect class="frame" x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}"/>`,
    `<text x="${(f.left + f.right) / 2}" y="${spec.height - 4}" text-anchor="middle">${escapeHtml(spec.xLabel)}</text>`,
    `<text transform="translate(11 ${(f.top + f.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(spec.yLabel)}</text>`);
  return out.join('');
}

function markers(spec: ChartSpec, f: ReturnType<typeof chartFrame>): string {
  const out: string[] = [];
  (spec.markers ?? []).forEach((m, i) => {
    if (!finite(m.x)) return;
    const x = f.sx(m.x);
    if (x < f.left - 0.5 || x > f.right + 0.5) return;
    const y = f.top + 10 + (i % 3) * 11;
    out.push(`<g class="event"><title>${escapeHtml(m.label)}</title>`,
      `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${f.top}" y2="${f.bottom}"/>`,
      `<text x="${(x + 3).toFixed(1)}" y="${y}">${escapeHtml(m.label)}</text></g>`);
  });
  return out.join('');
}

export function renderChart(spec: ChartSpec): string {
  const f = chartFrame(spec);
  const lines = spec.series.map((s) => {
    const points = downsample(s.points);
    const dash = s.dashed ? ' stroke-dasharray="4 3"' : '';
    const dots = spec.dots === true
      ? points.filter((p) => finite(p.x) && finite(p.y))
        .map((p) => `<circle cx="${f.sx(p.x).toFixed(1)}" cy="${f.sy(p.y).toFixed(1)}" r="2.5" fill="${s.color}"/>`).join('')
      : '';
    return `<polyline data-series="${escapeHtml(s.name)}" fill="none" stroke="${s.color}" stroke-width="1.5"${dash} points="${polylinePoints(points, f.sx, f.sy)}"/>${dots}`;
  });
  return `<figure><figcaption>${escapeHtml(spec.title)}</figcaption>${legend(spec.series)}` +
    `<svg id="${escapeHtml(spec.id)}" viewBox="0 0 ${spec.width} ${spec.height}" width="${spec.width}" height="${spec.height}" role="img">` +
    `${axes(spec, f)}${lines.join('')}${markers(spec, f)}</svg></figure>`;
}

function legend(series: Series[]): string {
  if (series.length < 2) return '';
  const items = series.map((s) =>
    `<span><i style="border-top:2px ${s.dashed ? 'dashed' : 'solid'} ${s.color}"></i>${escapeHtml(s.name)}</span>`);
  return `<div class="legend">${items.join('')}</div>`;
}

// ---------- input normalisation: anything in, a full LoadReport out ----------

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
}

function normaliseOperation(value: unknown): OperationReport {
  const o = record(value);
  const percentiles = list(o.percentiles)
    .filter((p): p is [number, number] => Array.isArray(p) && finite(p[0]) && finite(p[1]))
    .map((p) => [p[0], p[1]] as [number, number]);
  return { count: num(o.count), errors: num(o.errors), throughput: num(o.throughput), p50: num(o.p50),
    p90: num(o.p90), p99: num(o.p99), p999: num(o.p999), p9999: num(o.p9999), max: num(o.max),
    rawP99: num(o.rawP99), percentiles };
}

export function normaliseReport(input: unknown): LoadReport {
  const r = record(input);
  const machine = record(r.machine);
  const generator = record(r.generator);
  const operations: Record<string, OperationReport> = {};
  for (const [name, op] of Object.entries(record(r.operations))) operations[name] = normaliseOperation(op);
  const timeline = list(r.timeline).map(record).filter((p) => finite(p.t)).map((p) => {
    const ops: Record<string, TimelineOperation> = {};
    for (const [name, o] of Object.entries(record(p.ops))) {
      const v = record(o);
      ops[name] = { count: num(v.count), p50: num(v.p50), p99: num(v.p99), max: num(v.max) };
    }
    return { t: p.t as number, ops };
  });
  const samples = list(record(r.server).samples).map(record).filter((s) => finite(s.t)).map((s) => ({
    t: s.t as number,
    metrics: Object.fromEntries(Object.entries(record(s.metrics)).filter(([, v]) => finite(v))) as Record<string, number>,
  }));
  const restart = r.restart === null || r.restart === undefined ? null : record(r.restart);
  const mode = r.mode === 'closed' || r.mode === 'sweep' ? r.mode : 'open';
  return {
    scenario: str(r.scenario), mode, rate: num(r.rate), durationS: num(r.durationS), connections: num(r.connections),
    threads: num(r.threads), startedAt: str(r.startedAt), url: str(r.url),
    machine: { cpus: num(machine.cpus), memoryGiB: num(machine.memoryGiB), node: str(machine.node) },
    generator: { cpuCores: num(generator.cpuCores), maxLagMs: num(generator.maxLagMs),
      behindSeconds: num(generator.behindSeconds), warnings: list(generator.warnings).map(str) },
    operations, timeline,
    events: list(r.events).map(record).filter((e) => finite(e.t)).map((e) => ({ t: e.t as number, what: str(e.what) })),
    server: { samples },
    sweep: Array.isArray(r.sweep) ? r.sweep.map(record).map((s) => ({ rate: num(s.rate), achieved: num(s.achieved),
      p99: num(s.p99), met: s.met === true })) : null,
    restart: restart === null ? null : { recoveryMs: num(restart.recoveryMs), subscribers: num(restart.subscribers),
      resumedWithoutGap: num(restart.resumedWithoutGap) },
  };
}

// ---------- sections ----------

function colorOf(names: string[], name: string): string {
  return palette[Math.max(0, names.indexOf(name)) % palette.length]!;
}

function header(r: LoadReport): string {
  const rows: [string, string][] = [
    ['mode', r.mode], ['rate', `${formatCount(r.rate)} /s`], ['duration', `${formatCount(r.durationS)} s`],
    ['connections', formatCount(r.connections)], ['threads', formatCount(r.threads)], ['started', r.startedAt],
    ['machine', `${formatCount(r.machine.cpus)} CPUs, ${formatCount(r.machine.memoryGiB)} GiB, node ${r.machine.node}`],
    ['url', r.url],
  ];
  return `<h1>strata load test: ${escapeHtml(r.scenario || '(unnamed)')}</h1>` + definitionList(rows);
}

function definitionList(rows: [string, string][]): string {
  return `<dl>${rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>`;
}

function generatorHealth(r: LoadReport): string {
  const g = r.generator;
  const lagBad = finite(g.maxLagMs) && g.maxLagMs > behindMs;
  const behindBad = finite(g.behindSeconds) && g.behindSeconds > 0;
  const warnings = g.warnings.length === 0
    ? '<p class="ok">No generator warnings.</p>'
    : `<ul class="warn">${g.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>`;
  return `<h2>Generator health</h2><dl><dt>CPU cores used</dt><dd>${escapeHtml(formatMs(g.cpuCores))}</dd>` +
    `<dt>max lag</dt><dd${lagBad ? ' class="bad"' : ''}>${escapeHtml(formatMs(g.maxLagMs))} ms</dd>` +
    `<dt>seconds behind schedule</dt><dd${behindBad ? ' class="bad"' : ''}>${escapeHtml(formatCount(g.behindSeconds))}</dd></dl>` +
    warnings;
}

function operationTable(r: LoadReport): string {
  const names = Object.keys(r.operations);
  const intro = '<p>Latencies count from the intended send time of each request, not from when it was sent: ' +
    'coordinated omission is corrected, so a stall shows in every request it held back. ' +
    '"raw p99" counts from the actual send, for comparison.</p>';
  if (names.length === 0) return `<h2>Operations</h2><p>No operations were recorded.</p>`;
  const head = ['operation', 'count', 'errors', 'throughput /s', 'p50', 'p90', 'p99', 'p99.9', 'p99.99', 'max', 'raw p99']
    .map((h) => `<th>${h}</th>`).join('');
  const rows = names.map((name) => {
    const o = r.operations[name]!;
    const ms = [o.p50, o.p90, o.p99, o.p999, o.p9999, o.max, o.rawP99].map((v) => `<td>${escapeHtml(formatMs(v))}</td>`);
    const errorClass = finite(o.errors) && o.errors > 0 ? ' class="bad"' : '';
    return `<tr><th scope="row"><i style="background:${colorOf(names, name)}"></i>${escapeHtml(name)}</th>` +
      `<td>${escapeHtml(formatCount(o.count))}</td><td${errorClass}>${escapeHtml(formatCount(o.errors))}</td>` +
      `<td>${escapeHtml(formatCount(o.throughput))}</td>${ms.join('')}</tr>`;
  });
  return `<h2>Operations</h2>${intro}<table><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>` +
    '<p class="note">Latencies in ms.</p>';
}

export const percentileTicks: Tick[] = [
  { value: 0, label: '0%' }, { value: 1, label: '90%' }, { value: 2, label: '99%' }, { value: 3, label: '99.9%' },
  { value: 4, label: '99.99%' }, { value: 5, label: '99.999%' }, { value: 6, label: '99.9999%' },
];

function percentilePlot(r: LoadReport): string {
  const names = Object.keys(r.operations).filter((n) => r.operations[n]!.percentiles.length > 0);
  if (names.length === 0) return '';
  const series = names.map((name) => ({
    name, color: colorOf(Object.keys(r.operations), name), dashed: false,
    points: r.operations[name]!.percentiles.map(([p, ms]) => ({ x: percentileX(p), y: ms })),
  }));
  const xMaxSeen = extent(series.flatMap((s) => s.points.map((p) => p.x)))[1];
  const xMax = Math.max(5, Math.ceil(xMaxSeen));
  return '<h2>Latency by percentile</h2><p class="note">Each line ends at its max (100 %), drawn at the right ' +
    'edge; the scale of 1 / (1 − p) gives each added nine the same width.</p>' +
    renderChart({ id: 'percentiles', title: 'Latency by percentile (coordinated omission corrected)',
    xLabel: 'percentile', yLabel: 'latency ms', series, width: 760, height: 280,
    xDomain: [0, xMax], xTicks: percentileTicks.filter((t) => t.value <= xMax) });
}

function timelineCharts(r: LoadReport): string {
  if (r.timeline.length === 0) return '';
  const all = Object.keys(r.operations);
  const names = [...new Set([...all, ...r.timeline.flatMap((p) => Object.keys(p.ops))])];
  const markerList = r.events.map((e) => ({ x: e.t, label: e.what }));
  const latency: Series[] = [];
  const throughput: Series[] = [];
  const widthS = bucketSeconds(r.timeline);
  for (const name of names) {
    const color = colorOf(names, name);
    const pick = (f: (o: TimelineOperation) => number): Point[] =>
      r.timeline.flatMap((p) => (p.ops[name] === undefined ? [] : [{ x: p.t, y: f(p.ops[name]!) }]));
    latency.push({ name: `${name} p99`, color, dashed: false, points: pick((o) => o.p99) },
      { name: `${name} p50`, color, dashed: true, points: pick((o) => o.p50) });
    throughput.push({ name, color, dashed: false, points: pick((o) => o.count / widthS) });
  }
  const dots = r.timeline.length === 1;
  return '<h2>Over time</h2><p class="note">Vertical lines mark events reported by the generator.</p>' +
    renderChart({ id: 'latency-over-time', title: 'Latency per second: p99 (solid) and p50 (dashed)', xLabel: 'time s',
      yLabel: 'latency ms', series: latency, width: 760, height: 260, markers: markerList, dots }) +
    renderChart({ id: 'throughput-over-time', title: 'Throughput per second', xLabel: 'time s', yLabel: 'ops /s',
      series: throughput, width: 760, height: 220, markers: markerList, dots });
}

/** Width of a timeline bucket: the smallest positive gap between points, or 1 s. */
function bucketSeconds(timeline: TimelinePoint[]): number {
  let width = Infinity;
  for (let i = 1; i < timeline.length; i++) {
    const gap = timeline[i]!.t - timeline[i - 1]!.t;
    if (gap > 0 && gap < width) width = gap;
  }
  return finite(width) ? width : 1;
}

/** A counter (name ending in _total, or a revision number) is drawn as its rate; anything else as it is. */
export function isCounterName(name: string): boolean {
  return /_total$|_count$|revision/.test(name);
}

export function ratePoints(points: Point[]): Point[] {
  const out: Point[] = [];
  for (let i = 1; i < points.length; i++) {
    const dt = points[i]!.x - points[i - 1]!.x;
    if (dt > 0) out.push({ x: points[i]!.x, y: Math.max(0, (points[i]!.y - points[i - 1]!.y) / dt) });
  }
  return out;
}

function serverCharts(r: LoadReport): string {
  const samples = r.server.samples;
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.metrics)))].sort().slice(0, serverMetricChartsMax);
  if (names.length === 0) return '';
  const markerList = r.events.map((e) => ({ x: e.t, label: e.what }));
  const charts = names.map((name, i) => {
    const raw = samples.flatMap((s) => (s.metrics[name] === undefined ? [] : [{ x: s.t, y: s.metrics[name]! }]));
    const counter = isCounterName(name) && raw.length >= 2;
    const bytes = /bytes/.test(name);
    const points = counter ? ratePoints(raw) : bytes ? raw.map((p) => ({ x: p.x, y: p.y / 2 ** 20 })) : raw;
    const unit = counter ? 'rate /s' : bytes ? 'MiB' : '';
    return renderChart({ id: `server-${i}`, title: unit === '' ? name : `${name} (${unit})`, xLabel: 'time s',
      yLabel: unit === '' ? 'value' : unit,
      series: [{ name, color: palette[i % palette.length]!, dashed: false, points }], width: 370, height: 170,
      markers: markerList, dots: points.length === 1 });
  });
  return `<h2>Server metrics</h2><div class="grid">${charts.join('')}</div>`;
}

function sweepSection(r: LoadReport): string {
  if (r.sweep === null) return '';
  if (r.sweep.length === 0) return '<h2>Rate sweep</h2><p>The sweep has no steps.</p>';
  const rows = r.sweep.map((s) => `<tr><td>${escapeHtml(formatCount(s.rate))}</td><td>${escapeHtml(formatCount(s.achieved))}</td>` +
    `<td>${escapeHtml(formatMs(s.p99))}</td><td class="${s.met ? 'ok' : 'bad'}">${s.met ? 'met' : 'missed'}</td></tr>`);
  const table = '<table><thead><tr><th>target /s</th><th>achieved /s</th><th>p99 ms</th><th>objective</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table>`;
  const chart = renderChart({ id: 'sweep', title: 'p99 latency by target rate', xLabel: 'target rate /s',
    yLabel: 'p99 ms', width: 560, height: 220, dots: true,
    series: [{ name: 'p99', color: palette[1]!, dashed: false, points: r.sweep.map((s) => ({ x: s.rate, y: s.p99 })) }] });
  return `<h2>Rate sweep</h2>${table}${chart}`;
}

function restartSection(r: LoadReport): string {
  if (r.restart === null) return '';
  const s = r.restart;
  return '<h2>Restart</h2>' + definitionList([
    ['recovery', `${formatMs(s.recoveryMs)} ms`], ['subscribers', formatCount(s.subscribers)],
    ['resumed without a gap', formatCount(s.resumedWithoutGap)],
  ]);
}

const css = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:800px;color:#222;padding:0 1em}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dt{color:#666}dd{margin:0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}
th[scope=row]{text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}.warn li{color:#b00;font-weight:bold}
.note{color:#666;font-size:.9em}i{display:inline-block;width:10px;height:10px;margin-right:4px}
.legend span{margin-right:12px;white-space:nowrap}.legend i{width:18px;height:0;vertical-align:middle}
figure{margin:.8em 0}figcaption{font-weight:600}.grid{display:flex;flex-wrap:wrap;gap:0 16px}
svg{font-size:10px;max-width:100%;height:auto}svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#999}
svg .event line{stroke:#777;stroke-dasharray:2 2}svg .event text{fill:#444}`;

/** The whole page. Accepts a LoadReport, or anything parsed from a report.json: it is normalised first. */
export function renderHtml(report: LoadReport): string {
  const r = normaliseReport(report);
  const body = [header(r), generatorHealth(r), operationTable(r), percentilePlot(r), timelineCharts(r),
    serverCharts(r), sweepSection(r), restartSection(r)].join('\n');
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>strata load test: ${escapeHtml(r.scenario)}</title><style>${css}</style></head>\n<body>\n${body}\n</body></html>\n`;
}
