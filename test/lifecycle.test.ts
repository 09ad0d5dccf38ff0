/**
 * stratad's lifecycle over real processes (test/support/daemon.ts): the graceful stop on SIGTERM with commits in
 * flight and watchers, a stop during recovery, the stop's bound, the data directory's lock, SIGHUP reloads; and
 * Daemon.healthCheck and the stop's steps in process.
 *
 * The shutdown guarantee checked here: every request a client sent before the stop began gets an answer on its
 * open connection: its result (a commit acknowledged is durable and present after a restart) or UNAVAILABLE (a
 * commit answered so was not applied). Then subscribers get WatchEnded UNAVAILABLE after their events, the
 * connection closes with 1001, and the process exits 0.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { jobConfig, task, taskQuery, txn, upsert } from './support/build.js';
import { tempDir } from './support/durable.js';
import { httpGet as get, spawnDaemon, startDaemon, writeConfig, type DaemonChild, type LogLine } from './support/daemon.js';
import { commitResult, encode, errorOf, f, make, queryResult, RawClient, revisionsOf } from './support/raw-client.js';
import { Engine } from '../daemon/engine.js';
import { Daemon, type StopStep } from '../daemon/daemon.js';
import { loadConfig } from '../daemon/config.js';
import { DaemonLog } from '../daemon/log.js';

const config = jobConfig('a', 'prod', 'web');
const commitOf = (id: string) => make(f.CommitRequestT, { transaction: [...txn([upsert([task(id, config, 0)])])] });

async function watch(c: RawClient, fields: Partial<f.WatchRequestT> = { afterRevision: -1n }): Promise<f.EnvelopeT> {
  return c.request(f.Body.WatchRequest, make(f.WatchRequestT, fields));
}

async function taskIds(url: string, token = ''): Promise<Set<string>> {
  const c = await RawClient.open(url, token);
  const answer = queryResult(await c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'a' })] })));
  c.close();
  return new Set((answer.result as f.TasksResultT).tasks.map((x) => String(x.assignedTask!.taskId)));
}

/** The lines after `from` up to the first one matching `until` (waited for). */
async function linesUntil(d: DaemonChild, from: number, until: (line: LogLine) => boolean): Promise<LogLine[]> {
  await d.waitLine(until, 60_000, from);
  const end = d.lines.findIndex((line, i) => i >= from && until(line));
  return d.lines.slice(from, end + 1);
}

