/**
 * The client SDK (client/) against a fake server (test/support/fake-strata.ts): Hello and refused tokens,
 * request/response matching out of order, timeouts, reconnects with backoff, which requests are resent after a
 * lost connection (keyed commits with the same key, queries) and which fail (unkeyed commits), watches that
 * resume without duplicates or gaps, fragments, COMPACTED, progress bookmarks, cancel, a slow consumer, resets,
 * and bad input from the server. No assertion depends on how long anything takes.
 */
import test from 'ava';
import * as flatbuffers from 'flatbuffers';
import { encode } from '../core/codec.js';
import {
  CompactedError, ErrorCode, ScheduleStatus, StrataClient, StrataError, TimeoutError, UnavailableError,
  type WatchMessage,
} from '../client/index.js';
import { changes, f, FakeStrata, frame, type FakeConnection, type Received } from './support/fake-strata.js';

async function setup(t: { teardown(fn: () => unknown): void }, options: Partial<Parameters<typeof StrataClient.connect>[0]> = {}) {
  const server = await FakeStrata.start();
  t.teardown(() => server.close());
  const client = await StrataClient.connect({
    url: server.url, token: 'secret', clientName: 'test', reconnect: { initialMs: 5, maxMs: 50, factor: 2, jitter: 0 },
    ...options,
  });
  t.teardown(() => client.close());
  return { server, client };
}

function decodeTransaction(r: Received): f.TransactionT {
  const bytes = Uint8Array.from((r.body as f.CommitRequestT).transaction);
  return f.Transaction.getRootAsTransaction(byteBuffer(bytes)).unpack();
}

function decodeQuery(r: Received): f.QueryRequestT {
  const bytes = Uint8Array.from((r.body as f.QueryRequestMessageT).request);
  return f.QueryRequest.getRootAsQueryRequest(byteBuffer(bytes)).unpack();
}

const byteBuffer = (bytes: Uint8Array) => new flatbuffers.ByteBuffer(bytes);

function taskResponse(revision: bigint, ids: string[]): f.QueryResponseT {
  const tasks = ids.map((id) => {
    const task = new f.ScheduledTaskT();
    task.assignedTask = new f.AssignedTaskT();
    task.assignedTask.taskId = id;
    return task;
  });
  return new f.QueryResponseT(revision, f.Result.TasksResult, new f.TasksResultT(tasks, [], ids.length), null);
}

/** Reads `count` messages from a watch. */
async function take(iterator: AsyncIterator<WatchMessage>, count: number): Promise<WatchMessage[]> {
  const out: WatchMessage[] = [];
  while (out.length < count) {
    const next = await iterator.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

const revisionsOf = (messages: WatchMessage[]) => messages.map((m) => `${m.type}:${'revision' in m ? m.revision : ''}`);

test('hello: the token, name and versions go out; the answer is kept', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const hello = (await connection.waitFor(f.Body.Hello)).body as f.HelloT;
  t.is(hello.token, 'secret');
  t.is(hello.clientName, 'test');
  t.is(hello.protocolMin, 1);
  t.is(hello.protocolMax, 1);
  t.is(client.hello?.serverVersion, 'fake');
  t.is(client.hello?.revision, 5n);
  t.true(client.connected);
});

test('a refused token fails connect with UNAUTHENTICATED and never reconnects', async (t) => {
  const server = await FakeStrata.start();
  t.teardown(() => server.close());
  server.onConnection = (c) => {
    void c.waitFor(f.Body.Hello).then((hello) => {
      c.error(hello.id, f.ErrorCode.UNAUTHENTICATED, 'bad token');
      c.close(4401, 'unauthenticated');
    });
  };
  const error = await t.throwsAsync(StrataClient.connect({ url: server.url, token: 'wrong' }), { instanceOf: StrataError });
  t.is(error?.code, ErrorCode.UNAUTHENTICATED);
  t.is(server.connections.length, 1);
});

test('a 4401 close on a reconnect is final: pending requests fail UNAUTHENTICATED', async (t) => {
  const { server, client } = await setup(t);
  server.onConnection = (c) => c.close(4401, 'token revoked');
  const failed = new Promise<StrataError>((resolve) => client.once('failed', resolve));
  (await server.connection(0)).close(1001, 'going away');
  const pending = client.status();
  t.is((await failed).code, ErrorCode.UNAUTHENTICATED);
  const error = await t.throwsAsync(pending, { instanceOf: StrataError });
  t.is(error?.code, ErrorCode.UNAUTHENTICATED);
  await t.throwsAsync(client.status(), { instanceOf: StrataError });
});

test('responses are matched by id, in any order', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const roles = ['a', 'b', 'c', 'd'];
  const answers = roles.map((role) => client.tasks({ role }));
  const requests: Received[] = [];
  for (const role of roles) {
    requests.push(await connection.waitFor(f.Body.QueryRequestMessage, (r) => (decodeQuery(r).query as f.TaskQueryT).role === role));
  }
  t.is(new Set(requests.map((r) => r.id)).size, roles.length);
  for (const [index, request] of [...requests.entries()].reverse()) {
    connection.queryResult(request.id, taskResponse(BigInt(10 + index), [`task-${roles[index]}`]));
  }
  const results = await Promise.all(answers);
  t.deepEqual(results.map((r) => r.result.tasks[0]!.assignedTask!.taskId), ['task-a', 'task-b', 'task-c', 'task-d']);
  t.deepEqual(results.map((r) => r.revision), [10n, 11n, 12n, 13n]);
});

