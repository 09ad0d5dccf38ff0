/**
 * stratad's log lines (daemon/log.ts): the format and the startup line, slow fsyncs, commits and queries past
 * their thresholds and rate limited, failed Hellos without the token, the fail-stop line of an INTERNAL error;
 * and LogRate on a given clock.
 */
import test from 'ava';
import { Writable } from 'node:stream';
import { spawn } from 'node:child_process';
import { jobConfig, task, taskQuery, txn, upsert } from './support/build.js';
import { tempDir } from './support/durable.js';
import { startDaemon, type LogLine } from './support/daemon.js';
import { commitResult, errorOf, f, make, RawClient } from './support/raw-client.js';
import { DaemonLog, LogRate, logRateMs } from '../daemon/log.js';
import { decodeQueryResponse } from '../core/codec.js';

const config = jobConfig('a', 'prod', 'web');
const commitOf = (id: string) => make(f.CommitRequestT, { transaction: [...txn([upsert([task(id, config, 0)])])] });
const queryOf = () => make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'a' })] });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Lines of one kind are at least a rate window apart (by their own time); returns them. */
function rateLimited(t: { true: (v: boolean, m?: string) => void }, lines: LogLine[], msg: string): LogLine[] {
  const mine = lines.filter((line) => line.msg === msg);
  for (let i = 1; i < mine.length; i++) {
    const gap = Date.parse(String(mine[i]!.time)) - Date.parse(String(mine[i - 1]!.time));
    t.true(gap >= logRateMs - 50, `${msg}: lines ${gap} ms apart`);
  }
  return mine;
}

test('LogRate: one line per kind per window, the next one carries how many were suppressed; kinds are separate', (t) => {
  let now = 0;
  const rate = new LogRate(1000, () => now);
  t.is(rate.take('a'), 0);
  t.is(rate.take('a'), -1);
  t.is(rate.take('b'), 0, 'another kind has its own window');
  now = 999;
  t.is(rate.take('a'), -1);
  now = 1000;
  t.is(rate.take('a'), 2);
  t.is(rate.take('a'), -1);
  now = 5000;
  t.is(rate.take('a'), 1);
  t.is(rate.take('a'), -1);
});

test('DaemonLog: level label, ISO time, pid and version, the line fields; level changes live; disabled levels write nothing', (t) => {
  const out: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _encoding, done) { out.push(chunk.toString()); done(); } });
  const failures: string[] = [];
  const failureStream = { write: (s: string) => { failures.push(s); } };
  const log = new DaemonLog({ level: 'info', version: '9.9.9', stream: stream as never, failureStream, now: () => 0 });
  log.info({ revision: 3 }, 'hello');
  log.debug({}, 'hidden');
  log.limited('warn', 'k', { a: 1 }, 'limited');
  log.limited('warn', 'k', { a: 2 }, 'limited');
  log.level = 'debug';
  log.debug({}, 'shown');
  log.failed('why', 70, { code: 'INTERNAL' });
  const lines = out.join('').trim().split('\n').map((s) => JSON.parse(s) as LogLine);
  t.deepEqual(lines.map((line) => line.msg), ['hello', 'limited', 'shown']);
  t.is(lines[0]!.level, 'info');
  t.is(lines[0]!.version, '9.9.9');
  t.is(lines[0]!.pid, process.pid);
  t.is(lines[0]!.revision, 3);
  t.regex(String(lines[0]!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.is(lines[1]!.kind, 'k');
  t.is(lines[2]!.level, 'debug');
  const failure = JSON.parse(failures.join('')) as LogLine;
  t.is(failure.msg, 'stratad failed');
  t.is(failure.level, 'fatal');
  t.is(failure.exitCode, 70);
});