test('SIGTERM with commits in flight: every commit answered (acknowledged ones durable, UNAVAILABLE ones absent), watchers told then 1001, exit 0 within the bound; a second daemon on the directory exits 73', async (t) => {
  const dir = tempDir(t, 'lifecycle-term');
  const dataDir = `${dir}/data`;
  const boundMs = 60_000;
  const d = await startDaemon({ dataDir, config: { shutdownTimeoutMs: boundMs } });
  t.teardown(() => d.kill());

  // The lock: a second daemon on the same directory refuses, says why on stderr, and names the holder.
  const second = spawnDaemon({ dataDir, args: ['--listen', '127.0.0.1:0'] });
  t.is(await second.exited, 73);
  const failed = JSON.parse(second.stderr().trim().split('\n').pop()!) as LogLine;
  t.is(failed.msg, 'stratad failed');
  t.is(failed.exitCode, 73);
  t.regex(String(failed.error), new RegExp(`in use by stratad \\(pid ${d.pid}`));

  const watcher = await RawClient.open(d.url);
  const subscription = ((await watch(watcher)).body as f.WatchResponseT).subscription;
  const writers = await Promise.all(Array.from({ length: 4 }, () => RawClient.open(d.url)));
  const perWriter = 150;
  const sent: { id: string; answer: Promise<f.EnvelopeT> }[] = [];
  let signalled = 0;
  let answeredAfterSignal = 0;
  for (let k = 0; k < perWriter; k++) {
    writers.forEach((c, w) => {
      const id = `w${w}-${k}`;
      sent.push({ id, answer: c.request(f.Body.CommitRequest, commitOf(id)).then((answer) => {
        if (signalled > 0) answeredAfterSignal++;
        return answer;
      }) });
    });
  }
  await Promise.race(sent.map((s) => s.answer)); // the daemon is committing: stop it now
  signalled = Date.now();
  d.signal('SIGTERM');
  const answers = await Promise.all(sent.map(async (s) => ({ id: s.id, answer: await s.answer })));
  const code = await d.exited;
  const stopMs = Date.now() - signalled;
  t.is(code, 0);
  t.true(stopMs < boundMs, `stopped in ${stopMs} ms`);

  const acknowledged = new Set<string>();
  const refused = new Set<string>();
  for (const { id, answer } of answers) {
    if (answer.bodyType === f.Body.CommitResponse) {
      t.is(commitResult(answer).error, null, id);
      acknowledged.add(id);
    } else {
      t.is(errorOf(answer)?.code, f.ErrorCode.UNAVAILABLE, `${id}: ${JSON.stringify(errorOf(answer))}`);
      refused.add(id);
    }
  }
  t.is(acknowledged.size + refused.size, sent.length, 'every commit got an answer');
  t.true(acknowledged.size >= 1);
  t.log(`${acknowledged.size} acknowledged, ${refused.size} UNAVAILABLE, ${answeredAfterSignal} answered after the signal, stopped in ${stopMs} ms`);

  // The watcher got every acknowledged revision, then WatchEnded UNAVAILABLE, then the close 1001.
  t.is((await watcher.closed).code, 1001);
  t.is(revisionsOf(watcher.pushes, subscription).length, acknowledged.size);
  const ended = watcher.pushes.at(-1)!;
  t.is(ended.bodyType, f.Body.WatchEnded);
  t.is((ended.body as f.WatchEndedT).error!.code, f.ErrorCode.UNAVAILABLE);
  for (const c of writers) t.is((await c.closed).code, 1001);
  const messages = d.lines.map((line) => line.msg);
  t.true(messages.indexOf('stratad stopping') < messages.indexOf('stratad stopped'));

  // After a restart: exactly the acknowledged commits are there.
  const again = await startDaemon({ dataDir });
  t.teardown(() => again.kill());
  const present = await taskIds(again.url);
  t.deepEqual([...acknowledged].filter((id) => !present.has(id)), [], 'acknowledged and lost');
  t.deepEqual([...refused].filter((id) => present.has(id)), [], 'answered UNAVAILABLE yet applied');
  t.is(await again.stop(), 0);
});

test('SIGTERM during recovery: nothing is served, the engine closes, exit 0; the next start recovers everything', async (t) => {
  const dir = tempDir(t, 'lifecycle-recovery');
  const dataDir = `${dir}/data`;
  // A log long enough that recovery (about a second here) is still running when the signal lands.
  const engine = await Engine.open({ dataDir, readerThreads: 1 });
  const transactions = 20_000;
  await Promise.all(Array.from({ length: transactions }, (_, i) => engine.commit(txn([upsert([task(`r${i}`, config, 0)])]))));
  await engine.close();
  const d = spawnDaemon({ dataDir, config: { snapshot: { afterReplay: 0 } } });
  t.teardown(() => d.kill());
  await d.waitLine((line) => line.msg === 'stratad listening (ready once recovered)');
  d.signal('SIGTERM');
  t.is(await d.exited, 0);
  const stopping = d.lines.find((line) => line.msg === 'stratad stopping')!;
  t.is(stopping.phase, 'recovering');
  t.true(d.lines.some((line) => line.msg === 'stratad stopped'));
  t.false(d.lines.some((line) => line.msg === 'stratad ready'), 'nothing served');
  const again = await startDaemon({ dataDir, config: { snapshot: { afterReplay: 0 } } });
  t.teardown(() => again.kill());
  const ready = again.lines.find((line) => line.msg === 'stratad ready')!;
  t.is(ready.revision, transactions);
  t.is(ready.replayed, transactions);
  t.is(await again.stop(), 0);
});