test('a query error and a request-level error surface as StrataError', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  server.onRequest = (c, r) => {
    if (r.type === f.Body.QueryRequestMessage) {
      c.queryResult(r.id, new f.QueryResponseT(9n, f.Result.NONE, null,
        new f.ErrorT(f.ErrorCode.PERMISSION_DENIED, 'role www is outside the token', -1, -1, 9n)));
    } else c.error(r.id, f.ErrorCode.RESOURCE_EXHAUSTED, 'slow down', 9n);
  };
  const denied = await t.throwsAsync(client.tasks({ role: 'www' }), { instanceOf: StrataError });
  t.is(denied?.code, ErrorCode.PERMISSION_DENIED);
  const raw = await client.query(encode(new f.QueryRequestT(f.Query.RoleSummaryQuery, new f.RoleSummaryQueryT())));
  t.is(raw.error?.code, f.ErrorCode.PERMISSION_DENIED);
  const exhausted = await t.throwsAsync(client.status(), { instanceOf: StrataError });
  t.is(exhausted?.code, ErrorCode.RESOURCE_EXHAUSTED);
  t.is(exhausted?.revision, 9n);
  t.true(connection.received.length >= 4);
});

test('a request without an answer times out; its late answer is ignored', async (t) => {
  const { server, client } = await setup(t, { requestTimeoutMs: 100 });
  const connection = await server.connection(0);
  const error = await t.throwsAsync(client.status(), { instanceOf: TimeoutError });
  t.is(error?.code, ErrorCode.DEADLINE_EXCEEDED);
  const late = await connection.waitFor(f.Body.StatusRequest);
  connection.reply(late.id, f.Body.StatusResponse, new f.StatusResponseT(1n));
  server.onRequest = (c, r) => c.reply(r.id, f.Body.StatusResponse, new f.StatusResponseT(2n));
  t.is((await client.status()).revision, 2n);
  t.true(client.connected);
});

test('reconnects with exponential backoff; a successful Hello resets the attempts', async (t) => {
  const { server, client } = await setup(t, { reconnect: { initialMs: 10, maxMs: 40, factor: 2, jitter: 0 } });
  const delays: [number, number][] = [];
  client.on('reconnecting', ({ attempt, delayMs }) => delays.push([attempt, delayMs]));
  let refuse = 4;
  server.onConnection = (c) => {
    if (refuse-- > 0) c.terminate();
    else server.answerHello(c);
  };
  const connected = new Promise((resolve) => client.once('connected', resolve));
  (await server.connection(0)).close(1001, 'restart');
  await connected;
  t.deepEqual(delays, [[1, 10], [2, 20], [3, 40], [4, 40], [5, 40]]);
  const again = new Promise((resolve) => client.once('connected', resolve));
  (await server.connection(5)).close(1001, 'restart');
  await again;
  t.deepEqual(delays.at(-1), [1, 10]);
});

