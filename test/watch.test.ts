/**
 * Watch over real sockets, checked by validators over the recorded streams: every committed revision that
 * matches arrives once, in order, whole (with the records the commit wrote); list-then-watch; resume after a
 * reconnect and after a daemon restart (history from the log); bookmarks; COMPACTED; future starts; a slow
 * consumer that neither stalls the others nor grows the daemon's memory.
 */
import test from 'ava';
import { jobConfig, op, task, txn, upsert, transition, taskQuery } from './support/build.js';
import { tempDir } from './support/durable.js';
import { startDaemon } from './support/daemon.js';
import { commitResult, errorOf, f, make, queryResult, RawClient, revisionsOf } from './support/raw-client.js';

const configs = ['a', 'b', 'c'].map((role) => jobConfig(role, 'prod', 'web'));

/** A commit that must succeed; returns its revision. */
async function commit(c: RawClient, bytes: Uint8Array): Promise<number> {
  const result = commitResult(await c.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...bytes] })));
  if (result.error !== null) throw new Error(String(result.error.message));
  return Number(result.revision);
}

async function watch(c: RawClient, fields: Partial<f.WatchRequestT>): Promise<number> {
  const answer = await c.request(f.Body.WatchRequest, make(f.WatchRequestT, fields));
  if (answer.bodyType !== f.Body.WatchResponse) throw new Error(JSON.stringify(errorOf(answer)));
  return (answer.body as f.WatchResponseT).subscription;
}

/** The validator: revisions strictly increasing (ordered, unique), and exactly `expected`, each with its task. */
function validate(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void },
  got: f.RevisionChangesT[], expected: Map<number, string>, label: string): void {
  const revisions = got.map((r) => Number(r.revision));
  for (let i = 1; i < revisions.length; i++) t.true(revisions[i]! > revisions[i - 1]!, `${label}: ordered and unique at ${revisions[i]}`);
  t.deepEqual(revisions, [...expected.keys()].sort((x, y) => x - y), `${label}: none missing, none extra`);
  for (const r of got) {
    const ids = r.tasks.map((x) => String(x.assignedTask!.taskId));
    t.deepEqual(ids, [expected.get(Number(r.revision))!], `${label}: revision ${r.revision} whole`);
    t.true(r.tasks.every((x) => Number(x.modRevision) === Number(r.revision)), `${label}: records at their revision`);
  }
}

const roleOf = (i: number) => ['a', 'b', 'c'][i % 3]!;

test('ordered, unique, complete streams per filter; configs arrive with the first record that needs them', async (t) => {
  const dir = tempDir(t, 'watch');
  const d = await startDaemon({ dataDir: `${dir}/data` });
  t.teardown(async () => { await d.stop(); });
  const writer = await RawClient.open(d.url);
  const w = await RawClient.open(d.url);
  const all = await watch(w, { afterRevision: -1n });
  const roleA = await watch(w, { afterRevision: -1n, filter: make(f.WatchFilterT, { role: 'a' }) });
  const oneTask = await watch(w, { afterRevision: -1n, filter: make(f.WatchFilterT, { taskIds: ['t4'] }) });
  const expectedAll = new Map<number, string>();
  const expectedA = new Map<number, string>();
  const expectedTask = new Map<number, string>();
  // Concurrent commits from several connections: groups of many revisions.
  const writers = [writer, await RawClient.open(d.url), await RawClient.open(d.url)];
  await Promise.all(writers.map(async (c, k) => {
    for (let i = k; i < 90; i += 3) {
      const id = `t${i}`;
      const revision = await commit(c, txn([upsert([task(id, configs[i % 3]!, i)])]));
      expectedAll.set(revision, id);
      if (roleOf(i) === 'a') expectedA.set(revision, id);
      if (id === 't4') expectedTask.set(revision, id);
      const moved = await commit(c, txn([transition(id, f.ScheduleStatus.ASSIGNED)]));
      expectedAll.set(moved, id);
      if (roleOf(i) === 'a') expectedA.set(moved, id);
      if (id === 't4') expectedTask.set(moved, id);
    }
  }));
  await w.until(() => w.count(all) >= 180);
  await w.until(() => w.count(roleA) >= 60);
  validate(t, revisionsOf(w.pushes, all), expectedAll, 'all');
  validate(t, revisionsOf(w.pushes, roleA), expectedA, 'role a');
  await w.until(() => w.count(oneTask) >= 2);
  validate(t, revisionsOf(w.pushes, oneTask), expectedTask, 'task t4');
  // Each role's config arrives once, in the revision that first stored it, for the unfiltered and the role watch.
  const configsSeen = revisionsOf(w.pushes, all).flatMap((r) => r.configs);
  t.is(configsSeen.length, 3);
  t.is(revisionsOf(w.pushes, roleA).flatMap((r) => r.configs).length, 1);
  for (const c of [...writers, w]) c.close();
});