test('the bound: a writer that hangs makes SIGTERM exit 70 after shutdownTimeoutMs, naming the pending commit; meanwhile new requests get UNAVAILABLE, /readyz 503, no new connection; a second SIGTERM does not cut it short', async (t) => {
  const dir = tempDir(t, 'lifecycle-bound');
  const boundMs = 5000; // room for the checks below on a busy machine before the bound ends the process
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { shutdownTimeoutMs: boundMs },
    env: { STRATA_FAILPOINTS: 'log.before-write=hang@2' } });
  t.teardown(() => d.kill());
  const c = await RawClient.open(d.url);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  t.is((await get(`${d.http}/readyz`, agent)).status, 200);
  t.is(commitResult(await c.request(f.Body.CommitRequest, commitOf('first'))).error, null);
  void c.request(f.Body.CommitRequest, commitOf('hangs')); // the writer blocks for ever in this group's write
  await new Promise((resolve) => setTimeout(resolve, 200));
  const signalled = Date.now();
  d.signal('SIGTERM');
  await d.waitLine((line) => line.msg === 'stratad stopping');
  // While the stop waits for the hung commit: new requests are refused, /readyz says 503, nobody new gets in.
  t.is(errorOf(await c.request(f.Body.CommitRequest, commitOf('late')))!.code, f.ErrorCode.UNAVAILABLE);
  t.is(errorOf(await c.request(f.Body.StatusRequest, new f.StatusRequestT()))!.code, f.ErrorCode.UNAVAILABLE);
  t.is((await get(`${d.http}/readyz`, agent)).status, 503);
  await t.throwsAsync(RawClient.connect(d.url));
  d.signal('SIGTERM');
  await d.waitLine((line) => /stopping already/.test(String(line.msg)));
  t.is(await d.exited, 70);
  const elapsed = Date.now() - signalled;
  t.true(elapsed >= boundMs - 100, `exited after ${elapsed} ms, not before the bound`);
  const timedOut = d.lines.find((line) => line.msg === 'stratad stop timed out: work still pending')!;
  t.is(timedOut.level, 'error');
  const pending = timedOut.pending as Record<string, unknown>;
  t.is(pending.commits, 1);
  t.is(pending.step, 'answering the requests taken');
  t.false(d.lines.some((line) => line.msg === 'stratad stopped'));
  t.regex(d.stderr(), /"msg":"stratad failed"/);
  t.regex(d.stderr(), /"exitCode":70/);
});