test('jitter stays within its share of the delay', async (t) => {
  const { backoffDelayMs, backoffOf } = await import('../client/backoff.js');
  const backoff = backoffOf({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 });
  t.is(backoffDelayMs(backoff, 1, () => 0), 50);
  t.is(backoffDelayMs(backoff, 1, () => 1), 150);
  t.is(backoffDelayMs(backoff, 3, () => 0.5), 400);
  t.is(backoffDelayMs(backoff, 10, () => 1), 1000);
});

test('a keyed commit lost with its connection is sent again with the same key', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  const task = new f.ScheduledTaskT();
  task.assignedTask = new f.AssignedTaskT();
  task.assignedTask.taskId = 't-1';
  const result = client.txn().upsertTasks([task]).transition('t-1', ScheduleStatus.RUNNING, { expectStatus: ScheduleStatus.PENDING }).commit();
  const sent = await first.waitFor(f.Body.CommitRequest);
  first.terminate();
  const second = await server.connection(1);
  const resent = await second.waitFor(f.Body.CommitRequest);
  const a = decodeTransaction(sent);
  const b = decodeTransaction(resent);
  t.truthy(a.idempotency?.clientId);
  t.is(a.idempotency?.clientId, b.idempotency?.clientId);
  t.is(a.idempotency?.sequence, b.idempotency?.sequence);
  t.deepEqual((resent.body as f.CommitRequestT).transaction, (sent.body as f.CommitRequestT).transaction);
  second.commitResult(resent.id, new f.TransactionResultT(7n, null, [], true));
  const committed = await result;
  t.is(committed.revision, 7n);
  t.true(committed.duplicate);
});

test('an unkeyed commit lost with its connection fails with UnavailableError (outcome unknown)', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  const result = client.txn().deleteTasks(['t-1']).withoutIdempotencyKey().commit();
  const query = client.status();
  await first.waitFor(f.Body.CommitRequest);
  await first.waitFor(f.Body.StatusRequest);
  first.terminate();
  const error = await t.throwsAsync(result, { instanceOf: UnavailableError });
  t.true(error?.ackUnknown);
  const second = await server.connection(1);
  const status = await second.waitFor(f.Body.StatusRequest);
  second.reply(status.id, f.Body.StatusResponse, new f.StatusResponseT(3n));
  t.is((await query).revision, 3n);
  t.is(second.received.filter((r) => r.type === f.Body.CommitRequest).length, 0);
});

test('raw Transaction bytes: keyed ones are resent, unkeyed ones are not', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  const ops = [new f.OperationT(f.Op.RemoveQuota, new f.RemoveQuotaT('www'))];
  const keyed = client.commit(encode(new f.TransactionT(new f.IdempotencyKeyT('me', 1n), [], [], ops)));
  const unkeyed = client.commit(new f.TransactionT(null, [], [], ops));
  await first.waitFor(f.Body.CommitRequest);
  await first.waitFor(f.Body.CommitRequest, (r) => r.id !== first.received.find((x) => x.type === f.Body.CommitRequest)!.id);
  first.terminate();
  await t.throwsAsync(unkeyed, { instanceOf: UnavailableError });
  const second = await server.connection(1);
  const resent = await second.waitFor(f.Body.CommitRequest);
  t.is(decodeTransaction(resent).idempotency?.clientId, 'me');
  second.commitResult(resent.id, new f.TransactionResultT(8n));
  t.is((await keyed).revision, 8n);
});