test('list-then-watch: the state at R, the end marker, then every change after R', async (t) => {
  const dir = tempDir(t, 'list');
  const d = await startDaemon({ dataDir: `${dir}/data` });
  t.teardown(async () => { await d.stop(); });
  const c = await RawClient.open(d.url);
  for (let i = 0; i < 30; i++) await commit(c, txn([upsert([task(`t${i}`, configs[i % 3]!, i)])]));
  const w = await RawClient.open(d.url);
  const sub = await watch(w, { list: true, filter: make(f.WatchFilterT, { role: 'b', tables: [f.RecordTable.TASK] }) });
  const later = [await commit(c, txn([upsert([task('late-b', configs[1]!, 99)])])), await commit(c, txn([upsert([task('late-a', configs[0]!, 98)])]))];
  await w.until(() => w.count(sub) >= 1);
  const kinds = w.pushes.filter((e) => (e.body as { subscription?: number }).subscription === sub).map((e) => e.bodyType);
  const end = kinds.indexOf(f.Body.WatchStateEnd);
  t.true(end > 0, 'state before the marker');
  t.true(kinds.slice(0, end).every((k) => k === f.Body.WatchState));
  const marker = w.pushes.find((e) => e.bodyType === f.Body.WatchStateEnd)!.body as f.WatchStateEndT;
  const state = w.pushes.filter((e) => e.bodyType === f.Body.WatchState).map((e) =>
    queryResult(make(f.EnvelopeT, { id: 1, bodyType: f.Body.QueryResponseMessage, body: make(f.QueryResponseMessageT, { response: (e.body as f.WatchStateT).response }) })));
  const listed = state.flatMap((s) => (s.result as f.TasksResultT).tasks.map((x) => String(x.assignedTask!.taskId)));
  t.true(state.every((s) => Number(s.revision) === Number(marker.revision)));
  const R = Number(marker.revision);
  t.true(R >= 30);
  const changes = revisionsOf(w.pushes, sub);
  t.true(changes.every((r) => Number(r.revision) > R), 'only changes after R');
  // Union of state and changes = the role's tasks now.
  const now = (queryResult(await c.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'b' })] }))).result as f.TasksResultT)
    .tasks.map((x) => String(x.assignedTask!.taskId));
  const union = new Set([...listed, ...changes.flatMap((r) => r.tasks.map((x) => String(x.assignedTask!.taskId)))]);
  t.deepEqual([...union].sort(), [...now].sort());
  t.true(later[0]! > R);
  t.true(((state[0]!.result as f.TasksResultT).configs.length) >= 1, 'the state carries the configs of its tasks');
  c.close();
  w.close();
});

test('resume after a daemon restart from the log, bookmarks, COMPACTED and future revisions', async (t) => {
  const dir = tempDir(t, 'resume');
  let d = await startDaemon({ dataDir: `${dir}/data`, config: { watch: { progressMs: 50 } } });
  const c = await RawClient.open(d.url);
  const names = new Map<number, string>();
  for (let i = 0; i < 20; i++) names.set(await commit(c, txn([upsert([task(`t${i}`, configs[0]!, i)])])), `t${i}`);
  const w = await RawClient.open(d.url);
  const sub = await watch(w, { afterRevision: 0n, progressMs: 50 });
  await w.until(() => w.count(sub) >= 20);
  // Bookmarks: an idle stream gets progress at the current revision.
  await w.until((p) => p.some((e) => e.bodyType === f.Body.WatchProgress && Number((e.body as f.WatchProgressT).revision) === 20));
  const lastSeen = 12; // as if the client had processed up to 12 when the daemon went away
  t.is(await d.stop(), 0);
  t.is((await w.closed).code, 1001);
  d = await startDaemon({ dataDir: `${dir}/data`, config: { watch: { progressMs: 50 } } });
  t.teardown(async () => { await d.stop(); });
  const c2 = await RawClient.open(d.url);
  for (let i = 20; i < 25; i++) names.set(await commit(c2, txn([upsert([task(`t${i}`, configs[0]!, i)])])), `t${i}`);
  const w2 = await RawClient.open(d.url);
  const resumed = await watch(w2, { afterRevision: BigInt(lastSeen) });
  await w2.until(() => w2.count(resumed) >= 13);
  const expected = new Map([...names].filter(([r]) => r > lastSeen));
  validate(t, revisionsOf(w2.pushes, resumed), expected, 'resumed');
  // A future start waits: nothing until the revision passes it.
  const future = await watch(w2, { afterRevision: 26n });
  await commit(c2, txn([upsert([task('t25', configs[0]!, 25)])]));
  await commit(c2, txn([upsert([task('t26', configs[0]!, 26)])]));
  await commit(c2, txn([upsert([task('t27', configs[0]!, 27)])]));
  await w2.until(() => w2.count(future) >= 2);
  t.deepEqual(revisionsOf(w2.pushes, future).map((r) => Number(r.revision)), [27, 28]); // 26 is the start
  c2.close();
  w2.close();
});

