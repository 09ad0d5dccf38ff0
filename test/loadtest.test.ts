/**
 * The load generator (loadtest/loadtest.ts) end to end: short, low-rate runs against a daemon it spawns, as a
 * child process, checking report.json's shape and sanity; --help; bad flags. Owner: ava.
 * Kept robust on a busy 2-core machine: low rates, generous timeouts, no timing assertions.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../loadtest/loadtest.js', import.meta.url));

function run(args: string[]) {
  return spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 240_000 });
}

interface Operation { count: number; errors: number; p50: number; p99: number; max: number; percentiles: [number, number][] }

function checkReport(t: import('ava').ExecutionContext, out: string, scenario: string, ops: string[]): void {
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  t.is(report.scenario, scenario);
  // The HTML report beside it: offline (nothing fetched from the network), naming every operation.
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  t.regex(html, /^<!doctype html>/i);
  t.notRegex(html, /(src|href)\s*=\s*["']?https?:/i);
  for (const op of ops) t.true(html.includes(op), `report.html names ${op}`);
  t.is(report.mode, 'open');
  for (const key of ['rate', 'durationS', 'connections', 'threads']) t.is(typeof report[key], 'number', key);
  t.false(Number.isNaN(Date.parse(report.startedAt)));
  t.regex(report.url, /^ws:\/\/127\.0\.0\.1:\d+\/v1$/);
  t.true(report.machine.cpus >= 1);
  t.is(typeof report.generator.cpuCores, 'number');
  t.true(Array.isArray(report.generator.warnings));
  for (const op of ops) {
    const o = report.operations[op] as Operation;
    t.truthy(o, `operation ${op}`);
    t.true(o.count > 0, `${op} count`);
    t.is(o.errors, 0, `${op} errors`);
    t.true(o.p50 <= o.p99 && o.p99 <= o.max, `${op} p50 <= p99 <= max`);
    t.true(o.percentiles.length > 0);
    t.is(o.percentiles[o.percentiles.length - 1]![0], 100);
    for (let i = 1; i < o.percentiles.length; i++) {
      t.true(o.percentiles[i]![0] >= o.percentiles[i - 1]![0] && o.percentiles[i]![1] >= o.percentiles[i - 1]![1]);
    }
  }
  t.true(report.timeline.length > 0);
  for (const entry of report.timeline) t.is(typeof entry.t, 'number');
  t.true(report.server.samples.length > 0);
  t.true(report.server.samples.some((s: { metrics: Record<string, number> }) => 'strata_process_resident_memory_bytes' in s.metrics));
  t.true(Array.isArray(report.events));
  t.is(report.sweep, null);
  t.is(report.restart, null);
}

test('mix: a short open-loop run against a spawned daemon writes a sane report', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'strata-loadtest-test-'));
  try {
    const result = run(['--scenario', 'mix', '--spawn', '--rate', '20', '--duration', '2', '--tasks', '10000',
      '--connections', '2', '--threads', '1', '--out', out]);
    t.is(result.status, 0, result.stderr);
    t.regex(result.stdout, /transitions/);
    checkReport(t, out, 'mix', ['transitions', 'read-job']);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('watch: subscribers receive the committer\'s revisions', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'strata-loadtest-test-'));
  try {
    const result = run(['--scenario', 'watch', '--spawn', '--rate', '10', '--duration', '2', '--tasks', '10000',
      '--connections', '2', '--threads', '2', '--subscribers', '2', '--out', out]);
    t.is(result.status, 0, result.stderr);
    checkReport(t, out, 'watch', ['transitions', 'watch']);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('--help lists every scenario', (t) => {
  const result = run(['--help']);
  t.is(result.status, 0);
  for (const name of ['bulk-load', 'transitions', 'read-job', 'summaries', 'quota', 'watch', 'mix', 'snapshot', 'restart']) {
    t.regex(result.stdout, new RegExp(`^  ${name} `, 'm'));
  }
});

test('bad flags exit 2 with a message', (t) => {
  for (const [args, message] of [
    [['--scenario', 'nope'], /unknown scenario nope/],
    [['--scenario', 'mix', '--rate', 'fast'], /--rate needs a number/],
    [['--scenario', 'mix', '--bogus'], /unknown argument --bogus/],
    [[], /--scenario is required/],
    [['--scenario', 'mix', '--mix', 'dance=3'], /unknown operation dance/],
    [['--scenario', 'restart'], /needs --spawn/],
  ] as const) {
    const result = run([...args]);
    t.is(result.status, 2, args.join(' '));
    t.regex(result.stderr, message);
  }
});
