/**
 * stratad over real sockets: a daemon the test starts on 127.0.0.1 (port 0, temporary data dir) and stops by
 * PID. Every request type, tokens and their scopes, limits, malformed input, HTTP endpoints, the uWS fallback.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { jobConfig, task, txn, upsert, transition, taskQuery, query } from './support/build.js';
import { tempDir } from './support/durable.js';
import { httpGet as get, startDaemon, type RunningDaemon } from './support/daemon.js';
import { commitResult, errorOf, f, make, queryResult, RawClient } from './support/raw-client.js';

const admin = 'admin-token-0123456789';
const roleA = 'role-a-token-0123456789';
const readerB = 'reader-b-token-0123456789';
const tokens = [
  { name: 'admin', token: admin, admin: true },
  { name: 'a', token: roleA, read: ['a'], write: ['a'] },
  { name: 'b-reader', token: readerB, read: ['b'] },
];

async function daemon(t: { teardown: (fn: () => Promise<void> | void) => void }, config: Record<string, unknown> = {}, extra: Partial<Parameters<typeof startDaemon>[0]> = {}): Promise<RunningDaemon> {
  const dir = tempDir(t, 'server');
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { tokens, ...config }, ...extra });
  t.teardown(async () => { await d.stop(); });
  return d;
}

const configA = jobConfig('a', 'prod', 'web');
const configB = jobConfig('b', 'prod', 'db');
const seed = txn([upsert([task('a-1', configA, 0), task('a-2', configA, 1), task('b-1', configB, 0)])]);

test('hello, commit, every query, status; typed errors inside results', async (t) => {
  const d = await daemon(t);
  const c = await RawClient.open(d.url, admin);
  const committed = commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...seed] })));
  t.is(committed.error, null);
  t.is(Number(committed.revision), 1);
  const moved = commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT,
    { transaction: [...txn([transition('a-1', f.ScheduleStatus.ASSIGNED, { enforce: true })])] })));
  t.is(Number(moved.revision), 2);
  const illegal = commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT,
    { transaction: [...txn([transition('a-1', f.ScheduleStatus.PENDING, { enforce: true })])] })));
  t.is(illegal.error!.code, f.ErrorCode.ILLEGAL_TRANSITION);

  const q = async (bytes: Uint8Array) => queryResult(await c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...bytes] })));
  const tasks = (await q(taskQuery({ role: 'a' }))).result as f.TasksResultT;
  t.deepEqual(tasks.tasks.map((x) => x.assignedTask!.taskId), ['a-1', 'a-2']);
  t.is(tasks.tasks[0]!.status, f.ScheduleStatus.ASSIGNED);
  for (const [type, body] of [
    [f.Query.JobKeysQuery, make(f.JobKeysQueryT, { role: 'a' })], [f.Query.RoleSummaryQuery, new f.RoleSummaryQueryT()],
    [f.Query.JobSummaryQuery, make(f.JobSummaryQueryT, { role: 'a' })], [f.Query.QuotaQuery, make(f.QuotaQueryT, { role: 'a' })],
    [f.Query.CronJobsQuery, make(f.CronJobsQueryT, { role: 'a' })], [f.Query.JobUpdateQuery, make(f.JobUpdateQueryT, { role: 'a' })],
    [f.Query.HostAttributesQuery, new f.HostAttributesQueryT()], [f.Query.MaintenanceQuery, new f.MaintenanceQueryT()],
    [f.Query.SchedulerQuery, new f.SchedulerQueryT()],
  ] as [f.Query, object][]) {
    const response = await q(query(type, body));
    t.is(response.error, null, f.Query[type]);
    t.is(Number(response.revision), 2);
  }
  const summary = (await q(query(f.Query.JobSummaryQuery, make(f.JobSummaryQueryT, { role: 'a' })))).result as f.JobSummaryResultT;
  t.is(summary.jobs[0]!.stats!.active, 1);
  const bad = await q(query(f.Query.QuotaQuery, make(f.QuotaQueryT, {})));
  t.is(bad.error!.code, f.ErrorCode.INVALID_ARGUMENT);

  const status = await c.request(f.Body.StatusRequest, new f.StatusRequestT());
  const s = status.body as f.StatusResponseT;
  t.is(Number(s.revision), 2);
  t.is(Number(s.tasks), 3);
  t.is(s.websocket, 'native');
  c.close();
});

test('many requests in flight on one connection; answers carry their ids', async (t) => {
  const d = await daemon(t);
  const c = await RawClient.open(d.url, admin);
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => i % 2 === 0 ?
    c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert([task(`t${i}`, configA, i)])])] })) :
    c.request(f.Body.StatusRequest, new f.StatusRequestT())));
  const revisions = answers.filter((a) => a.bodyType === f.Body.CommitResponse).map((a) => Number(commitResult(a).revision));
  t.deepEqual([...revisions].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i + 1));
  t.true(answers.every((a, i) => a.id === i + 2)); // id 1 was the hello
  c.close();
});

test('tokens: unknown token closes 4401; requests before hello are refused; scopes hold for reads, writes, watches, admin', async (t) => {
  const d = await daemon(t);
  const stranger = await RawClient.connect(d.url);
  const early = await stranger.request(f.Body.StatusRequest, new f.StatusRequestT());
  t.is(errorOf(early)!.code, f.ErrorCode.UNAUTHENTICATED);
  const refused = await stranger.request(f.Body.Hello, make(f.HelloT, { protocolMin: 1, protocolMax: 1, token: 'wrong-token-0123456789' }));
  t.is(errorOf(refused)!.code, f.ErrorCode.UNAUTHENTICATED);
  t.is((await stranger.closed).code, 4401);

  const old = await RawClient.connect(d.url);
  const version = await old.request(f.Body.Hello, make(f.HelloT, { protocolMin: 7, protocolMax: 9, token: admin }));
  t.is(errorOf(version)!.code, f.ErrorCode.INVALID_ARGUMENT);
  t.is((await old.closed).code, 4400);

  const root = await RawClient.open(d.url, admin);
  commitResult(await root.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...seed] })));
  const a = await RawClient.open(d.url, roleA);
  const q = (c: RawClient, bytes: Uint8Array) => c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...bytes] }));
  t.is(queryResult(await q(a, taskQuery({ role: 'a' }))).error, null);
  t.is(errorOf(await q(a, taskQuery({ role: 'b' })))!.code, f.ErrorCode.PERMISSION_DENIED);
  t.is(errorOf(await q(a, taskQuery({ taskIds: ['b-1'] })))!.code, f.ErrorCode.PERMISSION_DENIED);
  t.is(errorOf(await q(a, query(f.Query.RoleSummaryQuery, new f.RoleSummaryQueryT())))!.code, f.ErrorCode.PERMISSION_DENIED);
  t.is(errorOf(await q(a, query(f.Query.HostAttributesQuery, new f.HostAttributesQueryT())))!.code, f.ErrorCode.PERMISSION_DENIED);
  const commit = (c: RawClient, bytes: Uint8Array) => c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...bytes] }));
  t.is(commitResult(await commit(a, txn([transition('a-2', f.ScheduleStatus.ASSIGNED)]))).error, null);
  t.is(commitResult(await commit(a, txn([transition('b-1', f.ScheduleStatus.ASSIGNED)]))).error!.code, f.ErrorCode.PERMISSION_DENIED);
  t.is(commitResult(await commit(a, txn([upsert([task('b-9', configB, 9)])]))).error!.code, f.ErrorCode.PERMISSION_DENIED);
  const b = await RawClient.open(d.url, readerB);
  t.is(queryResult(await q(b, taskQuery({ role: 'b' }))).error, null);
  t.is(commitResult(await commit(b, txn([transition('b-1', f.ScheduleStatus.ASSIGNED)]))).error!.code, f.ErrorCode.PERMISSION_DENIED);
  const bTasks = (queryResult(await q(b, taskQuery({ role: 'b' }))).result as f.TasksResultT).tasks;
  t.is(bTasks[0]!.status, f.ScheduleStatus.PENDING, 'nothing of a refused commit applied');
  const watch = (c: RawClient, filter: Partial<f.WatchFilterT>) => c.request(f.Body.WatchRequest,
    make(f.WatchRequestT, { filter: make(f.WatchFilterT, filter), afterRevision: -1n }));
  t.is(errorOf(await watch(a, { role: 'b', tables: [f.RecordTable.TASK] }))!.code, f.ErrorCode.PERMISSION_DENIED);
  t.is(errorOf(await watch(a, {}))!.code, f.ErrorCode.PERMISSION_DENIED);
  t.is(errorOf(await watch(a, { role: 'a', tables: [f.RecordTable.HOST_ATTRIBUTES] }))!.code, f.ErrorCode.PERMISSION_DENIED);
  t.is((await watch(a, { role: 'a', tables: [f.RecordTable.TASK] })).bodyType, f.Body.WatchResponse);
  for (const [type, body] of [[f.Body.SnapshotRequest, new f.SnapshotRequestT()], [f.Body.BackupRequest, new f.BackupRequestT()],
    [f.Body.BackupListRequest, new f.BackupListRequestT()], [f.Body.BackupStageRequest, make(f.BackupStageRequestT, { name: 'x' })],
    [f.Body.BackupCommitRequest, new f.BackupCommitRequestT()], [f.Body.BackupUnloadRequest, new f.BackupUnloadRequestT()]] as [f.Body, object][]) {
    t.is(errorOf(await a.request(type, body))!.code, f.ErrorCode.PERMISSION_DENIED, f.Body[type]);
  }
  for (const c of [root, a, b]) c.close();
});

test('admin: snapshot, backup, list, stage, query staged, unload, commit a staged backup (watchers see a reset)', async (t) => {
  const d = await daemon(t);
  const c = await RawClient.open(d.url, admin);
  commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...seed] })));
  const snap = (await c.request(f.Body.SnapshotRequest, new f.SnapshotRequestT())).body as f.FileResponseT;
  t.is(Number(snap.revision), 1);
  const backup = (await c.request(f.Body.BackupRequest, new f.BackupRequestT())).body as f.FileResponseT;
  t.is(Number(backup.tasks), 3);
  const list = (await c.request(f.Body.BackupListRequest, new f.BackupListRequestT())).body as f.BackupListResponseT;
  t.is(list.backups.length, 1);
  const name = String(list.backups[0]!.name);
  // Change the live state after the backup, then bring the backup back.
  commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert([task('a-3', configA, 2)])])] })));
  t.is(errorOf(await c.request(f.Body.BackupStageRequest, make(f.BackupStageRequestT, { name: '../etc/passwd' })))!.code, f.ErrorCode.INVALID_ARGUMENT);
  t.is(errorOf(await c.request(f.Body.BackupStageRequest, make(f.BackupStageRequestT, { name: 'scheduler-backup-none.bak' })))!.code, f.ErrorCode.NOT_FOUND);
  const staged = (await c.request(f.Body.BackupStageRequest, make(f.BackupStageRequestT, { name }))).body as f.BackupStageResponseT;
  t.is(Number(staged.tasks), 3);
  const stagedTasks = queryResult(await c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'a' })], staged: true })));
  t.is((stagedTasks.result as f.TasksResultT).tasks.length, 2);
  t.is((await c.request(f.Body.BackupUnloadRequest, new f.BackupUnloadRequestT())).bodyType, f.Body.OkResponse);
  t.is(errorOf(await c.request(f.Body.BackupCommitRequest, new f.BackupCommitRequestT()))!.code, f.ErrorCode.PRECONDITION_FAILED);
  await c.request(f.Body.BackupStageRequest, make(f.BackupStageRequestT, { name }));
  const watcher = await RawClient.open(d.url, admin);
  const w = await watcher.request(f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: -1n }));
  const sub = (w.body as f.WatchResponseT).subscription;
  const committed = (await c.request(f.Body.BackupCommitRequest, new f.BackupCommitRequestT())).body as f.BackupCommitResponseT;
  t.is(Number(committed.revision), 3);
  await watcher.until((p) => p.some((e) => e.bodyType === f.Body.WatchEvents && (e.body as f.WatchEventsT).subscription === sub));
  const tasks = queryResult(await c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'a' })] })));
  t.deepEqual((tasks.result as f.TasksResultT).tasks.map((x) => x.assignedTask!.taskId), ['a-1', 'a-2']);
  t.is(Number(tasks.revision), 3);
  c.close();
  watcher.close();
});

test('malformed frames get typed errors and the daemon keeps serving; an oversized frame closes only its connection', async (t) => {
  const d = await daemon(t, { limits: { frameBytesMax: 65536 } });
  const c = await RawClient.open(d.url, admin);
  c.sendRaw('hello as text');
  c.sendRaw(new Uint8Array([1, 2, 3]));
  c.sendRaw(new Uint8Array(0));
  const unknown = new Uint8Array([12, 0, 0, 0, 8, 0, 12, 0, 4, 0, 8, 0, 8, 0, 0, 0, 99, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
  c.sendRaw(unknown);
  await c.until((p) => p.filter((e) => e.bodyType === f.Body.ErrorResponse).length >= 3, 30_000);
  const codes = c.pushes.filter((e) => e.bodyType === f.Body.ErrorResponse).map((e) => errorOf(e)!.code);
  t.true(codes.every((code) => code === f.ErrorCode.INVALID_ARGUMENT));
  // A response body sent as a request; a commit without a transaction; a garbage transaction.
  t.is(errorOf(await c.request(f.Body.StatusResponse, new f.StatusResponseT()))!.code, f.ErrorCode.INVALID_ARGUMENT);
  t.is(errorOf(await c.request(f.Body.CommitRequest, new f.CommitRequestT()))!.code, f.ErrorCode.INVALID_ARGUMENT);
  const garbage = commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [9, 9, 9, 9, 9, 9, 9, 9] })));
  t.is(garbage.error!.code, f.ErrorCode.INVALID_ARGUMENT);
  const badQuery = await c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [1, 0, 0, 0, 7] }));
  t.true([f.ErrorCode.INVALID_ARGUMENT].includes(errorOf(badQuery)?.code ?? queryResult(badQuery).error!.code));
  const watchBad = await c.request(f.Body.WatchRequest, make(f.WatchRequestT, { filter: make(f.WatchFilterT, { jobName: 'x' }) }));
  t.is(errorOf(watchBad)!.code, f.ErrorCode.INVALID_ARGUMENT);
  const big = await RawClient.open(d.url, admin);
  big.sendRaw(new Uint8Array(70_000));
  // uWS drops a connection whose frame is over maxPayloadLength at once (no close frame: 1006 at the client).
  t.true([1006, 1009].includes((await big.closed).code));
  // Everyone else is still served.
  const status = await c.request(f.Body.StatusRequest, new f.StatusRequestT());
  t.is(status.bodyType, f.Body.StatusResponse);
  c.close();
});

test('limits: requests in flight, subscriptions per connection, request rate, connections', async (t) => {
  const d = await daemon(t, { limits: { requestsInFlightMax: 4, subscriptionsMax: 2, requestsPerSecondMax: 50, connectionsMax: 3 } });
  const c = await RawClient.open(d.url, admin);
  const commits = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert([task(`x${i}`, configA, i)])])] }))));
  const exhausted = commits.filter((a) => errorOf(a)?.code === f.ErrorCode.RESOURCE_EXHAUSTED).length;
  t.true(exhausted >= 1 && exhausted <= 8, `${exhausted} refused`);
  const watches = [];
  for (let i = 0; i < 3; i++) watches.push(await c.request(f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: -1n })));
  t.is(errorOf(watches[2]!)!.code, f.ErrorCode.RESOURCE_EXHAUSTED);
  const burst = await Promise.all(Array.from({ length: 120 }, () => c.request(f.Body.WatchProgressRequest, make(f.WatchProgressRequestT, { subscription: 1 }))));
  t.true(burst.some((a) => errorOf(a)?.code === f.ErrorCode.RESOURCE_EXHAUSTED && /per second/.test(errorOf(a)!.message)));
  const more = [await RawClient.connect(d.url), await RawClient.connect(d.url)];
  await t.throwsAsync(RawClient.connect(d.url), { message: /503/ });
  const refusedLine = await d.waitLine((line) => line.msg === 'connection refused');
  t.is(refusedLine.level, 'warn');
  t.is(refusedLine.reason, 'too many connections');
  for (const m of more) m.close();
  c.close();
});

test('HTTP: healthz, readyz, metrics with the WebSocket implementation and the counters', async (t) => {
  const d = await daemon(t);
  t.is((await get(`${d.http}/healthz`)).status, 200);
  t.is((await get(`${d.http}/readyz`)).status, 200);
  t.is((await get(`${d.http}/nothing`)).status, 404);
  const c = await RawClient.open(d.url, admin);
  commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...seed] })));
  const metrics = (await get(`${d.http}/metrics`)).body;
  for (const name of ['strata_websocket_implementation{implementation="native"} 1', 'strata_commits_total{result="ok"} 1',
    'strata_connections 1', 'strata_fsync_seconds_bucket', 'strata_group_transactions_bucket', 'strata_commit_seconds_bucket',
    'strata_reader_pins', 'strata_subscriptions', 'strata_slow_consumer_closed_total', 'strata_process_resident_memory_bytes',
    'strata_revision 1', 'strata_commit_queue_depth']) {
    t.true(metrics.includes(name), name);
  }
  c.close();
});

test('the pure-JS uWS fallback is refused (exit 64) unless allowed, and /metrics names it', async (t) => {
  const dir = tempDir(t, 'fallback');
  const error = await t.throwsAsync(startDaemon({ dataDir: `${dir}/a`, env: { UWS_USE_FALLBACK: '1' } }));
  t.regex(error!.message, /exited with 64/);
  t.regex(error!.message, /fallback/);
  const d = await startDaemon({ dataDir: `${dir}/b`, env: { UWS_USE_FALLBACK: '1' }, args: ['--allow-uws-fallback'] });
  t.teardown(async () => { await d.stop(); });
  t.true((await get(`${d.http}/metrics`)).body.includes('strata_websocket_implementation{implementation="fallback"} 1'));
  // It serves the protocol (the fallback has no upgrade hook: the checks run at open), watches included.
  const c = await RawClient.open(d.url);
  const w = await RawClient.open(d.url);
  const sub = ((await w.request(f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: -1n }))).body as f.WatchResponseT).subscription;
  t.is(Number(commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...seed] }))).revision), 1);
  await w.until(() => w.count(sub) >= 1);
  t.is(((await c.request(f.Body.StatusRequest, new f.StatusRequestT())).body as f.StatusResponseT).websocket, 'fallback');
  c.close();
  w.close();
});

test('bad configuration exits 64 with the reason; a second daemon on the same data dir exits 73', async (t) => {
  const dir = tempDir(t, 'config');
  await t.throwsAsync(startDaemon({ dataDir: `${dir}/a`, config: { bogus: 1 } }), { message: /exited with 64[\s\S]*unknown key bogus/ });
  await t.throwsAsync(startDaemon({ dataDir: `${dir}/a`, config: { limits: { frameBytesMax: -5 } } }), { message: /exited with 64/ });
  await t.throwsAsync(startDaemon({ dataDir: `${dir}/a`, args: ['--listen', '0.0.0.0:0'] }), { message: /exited with 64[\s\S]*without tokens/ });
  const first = await startDaemon({ dataDir: `${dir}/b` });
  t.teardown(async () => { await first.stop(); });
  await t.throwsAsync(startDaemon({ dataDir: `${dir}/b` }), { message: /exited with 73/ });
  t.is(await first.stop(), 0);
});

test('TLS: wss with the configured certificate; the same protocol inside', async (t) => {
  const tls = (name: string) => fileURLToPath(new URL(`../../test/fixtures/tls/${name}`, import.meta.url));
  const d = await daemon(t, { tlsCertFile: tls('cert.pem'), tlsKeyFile: tls('key.pem') });
  t.regex(d.url, /^wss:\/\//);
  const ca = readFileSync(tls('cert.pem'));
  const c = await RawClient.open(d.url, admin, { ca });
  t.is(Number(commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...seed] }))).revision), 1);
  c.close();
  await t.throwsAsync(RawClient.connect(d.url), { message: /self[- ]signed|certificate/ }); // an unknown CA is refused
  await t.throwsAsync(RawClient.connect(d.url.replace('wss:', 'ws:')));
});

test('before recovery is done: /healthz 200, /readyz 503, WebSocket upgrades refused with 503', async (t) => {
  const { Server } = await import('../daemon/server.js');
  const { WatchHub } = await import('../daemon/watch.js');
  const { loadConfig } = await import('../daemon/config.js');
  const { DaemonLog } = await import('../daemon/log.js');
  const config = loadConfig(['--listen', '127.0.0.1:0'], {});
  const hub = new WatchHub(-1, { historyBytes: 1 << 20, bufferBytes: 1 << 20, closeBytes: 1 << 20, frameBytesMax: 1 << 20 });
  const server = new Server(config, {
    engine: () => null, ready: () => false, hub, metrics: null, version: 'test', websocket: 'native', startedMs: Date.now(),
    commitStaged: () => Promise.reject(new Error('no')), log: DaemonLog.silent(),
  });
  const port = await server.listen();
  t.teardown(() => server.stop());
  t.is((await get(`http://127.0.0.1:${port}/healthz`)).status, 200);
  t.is((await get(`http://127.0.0.1:${port}/readyz`)).status, 503);
  await t.throwsAsync(RawClient.connect(`ws://127.0.0.1:${port}/v1`), { message: /503/ });
  server.stop();
  // Stopping: no new connections; one kept alive from before is told 503.
  t.true([0, 503].includes((await get(`http://127.0.0.1:${port}/healthz`).catch(() => ({ status: 0 }))).status));
});