test('a start older than the kept history gets COMPACTED with the oldest revision', async (t) => {
  const dir = tempDir(t, 'compacted');
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { watch: { historyBytes: 1024 * 1024 } } });
  t.teardown(async () => { await d.stop(); });
  const c = await RawClient.open(d.url);
  const big = jobConfig('a', 'prod', 'big', { data: 'x'.repeat(200_000) });
  for (let i = 0; i < 12; i++) {
    await commit(c, txn([upsert([task(`big${i}`, jobConfig('a', 'prod', `big${i}`, { data: `${i}${'x'.repeat(200_000)}` }), 0)])]));
  }
  void big;
  const w = await RawClient.open(d.url);
  const status = (await w.request(f.Body.StatusRequest, new f.StatusRequestT())).body as f.StatusResponseT;
  const oldest = Number(status.oldestWatchRevision);
  t.true(oldest > 1, `oldest ${oldest}`);
  const sub = await watch(w, { afterRevision: 0n });
  await w.until((p) => p.some((e) => e.bodyType === f.Body.WatchEnded));
  const ended = w.pushes.find((e) => e.bodyType === f.Body.WatchEnded)!.body as f.WatchEndedT;
  t.is(ended.subscription, sub);
  t.is(ended.error!.code, f.ErrorCode.COMPACTED);
  t.is(Number(ended.error!.revision), oldest);
  const ok = await watch(w, { afterRevision: BigInt(oldest - 1) });
  await w.until(() => w.count(ok) >= 12 - oldest + 1);
  t.is(Number(revisionsOf(w.pushes, ok)[0]!.revision), oldest);
  c.close();
  w.close();
});

/** A daemon with small watch buffers (64 KiB soft, 1 MiB hard), a committer and a connection to make slow. */
async function slowSetup(t: { teardown: (fn: () => Promise<void>) => void }, dir: string) {
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { limits: { frameBytesMax: 1 << 20 }, watch: { bufferBytes: 65536, closeBytes: 1 << 20, historyBytes: 64 << 20 } } });
  t.teardown(async () => { await d.stop(); });
  return { d, c: await RawClient.open(d.url), slow: await RawClient.open(d.url) };
}

test('a slow consumer catches up or is cut off with a resumable code; the others and the writer go on', async (t) => {
  const dir = tempDir(t, 'slow');
  const { d, c, slow } = await slowSetup(t, dir);
  const fast = await RawClient.open(d.url);
  const slowSub = await watch(slow, { afterRevision: -1n });
  const fastSub = await watch(fast, { afterRevision: -1n });
  // The slow client stops reading its socket.
  slow.ws.pause();
  const expected = new Map<number, string>();
  // ~16 KB per revision (task events with long messages), 16 MB in all: more than the kernel's socket buffers.
  const pad = jobConfig('a', 'prod', 'pad');
  const padded = (i: number) => {
    const x = task(`s${i}`, pad, i);
    x.taskEvents = Array.from({ length: 4 }, (_, k) => make(f.TaskEventT, { timestamp: BigInt(k + 1), status: f.ScheduleStatus.PENDING, message: `${k}`.repeat(4000) }));
    return x;
  };
  const t0 = Date.now();
  for (let i = 0; i < 1000; i++) {
    expected.set(await commit(c, txn([upsert([padded(i)])])), `s${i}`);
  }
  t.log(`commits ${Date.now() - t0} ms`);
  await fast.until(() => fast.count(fastSub) >= 1000);
  validate(t, revisionsOf(fast.pushes, fastSub), expected, 'fast');
  const metrics = await (await fetch(`${d.http}/metrics`)).text();
  t.regex(metrics, /strata_slow_consumer_catchups_total [1-9]/);
  t.log(`fast done ${Date.now() - t0} ms; slow has ${slow.count(slowSub)}`);
  slow.ws.resume();
  await slow.until((p) => slow.count(slowSub) >= 1000 || p.some((e) => e.bodyType === f.Body.WatchEnded), 120_000)
    .catch(() => undefined);
  t.log(`slow done ${Date.now() - t0} ms`);
  const got = revisionsOf(slow.pushes, slowSub);
  t.log(`slow: ${got.length} revisions, ended: ${JSON.stringify(slow.pushes.filter((e) => e.bodyType === f.Body.WatchEnded).map((e) => (e.body as f.WatchEndedT).error?.code))}`);
  // Whatever it got is a gapless prefix; it got all (caught up from history) here, as history was large enough.
  const prefix = new Map([...expected].slice(0, got.length));
  validate(t, got, prefix, 'slow');
  t.is(got.length, 1000);
  for (const x of [c, slow, fast]) x.close();
});