test('the transaction builder: ops, preconditions, increasing keys, frozen once built', (t) => {
  const client = Object.create(StrataClient.prototype) as StrataClient;
  Object.assign(client, { idempotencyClientId: 'client-x', idempotencySequence: 0n });
  const one = client.txn()
    .expectAbsent({ task: 't-9' })
    .expectRevision({ cronJob: { role: 'www', environment: 'prod', name: 'cron' } }, 12)
    .expectTaskStatus('t-1', ScheduleStatus.RUNNING)
    .expectPresent({ quota: 'www' })
    .transition('t-1', ScheduleStatus.FINISHED, { enforce: true, message: 'done', timestamp: 5, failureCount: 2 })
    .removeCronJob({ role: 'www', environment: 'prod', name: 'cron' })
    .saveQuota('www', [new f.ResourceT(f.ResourceType.NUM_CPUS, 4)]);
  const decoded = f.Transaction.getRootAsTransaction(byteBuffer(one.encode())).unpack();
  t.deepEqual(decoded.ops.map((o) => o.opType), [f.Op.TransitionTask, f.Op.RemoveCronJob, f.Op.SaveQuota]);
  const transition = decoded.ops[0]!.op as f.TransitionTaskT;
  t.is(transition.taskId, 't-1');
  t.true(transition.enforce);
  t.false(transition.hasExpectStatus);
  t.is(transition.timestamp, 5n);
  t.is(transition.failureCount, 2);
  t.is(transition.timesPartitioned, -1);
  t.deepEqual(decoded.preconditions.map((p) => [p.table, p.kind]), [
    [f.RecordTable.TASK, f.PreconditionKind.ABSENT], [f.RecordTable.CRON_JOB, f.PreconditionKind.AT_REVISION],
    [f.RecordTable.TASK, f.PreconditionKind.TASK_STATUS], [f.RecordTable.QUOTA, f.PreconditionKind.PRESENT],
  ]);
  t.is(decoded.preconditions[1]!.revision, 12n);
  t.is(decoded.preconditions[1]!.job?.name, 'cron');
  t.is(decoded.preconditions[2]!.status, f.ScheduleStatus.RUNNING);
  t.is(decoded.idempotency?.clientId, 'client-x');
  t.is(decoded.idempotency?.sequence, 1n);
  t.is(one.encode(), one.encode());
  t.throws(() => one.removeQuota('x'), { instanceOf: StrataError });
  const two = client.txn().removeQuota('www').build();
  t.is(two.idempotency?.sequence, 2n);
  t.throws(() => client.txn().encode(), { instanceOf: StrataError });
});

test('a query lost with its connection is sent again', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  const result = client.jobKeys('www');
  await first.waitFor(f.Body.QueryRequestMessage);
  first.close(1001, 'restart');
  const second = await server.connection(1);
  const again = await second.waitFor(f.Body.QueryRequestMessage);
  t.is((decodeQuery(again).query as f.JobKeysQueryT).role, 'www');
  second.queryResult(again.id, new f.QueryResponseT(4n, f.Result.JobKeysResult,
    new f.JobKeysResultT([new f.JobKeyT('www', 'prod', 'api')]), null));
  t.is((await result).result.jobs[0]!.name, 'api');
});

test('without reconnect a lost connection fails requests and watches with UnavailableError', async (t) => {
  const { server, client } = await setup(t, { reconnect: false });
  const first = await server.connection(0);
  const query = client.status();
  const watch = client.watch({ afterRevision: 0 });
  await first.waitFor(f.Body.StatusRequest);
  const subscribe = await first.waitFor(f.Body.WatchRequest);
  first.watchResponse(subscribe.id, 1, 5n);
  first.terminate();
  await t.throwsAsync(query, { instanceOf: UnavailableError });
  await t.throwsAsync(watch.next(), { instanceOf: UnavailableError });
  await t.throwsAsync(client.status(), { instanceOf: UnavailableError });
});