test('startup line: version, node, websocket, data dir, the recovered revision, recovery time and what it replayed', async (t) => {
  const dir = tempDir(t, 'logs-start');
  const dataDir = `${dir}/data`;
  const first = await startDaemon({ dataDir, config: { snapshot: { afterReplay: 0 } } });
  t.teardown(() => first.kill());
  const c = await RawClient.open(first.url);
  for (let i = 0; i < 5; i++) t.is(commitResult(await c.request(f.Body.CommitRequest, commitOf(`s${i}`))).error, null);
  c.close();
  t.is(await first.stop(), 0);
  const d = await startDaemon({ dataDir, config: { snapshot: { afterReplay: 0 } } });
  t.teardown(() => d.kill());
  const starting = d.lines.find((line) => line.msg === 'stratad starting')!;
  t.is(starting.level, 'info');
  t.is((starting.config as Record<string, unknown>).dataDir, dataDir);
  const ready = d.lines.find((line) => line.msg === 'stratad ready')!;
  t.is(ready.level, 'info');
  t.regex(String(ready.version), /^\d+\.\d+\.\d+/);
  t.is(ready.pid, d.pid);
  t.is(ready.node, process.version);
  t.is(ready.websocket, 'native');
  t.is(ready.dataDir, dataDir);
  t.is(ready.revision, 5);
  t.is(ready.replayed, 5);
  t.true(typeof ready.recoveryMs === 'number' && ready.recoveryMs >= 0);
  t.is((ready.recovery as Record<string, unknown>).replayed, 5);
  t.true(typeof ready.startMs === 'number');
  t.true(Date.parse(String(ready.startedAt)) <= Date.parse(String(ready.time)));
  t.is(await d.stop(), 0);
});

test('thresholds at 0: slow fsync, commit and query lines, each kind at most one a second, with what was suppressed; a failed Hello is a warning without the token', async (t) => {
  const dir = tempDir(t, 'logs-slow');
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { slowLog: { fsyncMs: 0, commitMs: 0, queryMs: 0 },
    tokens: [{ name: 'ops', token: 'ops-token-0123456789ab', admin: true }] } });
  t.teardown(() => d.kill());
  const c = await RawClient.open(d.url, 'ops-token-0123456789ab');
  const burst = 40;
  const round = async (prefix: string, count: number) => {
    const commits = Array.from({ length: count }, (_, i) => c.request(f.Body.CommitRequest, commitOf(`${prefix}${i}`)));
    const queries = Array.from({ length: count }, () => c.request(f.Body.QueryRequestMessage, queryOf()));
    for (const answer of await Promise.all(commits)) t.is(commitResult(answer).error, null);
    for (const answer of await Promise.all(queries)) t.is(answer.bodyType, f.Body.QueryResponseMessage);
  };
  await round('b', burst);
  await sleep(logRateMs + 300); // the next line of each kind comes after a whole window
  await round('z', 1);
  for (let i = 0; i < 3; i++) {
    const stranger = await RawClient.connect(d.url);
    const refused = await stranger.request(f.Body.Hello, make(f.HelloT, { protocolMin: 1, protocolMax: 1, token: 'not-a-real-token-abcdef' }));
    t.is(errorOf(refused)!.code, f.ErrorCode.UNAUTHENTICATED);
    await stranger.closed;
  }
  c.close();
  t.is(await d.stop(), 0); // every line is written (synchronously) before the exit
  for (const [msg, total] of [['slow commit', burst + 1], ['slow query', burst + 1]] as const) {
    const lines = rateLimited(t, d.lines, msg);
    t.true(lines.length >= 2 && lines.length < total, `${msg}: ${lines.length} lines for ${total}`);
    // Every slow request is either a line or counted in the next line's `suppressed`.
    t.is(lines.reduce((sum, line) => sum + 1 + Number(line.suppressed ?? 0), 0), total, msg);
    t.is(lines[0]!.level, 'warn');
    t.is(lines[0]!.token, 'ops');
    t.true(typeof lines[0]!.ms === 'number');
  }
  t.is(d.lines.find((line) => line.msg === 'slow query')!.query, 'TaskQuery');
  t.is(d.lines.find((line) => line.msg === 'slow query')!.role, 'a');
  const fsyncs = rateLimited(t, d.lines, 'slow fsync: log append + fdatasync of a commit group');
  t.true(fsyncs.length >= 2);
  t.true(typeof fsyncs[0]!.syncMs === 'number' && Number(fsyncs[0]!.transactions) >= 1);
  const auth = rateLimited(t, d.lines, 'authentication failed: unknown token (4401)');
  t.is(auth.length, 1, 'three failures in a second: one line');
  t.is(auth[0]!.level, 'warn');
  t.false(JSON.stringify(d.lines).includes('not-a-real-token'), 'the token is never logged');
  t.false(JSON.stringify(d.lines).includes('ops-token-0123456789ab'), 'nor a configured one');
});