test('a connection that does not read past the hard buffer limit is closed with 4408; its watch resumes after its last revision without a gap', async (t) => {
  const dir = tempDir(t, 'cut');
  const { d, c, slow } = await slowSetup(t, dir);
  const sub = await watch(slow, { afterRevision: -1n });
  slow.ws.pause();
  const expected = new Map<number, string>();
  const pad = jobConfig('a', 'prod', 'pad');
  for (let i = 0; i < 400; i++) {
    const x = task(`s${i}`, pad, i);
    x.taskEvents = Array.from({ length: 4 }, (_, k) => make(f.TaskEventT, { timestamp: BigInt(k + 1), status: f.ScheduleStatus.PENDING, message: `${k}`.repeat(4000) }));
    expected.set(await commit(c, txn([upsert([x])])), `s${i}`);
  }
  // It keeps asking for all tasks (~6 MB each answer) without reading: its buffer passes 1 MiB.
  for (let i = 0; i < 8; i++) void slow.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'a' })] }));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  slow.ws.resume();
  t.is((await slow.closed).code, 4408);
  const got = revisionsOf(slow.pushes, sub);
  t.true(got.length < 400);
  validate(t, got, new Map([...expected].slice(0, got.length)), 'before the cut');
  const last = got.length === 0 ? 0 : Number(got[got.length - 1]!.revision);
  const again = await RawClient.open(d.url);
  const resumed = await watch(again, { afterRevision: BigInt(last) });
  await again.until(() => again.count(resumed) >= 400 - got.length);
  validate(t, revisionsOf(again.pushes, resumed), new Map([...expected].slice(got.length)), 'resumed');
  const metrics = await (await fetch(`${d.http}/metrics`)).text();
  t.regex(metrics, /strata_slow_consumer_closed_total 1/);
  c.close();
  again.close();
});

