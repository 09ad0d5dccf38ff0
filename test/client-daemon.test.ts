/**
 * The client SDK against a real stratad (a child process on 127.0.0.1, temporary data directory): commits with
 * the builder, idempotent replays, typed queries, scopes, list-then-watch, and a watch that lives through a
 * daemon restart on the same port without a duplicate or a gap. test/client.test.ts covers the failure paths
 * against a fake server; this checks that both ends read the protocol the same way.
 */
import test from 'ava';
import { ErrorCode, ScheduleStatus, StrataClient, StrataError, type WatchMessage } from '../client/index.js';
import { jobConfig, task } from './support/build.js';
import { startDaemon } from './support/daemon.js';
import { tempDir } from './support/durable.js';
import { proxy } from './support/proxy.js';

const admin = 'admin-token-0123456789';
const roleA = 'role-a-token-0123456789';
const tokens = [
  { name: 'admin', token: admin, admin: true },
  { name: 'a', token: roleA, read: ['a'], write: ['a'] },
];

async function next(iterator: AsyncIterator<WatchMessage>, type: WatchMessage['type']): Promise<WatchMessage> {
  for (;;) {
    const item = await iterator.next();
    if (item.done) throw new Error('the watch ended');
    if (item.value.type === type) return item.value;
  }
}

test('commits, queries, scopes and a watch across a daemon restart', async (t) => {
  const dir = tempDir(t, 'client');
  let daemon = await startDaemon({ dataDir: `${dir}/data`, config: { tokens } });
  t.teardown(async () => { await daemon.stop(); });
  const url = `ws://127.0.0.1:${await proxy(t, () => daemon.port)}/v1`;

  const refused = await t.throwsAsync(StrataClient.connect({ url: daemon.url, token: 'wrong-token-0123456789' }),
    { instanceOf: StrataError });
  t.is(refused?.code, ErrorCode.UNAUTHENTICATED);

  const client = await StrataClient.connect({ url, token: admin, clientName: 'client-daemon-test',
    reconnect: { initialMs: 50, maxMs: 250, factor: 2, jitter: 0.1 } });
  t.teardown(() => client.close());
  t.true(client.hello?.admin);

  const config = jobConfig('a', 'prod', 'web');
  const created = client.txn().expectAbsent({ task: 'a-0' })
    .upsertTasks([task('a-0', config, 0), task('a-1', config, 1)]);
  const first = await created.commit();
  t.is(first.error, null);
  t.false(first.duplicate);
  const again = await created.commit(); // the same key: the first outcome, nothing applied
  t.true(again.duplicate);
  t.is(again.revision, first.revision);

  const listed = await client.tasks({ role: 'a' });
  t.deepEqual(listed.result.tasks.map((x) => x.assignedTask!.taskId), ['a-0', 'a-1']);
  t.is(listed.revision, first.revision);

  const failed = await client.txn().transition('a-0', ScheduleStatus.RUNNING, { expectStatus: ScheduleStatus.ASSIGNED }).commit();
  t.is(failed.error?.code, ErrorCode.PRECONDITION_FAILED);

  const scoped = await StrataClient.connect({ url: daemon.url, token: roleA });
  t.teardown(() => scoped.close());
  t.is((await scoped.tasks({ role: 'a' })).result.tasks.length, 2);
  const denied = await t.throwsAsync(scoped.roleSummary(), { instanceOf: StrataError });
  t.is(denied?.code, ErrorCode.PERMISSION_DENIED);

  const watch = client.watch({ list: true, filter: { role: 'a' } });
  const state = await next(watch, 'state');
  t.true(state.type === 'state' && state.response.error === null);
  const end = await next(watch, 'stateEnd');
  t.is(end.type === 'stateEnd' ? end.revision : -1n, first.revision);
  const moved = await client.txn().transition('a-0', ScheduleStatus.ASSIGNED, { enforce: true, slaveHost: 'h1' }).commit();
  t.is(moved.error, null);
  const change = await next(watch, 'changes');
  t.is(change.type === 'changes' ? change.revision : -1n, moved.revision);

  await daemon.stop();
  daemon = await startDaemon({ dataDir: `${dir}/data`, config: { tokens } });
  const after = await client.txn().transition('a-1', ScheduleStatus.ASSIGNED, { enforce: true, slaveHost: 'h2' }).commit();
  t.is(after.error, null);
  const resumed = await next(watch, 'changes');
  t.is(resumed.type === 'changes' ? resumed.revision : -1n, after.revision);
  t.is(resumed.type === 'changes' ? resumed.changes.tasks[0]!.assignedTask!.taskId : '', 'a-1');
  await watch.return();

  t.true((await client.status()).revision >= after.revision);
});

test('a list state larger than a frame arrives in pieces that the client joins', async (t) => {
  const dir = tempDir(t, 'client-fragments');
  const daemon = await startDaemon({ dataDir: `${dir}/data`, config: { limits: { frameBytesMax: 65536 }, watch: { closeBytes: 1 << 20, bufferBytes: 65536 } } });
  t.teardown(async () => { await daemon.stop(); });
  const client = await StrataClient.connect({ url: daemon.url });
  t.teardown(() => client.close());
  const config = jobConfig('a', 'prod', 'web');
  for (let i = 0; i < 10; i++) {
    const x = task(`a-${i}`, config, i);
    x.taskEvents[0]!.message = 'm'.repeat(4000);
    const tasks = [x];
    for (let k = 1; k < 4; k++) tasks.push(Object.assign(task(`a-${i}-${k}`, config, 100 * i + k), { taskEvents: x.taskEvents }));
    t.is((await client.txn().upsertTasks(tasks).commit()).error, null);
  }
  const watch = client.watch({ list: true, filter: { role: 'a' } });
  const state = await next(watch, 'state');
  t.true(state.type === 'state' && (state.response.result as { tasks: unknown[] }).tasks.length === 40);
  const end = await next(watch, 'stateEnd');
  t.is(end.type === 'stateEnd' ? end.revision : -1n, 10n);
  await watch.return();
});