test('an INTERNAL error is logged with its code and stack (fatal), then the fail-stop line on stderr, exit 70', async (t) => {
  const dir = tempDir(t, 'logs-internal');
  // The writer thread ends at its first log write: a bug as the main thread sees it (EngineError INTERNAL).
  const d = await startDaemon({ dataDir: `${dir}/data`, env: { STRATA_FAILPOINTS: 'log.before-write=crash' } });
  t.teardown(() => d.kill());
  const c = await RawClient.open(d.url);
  void c.request(f.Body.CommitRequest, commitOf('x'));
  t.is(await d.exited, 70);
  const failure = d.lines.find((line) => line.msg === 'engine failed: fail-stop')!;
  t.is(failure.level, 'fatal');
  t.is(failure.code, 'INTERNAL');
  t.regex(String(failure.stack), /EngineError/);
  const failed = JSON.parse(d.stderr().trim().split('\n').pop()!) as LogLine;
  t.is(failed.msg, 'stratad failed');
  t.is(failed.exitCode, 70);
  t.is(failed.code, 'INTERNAL');
});

test('an open-file limit below connectionsMax + 320 is warned about at start, naming both figures', async (t) => {
  const dir = tempDir(t, 'logs-nofile');
  const main = new URL('../daemon/main.js', import.meta.url).pathname;
  // ulimit in a shell that then becomes the daemon: the same PID, the lowered soft limit.
  const child = spawn('sh', ['-c', `ulimit -n 400 && exec "${process.execPath}" "${main}" --data-dir "${dir}/data" --listen 127.0.0.1:0 --log-level warn`],
    { stdio: ['ignore', 'pipe', 'pipe'], env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRATA_'))) });
  t.teardown(() => { child.kill('SIGKILL'); });
  let out = '';
  const warned = await new Promise<LogLine>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no warning; stdout: ${out}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').slice(0, -1).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine)
        .find((l) => /open-file limit/.test(String(l.msg)));
      if (line !== undefined) { clearTimeout(timer); resolve(line); }
    });
  });
  t.is(warned.level, 'warn');
  t.is(warned.openFilesSoftLimit, 400);
  t.is(warned.needed, 1024 + 320);
});

test('a malformed task query past the slow-query threshold keeps its typed answer (the log line does not turn it into INTERNAL)', async (t) => {
  const dir = tempDir(t, 'logs-malformed-slow');
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { slowLog: { fsyncMs: 0, commitMs: 0, queryMs: 0 } } });
  t.teardown(() => d.kill());
  const c = await RawClient.open(d.url);
  t.teardown(() => c.close());
  const request = Uint8Array.from(taskQuery({ role: 'abcdef' }));
  const at = Buffer.from(request).indexOf('abcdef');
  new DataView(request.buffer).setUint32(at - 4, 0x7fffffff, true); // the role's length lies
  const answer = await c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...request] }));
  const error = errorOf(answer) ?? queryError(answer);
  t.truthy(error, 'an error answer');
  t.not(error!.code, f.ErrorCode.INTERNAL);
  t.is((await c.request(f.Body.StatusRequest, new f.StatusRequestT())).bodyType, f.Body.StatusResponse, 'still serving');
  t.false(d.lines.some((line) => line.level === 'error' && /INTERNAL/.test(JSON.stringify(line))));
});

/** The error inside a QueryResponse (the reader's typed answer), if any. */
function queryError(answer: f.EnvelopeT): f.ErrorT | null {
  const body = answer.body as f.QueryResponseMessageT | null;
  const bytes = body?.response;
  if (bytes === undefined || bytes.length === 0) return null;
  return decodeQueryResponse(Uint8Array.from(bytes)).error ?? null;
}