test('SIGHUP: log level, limits on existing and new connections, tokens removed (4401) / added / rescoped, a bad file kept out, restart-only keys reported', async (t) => {
  const dir = tempDir(t, 'lifecycle-hup');
  const dataDir = `${dir}/data`;
  const admin = { name: 'admin', token: 'admin-token-0123456789', admin: true };
  const a = { name: 'a', token: 'role-a-token-0123456789', read: ['a'], write: ['a'] };
  const b = { name: 'b', token: 'role-b-token-0123456789', read: ['*'] };
  const base = { logLevel: 'info', limits: { subscriptionsMax: 4 }, tokens: [admin, a] };
  const d = await startDaemon({ dataDir, config: base });
  t.teardown(() => d.kill());
  const reload = async (config: Record<string, unknown> | string): Promise<LogLine[]> => {
    if (typeof config === 'string') writeFileSync(d.configFile, config);
    else writeConfig(dataDir, config);
    const from = d.lines.length;
    d.signal('SIGHUP');
    return linesUntil(d, from, (line) => line.msg === 'config reloaded' || line.msg === 'config reload failed: the running config stays');
  };
  const badRequest = (c: RawClient) => c.request(f.Body.CommitRequest, new f.CommitRequestT()); // INVALID_ARGUMENT
  const debugLines = (lines: LogLine[]) => lines.filter((line) => line.msg === 'request error' && line.code === 'INVALID_ARGUMENT');

  const root = await RawClient.open(d.url, admin.token);
  const roleA = await RawClient.open(d.url, a.token);
  let from = d.lines.length;
  t.is(errorOf(await badRequest(root))!.code, f.ErrorCode.INVALID_ARGUMENT);
  t.is((await watch(root)).bodyType, f.Body.WatchResponse);

  // 1. debug on, subscriptionsMax 4 -> 1, token a removed and b added, frameBytesMax changed (needs a restart).
  const first = await reload({ ...base, logLevel: 'debug', limits: { subscriptionsMax: 1, frameBytesMax: 65536 },
    watch: { closeBytes: 32 << 20, bufferBytes: 1 << 20 }, tokens: [admin, b] });
  t.deepEqual(debugLines(d.lines.slice(from)), [], 'no debug line at info');
  const reloaded = first.at(-1)!;
  t.is(reloaded.msg, 'config reloaded');
  t.deepEqual((reloaded.applied as { key: string }[]).map((x) => x.key).sort(),
    ['limits.subscriptionsMax', 'logLevel', 'watch.bufferBytes', 'watch.closeBytes']);
  t.deepEqual(reloaded.needsRestart, ['limits.frameBytesMax']);
  t.deepEqual(reloaded.tokensRemoved, ['a']);
  t.deepEqual(reloaded.tokensAdded, ['b']);
  t.true(first.some((line) => line.level === 'warn' && line.key === 'limits.frameBytesMax' && /needs a restart/.test(String(line.msg))));
  t.false(JSON.stringify(d.lines).includes('token-0123456789'), 'no token value in any line');
  t.is((await roleA.closed).code, 4401);
  const stranger = await RawClient.connect(d.url);
  const refusedHello = await stranger.request(f.Body.Hello, make(f.HelloT, { protocolMin: 1, protocolMax: 1, token: a.token }));
  t.is(errorOf(refusedHello)!.code, f.ErrorCode.UNAUTHENTICATED, 'the removed token is refused');
  t.is((await stranger.closed).code, 4401);
  const roleB = await RawClient.open(d.url, b.token);
  const hello = roleB.responses[0]!.body as f.HelloResponseT;
  t.is(Number(hello.limits!.frameBytesMax), 16 * 1024 * 1024, 'frameBytesMax not applied');
  t.is(errorOf(await watch(root))!.code, f.ErrorCode.RESOURCE_EXHAUSTED, 'the lower limit holds on a connection from before');
  t.is((await watch(roleB)).bodyType, f.Body.WatchResponse);
  t.is(errorOf(await watch(roleB))!.code, f.ErrorCode.RESOURCE_EXHAUSTED, 'and on a new one');
  from = d.lines.length;
  await badRequest(root);
  const debug = await d.waitLine((line) => line.msg === 'request error', 30_000, from);
  t.is(debug.level, 'debug');
  t.is(debug.code, 'INVALID_ARGUMENT');
  t.is(debug.token, 'admin');

  // 2. A file that does not load: logged with the reason, the running config stays, serving goes on.
  const failed = (await reload('{ "limits": { "subscriptionsMax": 9 }, bogus')).at(-1)!;
  t.is(failed.level, 'error');
  t.regex(String(failed.reason), /config file/);
  t.is(errorOf(await watch(roleB))!.code, f.ErrorCode.RESOURCE_EXHAUSTED, 'the limit of the running config');
  t.is(((await root.request(f.Body.StatusRequest, new f.StatusRequestT())).body as f.StatusResponseT).connections, 2);

  // 3. b's scopes change (its connection is closed), admin untouched; back to info: debug lines stop.
  const third = (await reload({ ...base, limits: { subscriptionsMax: 1, frameBytesMax: 65536 },
    watch: { closeBytes: 32 << 20, bufferBytes: 1 << 20 }, tokens: [admin, { ...b, read: ['b'] }] })).at(-1)!;
  t.deepEqual(third.tokensChanged, ['b']);
  t.is((await roleB.closed).code, 4401);
  from = d.lines.length;
  await badRequest(root);
  const marker = await reload({ ...base, limits: { subscriptionsMax: 1, frameBytesMax: 65536 },
    watch: { closeBytes: 32 << 20, bufferBytes: 1 << 20 }, tokens: [admin, { ...b, read: ['b'] }] });
  // Nothing new applies; the restart-only key is reported again (the file still differs from what runs).
  t.deepEqual(marker.at(-1)!.applied, []);
  t.deepEqual(marker.at(-1)!.needsRestart, ['limits.frameBytesMax']);
  t.deepEqual(debugLines(d.lines.slice(from)), [], 'no debug line once back at info');
  t.is(((await root.request(f.Body.StatusRequest, new f.StatusRequestT())).body as f.StatusResponseT).connections, 1);
  root.close();
  t.is(await d.stop(), 0);
});