test('a watch resumes after a reconnect with no duplicates and no gaps', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  const watch = client.watch({ afterRevision: 0, filter: { role: 'www' } });
  const subscribe = await first.waitFor(f.Body.WatchRequest);
  const request = subscribe.body as f.WatchRequestT;
  t.is(request.afterRevision, 0n);
  t.is(request.filter?.role, 'www');
  t.false(request.list);
  first.watchResponse(subscribe.id, 7, 3n);
  first.events(7, [1n, 2n]);
  first.events(7, [3n]);
  t.deepEqual(revisionsOf(await take(watch, 3)), ['changes:1', 'changes:2', 'changes:3']);
  t.is(watch.revision, 3n);
  first.close(1001, 'restart');
  const second = await server.connection(1);
  const resubscribe = await second.waitFor(f.Body.WatchRequest);
  t.is((resubscribe.body as f.WatchRequestT).afterRevision, 3n);
  t.is((resubscribe.body as f.WatchRequestT).filter?.role, 'www');
  second.watchResponse(resubscribe.id, 1, 5n);
  second.events(1, [2n, 3n, 4n]);
  second.events(1, [5n]);
  const more = await take(watch, 2);
  t.deepEqual(revisionsOf(more), ['changes:4', 'changes:5']);
  const changed = more[0] as Extract<WatchMessage, { type: 'changes' }>;
  t.is(changed.changes.tasks[0]!.assignedTask!.taskId, 't-4');
  await watch.return();
});

test('afterRevision -1 resumes after the revision the subscription started at', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  const watch = client.watch();
  const subscribe = await first.waitFor(f.Body.WatchRequest);
  t.is((subscribe.body as f.WatchRequestT).afterRevision, -1n);
  first.watchResponse(subscribe.id, 1, 40n);
  first.progress(1, 40n);
  t.deepEqual(revisionsOf(await take(watch, 1)), ['progress:40']);
  first.terminate();
  const second = await server.connection(1);
  t.is(((await second.waitFor(f.Body.WatchRequest)).body as f.WatchRequestT).afterRevision, 40n);
  await watch.return();
});

test('fragments of a partial revision are put together', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const watch = client.watch({ afterRevision: 10 });
  const subscribe = await connection.waitFor(f.Body.WatchRequest);
  connection.watchResponse(subscribe.id, 2, 10n);
  const tasks = Array.from({ length: 50 }, (_, i) => {
    const task = new f.ScheduledTaskT();
    task.assignedTask = new f.AssignedTaskT();
    task.assignedTask.taskId = `big-${i}`;
    return task;
  });
  const big = encode(changes(11n, { tasks }), 1024);
  const third = Math.floor(big.length / 3);
  connection.eventBytes(2, [big.subarray(0, third)], true);
  connection.eventBytes(2, [big.subarray(third, 2 * third)], true);
  connection.eventBytes(2, [big.subarray(2 * third), encode(changes(12n), 256)], false);
  const messages = await take(watch, 2);
  t.deepEqual(revisionsOf(messages), ['changes:11', 'changes:12']);
  const whole = (messages[0] as Extract<WatchMessage, { type: 'changes' }>).changes;
  t.deepEqual(whole.tasks.map((x) => x.assignedTask!.taskId), tasks.map((x) => x.assignedTask!.taskId));
  await watch.return();
});

test('COMPACTED: refused at subscribe, or ended later, throws CompactedError with the oldest revision', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const old = client.watch({ afterRevision: 3 });
  const subscribe = await connection.waitFor(f.Body.WatchRequest);
  connection.error(subscribe.id, f.ErrorCode.COMPACTED, 'too old', 50n);
  const error = await t.throwsAsync(old.next(), { instanceOf: CompactedError });
  t.is(error?.oldestRevision, 50n);
  t.deepEqual(await old.next(), { value: undefined, done: true });

  const behind = client.watch({ afterRevision: 60 });
  const second = await connection.waitFor(f.Body.WatchRequest, (r) => r.id !== subscribe.id);
  connection.watchResponse(second.id, 3, 70n);
  connection.events(3, [61n]);
  connection.ended(3, f.ErrorCode.COMPACTED, 80n, 61n);
  t.deepEqual(revisionsOf(await take(behind, 1)), ['changes:61']);
  const ended = await t.throwsAsync(behind.next(), { instanceOf: CompactedError });
  t.is(ended?.oldestRevision, 80n);
});