test('review findings: task ids do not escape the role; filters are bounded; ended subscriptions free their slot; list states are paced and fragmented; a role/env list holds only its environment', async (t) => {
  const dir = tempDir(t, 'review');
  const tokenA = 'role-a-token-0123456789';
  const d = await startDaemon({ dataDir: `${dir}/data`, config: {
    tokens: [{ name: 'admin', token: 'admin-token-0123456789', admin: true }, { name: 'a', token: tokenA, read: ['a'] }],
    limits: { frameBytesMax: 65536, subscriptionsMax: 2 }, watch: { bufferBytes: 65536, closeBytes: 1 << 20, historyBytes: 1 << 20 } } });
  t.teardown(async () => { await d.stop(); });
  const admin = await RawClient.open(d.url, 'admin-token-0123456789');
  const a = await RawClient.open(d.url, tokenA);
  // 1. A role-a token naming role b's task id gets nothing of it.
  const sneaky = await watch(a, { afterRevision: -1n, filter: make(f.WatchFilterT, { role: 'a', tables: [f.RecordTable.TASK], taskIds: ['b-secret'] }) });
  const honest = await watch(admin, { afterRevision: -1n, filter: make(f.WatchFilterT, { taskIds: ['b-secret'] }) });
  await commit(admin, txn([upsert([task('b-secret', configs[1]!, 0)])]));
  await commit(admin, txn([upsert([task('a-1', configs[0]!, 0)])]));
  await admin.until(() => admin.count(honest) >= 1);
  await a.request(f.Body.WatchProgressRequest, make(f.WatchProgressRequestT, { subscription: sneaky }));
  await a.until((p) => p.some((e) => e.bodyType === f.Body.WatchProgress));
  t.is(a.count(sneaky), 0);
  // 2. Filters are bounded: ids per filter, bytes per id.
  const tooMany = await admin.request(f.Body.WatchRequest, make(f.WatchRequestT, { filter: make(f.WatchFilterT, { taskIds: Array.from({ length: 1001 }, (_, i) => `t${i}`) }) }));
  t.is(errorOf(tooMany)!.code, f.ErrorCode.INVALID_ARGUMENT);
  const tooLong = await admin.request(f.Body.WatchRequest, make(f.WatchRequestT, { filter: make(f.WatchFilterT, { taskIds: ['x'.repeat(300)] }) }));
  t.is(errorOf(tooLong)!.code, f.ErrorCode.INVALID_ARGUMENT);
  // 3. A subscription the hub ends (history passed it while its reader stalled) frees its slot (max 2 here).
  const p = await RawClient.open(d.url, 'admin-token-0123456789');
  const stalled = await watch(p, { afterRevision: -1n });
  p.ws.pause();
  // 200 revisions of ~50 KB (a frame here is at most 64 KiB): more than the kernel's socket buffers and history.
  const big = (i: number) => jobConfig('a', 'prod', `big${i}`, { data: `${i}${'x'.repeat(50_000)}` });
  for (let i = 0; i < 200; i++) await commit(admin, txn([upsert([task(`big${i}`, big(i), 0)])]));
  const twice = [p.request(f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: -1n })),
    p.request(f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: -1n }))];
  p.ws.resume();
  const answers = await Promise.all(twice);
  const ended = p.pushes.find((e) => e.bodyType === f.Body.WatchEnded)?.body as f.WatchEndedT | undefined;
  t.is(ended?.subscription, stalled);
  t.is(ended?.error?.code, f.ErrorCode.COMPACTED);
  t.deepEqual(answers.map((x) => x.bodyType), [f.Body.WatchResponse, f.Body.WatchResponse], 'the ended subscription no longer counts');
  t.is(errorOf(await p.request(f.Body.WatchCancel, make(f.WatchCancelT, { subscription: stalled })))!.code, f.ErrorCode.NOT_FOUND);
  p.close();
  // 4. A list whose state is bigger than a frame: fragments (partial), paced under the buffer limit, then the end.
  const lister = await RawClient.open(d.url, 'admin-token-0123456789');
  const listed = await watch(lister, { list: true, filter: make(f.WatchFilterT, { role: 'a', tables: [f.RecordTable.TASK] }) });
  await lister.until((p) => p.some((e) => e.bodyType === f.Body.WatchStateEnd));
  const states = lister.pushes.filter((e) => e.bodyType === f.Body.WatchState);
  t.true(states.length > 1, 'fragmented');
  t.true(states.every((e) => e.bytes.byteLength <= 65536));
  t.true((states.at(-1)!.body as f.WatchStateT).partial === false && (states[0]!.body as f.WatchStateT).partial === true);
  const joined = Buffer.concat(states.map((e) => Uint8Array.from((e.body as f.WatchStateT).response)));
  const state = queryResult(make(f.EnvelopeT, { id: 1, bodyType: f.Body.QueryResponseMessage, body: make(f.QueryResponseMessageT, { response: [...joined] }) }));
  t.is((state.result as f.TasksResultT).tasks.length, 201);
  t.is(listed, (states[0]!.body as f.WatchStateT).subscription);
  // 5. A role + environment list holds that environment's cron jobs only.
  const cron = (env: string, name: string) => op(f.Op.SaveCronJob, make(f.SaveCronJobT, { job: make(f.JobConfigurationT, {
    key: make(f.JobKeyT, { role: 'a', environment: env, name }), cronSchedule: '0 * * * *', instanceCount: 1,
    taskConfig: jobConfig('a', env, name) }) }));
  await commit(admin, txn([cron('prod', 'hourly'), cron('devel', 'nightly')]));
  const envLister = await RawClient.open(d.url, 'admin-token-0123456789');
  await watch(envLister, { list: true, filter: make(f.WatchFilterT, { role: 'a', environment: 'prod', tables: [f.RecordTable.CRON_JOB] }) });
  await envLister.until((p) => p.some((e) => e.bodyType === f.Body.WatchStateEnd));
  const cronState = envLister.pushes.filter((e) => e.bodyType === f.Body.WatchState).map((e) =>
    queryResult(make(f.EnvelopeT, { id: 1, bodyType: f.Body.QueryResponseMessage, body: make(f.QueryResponseMessageT, { response: (e.body as f.WatchStateT).response }) })));
  const names = cronState.flatMap((r) => (r.result as f.CronJobsResultT).jobs.map((j) => `${j.key!.environment}/${j.key!.name}`));
  t.deepEqual(names, ['prod/hourly']);
  t.is((cronState[0]!.result as f.CronJobsResultT).configs.length, 1);
  for (const c of [admin, a, lister, envLister]) c.close();
});