test('in process: healthCheck answers true only while the writer answers; the stop reports its steps in order', async (t) => {
  const dir = tempDir(t, 'lifecycle-health');
  const steps: StopStep[] = [];
  const failures: Error[] = [];
  const daemon = Daemon.create(loadConfig(['--data-dir', `${dir}/data`, '--listen', '127.0.0.1:0', '--readerThreads', '1'], {}), {
    log: DaemonLog.silent(), onFailure: (error) => failures.push(error), onStopStep: (step) => steps.push(step),
  });
  t.false(await daemon.healthCheck(1000), 'not open yet');
  t.true(await daemon.start());
  t.true(await daemon.healthCheck(30_000));
  t.is(daemon.phase, 'serving');
  await daemon.engine!.killWriterForTest();
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is(failures.length, 1);
  t.false(await daemon.healthCheck(30_000), 'a dead writer is not healthy');
  const result = await daemon.stop();
  t.true(result.ok);
  t.deepEqual(steps, ['accepting-stopped', 'requests-answered', 'engine-closed', 'connections-closed']);
  t.is(daemon.stop(), daemon.stop(), 'one stop');
  t.false(await daemon.healthCheck(1000), 'stopped');
});

test('a malformed admin request (a backup stage whose name length lies) is answered INVALID_ARGUMENT and does not hold up a stop', async (t) => {
  const dir = tempDir(t, 'lifecycle-malformed-admin');
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { shutdownTimeoutMs: 5000 } });
  t.teardown(() => d.kill());
  const c = await RawClient.open(d.url);
  const bytes = encode(make(f.EnvelopeT, { id: 7, bodyType: f.Body.BackupStageRequest, body: make(f.BackupStageRequestT, { name: 'abcdef' }) }));
  const at = Buffer.from(bytes).indexOf('abcdef');
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at - 4, 0x7fffffff, true);
  c.sendRaw(bytes);
  t.is(errorOf(await c.expect(7))!.code, f.ErrorCode.INVALID_ARGUMENT);
  const started = Date.now();
  t.is(await d.stop(30_000), 0, d.stderr());
  t.true(Date.now() - started < 5000, 'stopped without waiting out the bound');
});

test('in process: a committed staged backup reopens the store in phase "reopening" (the watchdog asks the main loop only), then serves', async (t) => {
  const dir = tempDir(t, 'lifecycle-reopen');
  const daemon = Daemon.create(loadConfig(['--data-dir', `${dir}/data`, '--listen', '127.0.0.1:0', '--readerThreads', '1'], {}), {
    log: DaemonLog.silent(), onFailure: (error) => t.fail(String(error)),
  });
  t.teardown(() => daemon.stop());
  t.true(await daemon.start());
  await daemon.engine!.commit(Uint8Array.from(txn([upsert([task('before-backup', config, 0)])])));
  const backup = await daemon.engine!.backup();
  await daemon.engine!.stageBackup(backup.path.split('/').pop()!);
  const phases = new Set<string>();
  const committing = daemon.commitStaged();
  while (!(await Promise.race([committing.then(() => true), new Promise<false>((resolve) => setImmediate(() => resolve(false)))]))) {
    phases.add(daemon.phase);
  }
  t.true(phases.has('reopening'), [...phases].join(','));
  t.false(phases.has('recovering'));
  t.is(daemon.phase, 'serving');
  t.true(await daemon.healthCheck(30_000));
});