test('progress moves the resume point; an on-demand bookmark is acknowledged', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  server.onRequest = (c, r) => {
    if (r.type === f.Body.WatchProgressRequest) {
      c.reply(r.id, f.Body.OkResponse, new f.OkResponseT());
      c.progress((r.body as f.WatchProgressRequestT).subscription, 25n);
    }
  };
  const watch = client.watch({ afterRevision: 5, progressMs: 100 });
  const subscribe = await first.waitFor(f.Body.WatchRequest);
  t.is((subscribe.body as f.WatchRequestT).progressMs, 100);
  first.watchResponse(subscribe.id, 4, 20n);
  first.events(4, [6n]);
  first.progress(4, 20n);
  first.progress(4, 19n); // older than what was delivered: dropped
  t.deepEqual(revisionsOf(await take(watch, 2)), ['changes:6', 'progress:20']);
  t.is(watch.revision, 20n);
  await watch.requestProgress();
  t.deepEqual(revisionsOf(await take(watch, 1)), ['progress:25']);
  first.terminate();
  const second = await server.connection(1);
  t.is(((await second.waitFor(f.Body.WatchRequest)).body as f.WatchRequestT).afterRevision, 25n);
  await watch.return();
});

test('break cancels the subscription (WatchCancel)', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const watch = client.watch({ afterRevision: 0 });
  const subscribe = await connection.waitFor(f.Body.WatchRequest);
  connection.watchResponse(subscribe.id, 9, 1n);
  connection.events(9, [1n, 2n]);
  const seen: bigint[] = [];
  for await (const message of watch) {
    if (message.type === 'changes') seen.push(message.revision);
    break;
  }
  t.deepEqual(seen, [1n]);
  const cancel = await connection.waitFor(f.Body.WatchCancel);
  t.is((cancel.body as f.WatchCancelT).subscription, 9);
  connection.reply(cancel.id, f.Body.OkResponse, new f.OkResponseT());
  connection.events(9, [3n]); // after the cancel: dropped
  t.deepEqual(await watch.next(), { value: undefined, done: true });
});

test('a consumer that does not pull: the watch gives up its subscription and resumes once drained', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  let subscription = 0;
  const afters: bigint[] = [];
  server.onRequest = (c, r) => {
    if (r.type === f.Body.WatchCancel) c.reply(r.id, f.Body.OkResponse, new f.OkResponseT());
    if (r.type !== f.Body.WatchRequest) return;
    const after = (r.body as f.WatchRequestT).afterRevision;
    afters.push(after);
    c.watchResponse(r.id, ++subscription, 10n);
    for (let revision = after + 1n; revision <= 10n; revision++) c.events(subscription, [revision]);
  };
  const watch = client.watch({ afterRevision: 0, queueMessagesMax: 4 });
  const cancel = await connection.waitFor(f.Body.WatchCancel);
  t.is((cancel.body as f.WatchCancelT).subscription, 1);
  const messages = await take(watch, 10);
  t.deepEqual(messages.map((m) => (m as { revision: bigint }).revision), [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]);
  t.is(afters[0], 0n);
  t.is(afters[1], 4n);
  t.true(afters.length >= 2);
  t.deepEqual([...afters].sort((a, b) => (a < b ? -1 : 1)), afters);
  await watch.return();
});

test('WatchEnded RESOURCE_EXHAUSTED resumes after the last revision delivered', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const watch = client.watch({ afterRevision: 0 });
  const subscribe = await connection.waitFor(f.Body.WatchRequest);
  connection.watchResponse(subscribe.id, 1, 10n);
  connection.events(1, [1n, 2n]);
  connection.ended(1, f.ErrorCode.RESOURCE_EXHAUSTED, 10n, 2n);
  const again = await connection.waitFor(f.Body.WatchRequest, (r) => r.id !== subscribe.id);
  t.is((again.body as f.WatchRequestT).afterRevision, 2n);
  connection.watchResponse(again.id, 2, 10n);
  connection.events(2, [3n]);
  t.deepEqual(revisionsOf(await take(watch, 3)), ['changes:1', 'changes:2', 'changes:3']);
  await watch.return();
});

test('list then watch; a reset relists', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const watch = client.watch({ list: true, filter: { tables: [f.RecordTable.TASK] } });
  const subscribe = await connection.waitFor(f.Body.WatchRequest);
  t.true((subscribe.body as f.WatchRequestT).list);
  connection.watchResponse(subscribe.id, 1, 5n);
  const state = new f.WatchStateT(1, Array.from(encode(taskResponse(5n, ['a', 'b']))));
  connection.reply(0, f.Body.WatchState, state);
  connection.reply(0, f.Body.WatchStateEnd, new f.WatchStateEndT(1, 5n));
  connection.events(1, [6n]);
  connection.eventBytes(1, [encode(new f.RevisionChangesT(7n, 0n, [], [], [], [], [], [], [], [], [], [], [], [], null, true))], false);
  const first = await take(watch, 4);
  t.deepEqual(revisionsOf(first), ['state:', 'stateEnd:5', 'changes:6', 'reset:7']);
  const listed = (first[0] as Extract<WatchMessage, { type: 'state' }>).response.result as f.TasksResultT;
  t.deepEqual(listed.tasks.map((x) => x.assignedTask!.taskId), ['a', 'b']);
  t.is((await connection.waitFor(f.Body.WatchCancel)).type, f.Body.WatchCancel);
  const relist = await connection.waitFor(f.Body.WatchRequest, (r) => r.id !== subscribe.id);
  t.true((relist.body as f.WatchRequestT).list);
  connection.watchResponse(relist.id, 2, 7n);
  connection.reply(0, f.Body.WatchState, new f.WatchStateT(2, Array.from(encode(taskResponse(7n, ['c'])))));
  connection.reply(0, f.Body.WatchStateEnd, new f.WatchStateEndT(2, 7n));
  t.deepEqual(revisionsOf(await take(watch, 2)), ['state:', 'stateEnd:7']);
  await watch.return();
});

test('a list interrupted by a lost connection restarts with a reset', async (t) => {
  const { server, client } = await setup(t);
  const first = await server.connection(0);
  const watch = client.watch({ list: true });
  const subscribe = await first.waitFor(f.Body.WatchRequest);
  first.watchResponse(subscribe.id, 1, 5n);
  first.reply(0, f.Body.WatchState, new f.WatchStateT(1, Array.from(encode(taskResponse(5n, ['a'])))));
  t.deepEqual(revisionsOf(await take(watch, 1)), ['state:']);
  first.terminate();
  const second = await server.connection(1);
  const again = await second.waitFor(f.Body.WatchRequest);
  t.true((again.body as f.WatchRequestT).list);
  second.watchResponse(again.id, 1, 6n);
  second.reply(0, f.Body.WatchState, new f.WatchStateT(1, Array.from(encode(taskResponse(6n, ['a', 'b'])))));
  second.reply(0, f.Body.WatchStateEnd, new f.WatchStateEndT(1, 6n));
  t.deepEqual(revisionsOf(await take(watch, 3)), ['reset:-1', 'state:', 'stateEnd:6']);
  await watch.return();
});

test('bad frames from the server are reported, the connection is made again, requests are resent', async (t) => {
  const { server, client } = await setup(t);
  const errors: Error[] = [];
  client.on('error', (error) => errors.push(error));
  const garbage = [
    Uint8Array.from({ length: 64 }, (_, i) => (i * 151 + 7) & 0xff),
    frame(0, f.Body.WatchEvents, new f.WatchEventsT(1, [], false)).subarray(0, 12),
    new Uint8Array([1, 2, 3]),
    frame(3, f.Body.Hello, new f.HelloT(1, 1)),
  ];
  const sends: ((c: FakeConnection) => void)[] = [
    ...garbage.map((bytes) => (c: FakeConnection) => c.send(bytes)),
    (c) => c.send('a text frame'),
  ];
  let connection = await server.connection(0);
  for (const [index, bad] of sends.entries()) {
    const status = client.status();
    await connection.waitFor(f.Body.StatusRequest);
    bad(connection);
    connection = await server.connection(index + 1);
    const again = await connection.waitFor(f.Body.StatusRequest);
    connection.reply(again.id, f.Body.StatusResponse, new f.StatusResponseT(BigInt(index)));
    t.is((await status).revision, BigInt(index));
  }
  t.is(errors.length, sends.length);
  t.true(errors.every((e) => e instanceof StrataError && e.code === ErrorCode.INTERNAL));
});

test('an undecodable revision drops the connection; the watch resumes before it', async (t) => {
  const { server, client } = await setup(t);
  client.on('error', () => undefined);
  const first = await server.connection(0);
  const watch = client.watch({ afterRevision: 0 });
  const subscribe = await first.waitFor(f.Body.WatchRequest);
  first.watchResponse(subscribe.id, 1, 5n);
  first.eventBytes(1, [encode(changes(1n)), Uint8Array.from({ length: 40 }, (_, i) => 200 + (i % 50))], false);
  const second = await server.connection(1);
  const again = await second.waitFor(f.Body.WatchRequest);
  t.is((again.body as f.WatchRequestT).afterRevision, 1n);
  second.watchResponse(again.id, 1, 5n);
  second.events(1, [2n]);
  t.deepEqual(revisionsOf(await take(watch, 2)), ['changes:1', 'changes:2']);
  await watch.return();
});

test('the server limits: in-flight requests wait for a slot, oversized requests fail locally', async (t) => {
  const server = await FakeStrata.start();
  t.teardown(() => server.close());
  server.onConnection = (c) => {
    void c.waitFor(f.Body.Hello).then((hello) => c.hello(hello.id, new f.LimitsT(2048, 2, 1, 0)));
  };
  const client = await StrataClient.connect({ url: server.url });
  t.teardown(() => client.close());
  const connection = await server.connection(0);
  const answers = [client.status(), client.status(), client.status()];
  await connection.waitFor(f.Body.StatusRequest);
  const inFlight = () => connection.received.filter((r) => r.type === f.Body.StatusRequest);
  const firstTwo = await Promise.all([connection.waitFor(f.Body.StatusRequest), connection.waitFor(f.Body.StatusRequest, (r) => r.id !== inFlight()[0]!.id)]);
  t.is(inFlight().length, 2);
  connection.reply(firstTwo[0].id, f.Body.StatusResponse, new f.StatusResponseT(1n));
  const third = await connection.waitFor(f.Body.StatusRequest, (r) => r.id !== firstTwo[0].id && r.id !== firstTwo[1].id);
  connection.reply(firstTwo[1].id, f.Body.StatusResponse, new f.StatusResponseT(2n));
  connection.reply(third.id, f.Body.StatusResponse, new f.StatusResponseT(3n));
  t.deepEqual((await Promise.all(answers)).map((s) => s.revision), [1n, 2n, 3n]);
  const big = await t.throwsAsync(client.tasks({ taskIds: Array.from({ length: 200 }, (_, i) => `task-${i}`) }), { instanceOf: StrataError });
  t.is(big?.code, ErrorCode.INVALID_ARGUMENT);
  const watch = client.watch();
  const second = client.watch();
  const refused = await t.throwsAsync(second.next(), { instanceOf: StrataError });
  t.is(refused?.code, ErrorCode.RESOURCE_EXHAUSTED);
  await watch.return();
});

test('close ends watches and fails pending requests', async (t) => {
  const { server, client } = await setup(t);
  const connection = await server.connection(0);
  const watch = client.watch({ afterRevision: 0 });
  const pending = client.status();
  await connection.waitFor(f.Body.StatusRequest);
  const waiting = watch.next();
  await client.close();
  await t.throwsAsync(pending, { instanceOf: UnavailableError });
  t.deepEqual(await waiting, { value: undefined, done: true });
});
