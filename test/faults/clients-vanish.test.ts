/**
 * Fault suite (d): clients that vanish (issue 7, 4d). Each round, clients end without a close frame at the worst
 * moments: with keyed commits in flight and a big commit frame half sent (TCP reset), with a watch replaying the
 * whole history or a list in progress while they stopped reading, in the middle of the handshake or of Hello, and a
 * client process killed with SIGKILL (commits, a history watch and a list in flight).
 *
 * What must hold: the daemon stays up; the connections and subscriptions gauges come back to their baseline after
 * every round (the server freed what the vanished clients held); bystanders (commits, a watch, queries) see no
 * effect; every transaction of a vanished client was applied exactly once or not at all (resent with its key from a
 * new connection: DUPLICATE, or a fresh commit; never PRECONDITION_FAILED), a torn frame never; and at the end the
 * state holds each of those tasks once.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Prng } from '../../core/prng.js';
import { jobConfig, task, taskQuery, txn, upsert } from '../support/build.js';
import { tempDir } from '../support/durable.js';
import { startDaemon, type RunningDaemon } from '../support/daemon.js';
import { commitResult, encode, f, make, queryResult, RawClient } from '../support/raw-client.js';
import { byMode, report } from './mode.js';
import { Bystanders } from './support/vanish-bystanders.js';
import { commitEnvelope, resendOnce, vanishTransaction, type ResendOutcome } from './support/vanish-commits.js';
import { HealthMonitor, metricValue } from './support/reader-http.js';
import { RawSocket } from './support/vanish-socket.js';

const childFile = fileURLToPath(new URL('./support/vanish-child.js', import.meta.url));
const gaugeWaitMs = 60_000;        // generous: the server notices a reset at once, a busy machine may take a while
const listTasks = 3_000;           // the list subscriptions' state: several pages of answers to stall on
const role = 'vanished';           // the tasks of vanishing clients' transactions
const listRole = 'vlist';
const commitsPerClient = 4;
const tornPadBytes = 200_000;      // the torn commit: a frame far larger than one TCP segment

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const hello = encode(make(f.EnvelopeT, { id: 1, bodyType: f.Body.Hello,
  body: make(f.HelloT, { protocolMin: 1, protocolMax: 1, token: '', clientName: 'vanish' }) }));

function watchEnvelope(id: number, fields: Partial<f.WatchRequestT>): Uint8Array {
  return encode(make(f.EnvelopeT, { id, bodyType: f.Body.WatchRequest, body: make(f.WatchRequestT, fields) }));
}

interface Gauges { connections: number; subscriptions: number; behind: number }

async function gauges(http: string): Promise<Gauges> {
  return { connections: await metricValue(http, 'strata_connections'),
    subscriptions: await metricValue(http, 'strata_subscriptions'),
    behind: await metricValue(http, 'strata_subscriptions_behind') };
}

/** Waits until the gauges equal `baseline`; throws with the last values past gaugeWaitMs. */
async function backTo(http: string, baseline: Gauges, what: string): Promise<void> {
  const deadline = Date.now() + gaugeWaitMs;
  let now = await gauges(http);
  while (JSON.stringify(now) !== JSON.stringify(baseline)) {
    if (Date.now() > deadline) throw new Error(`${what}: gauges ${JSON.stringify(now)}, baseline ${JSON.stringify(baseline)}`);
    await sleep(100);
    now = await gauges(http);
  }
}

/** Keyed commits in flight, then a big commit frame cut anywhere, then a TCP reset. Returns what to resend. */
async function vanishMidTransaction(d: RunningDaemon, r: Prng, clientId: string): Promise<Uint8Array[]> {
  const s = await RawSocket.connect(d.port);
  s.sendFrame(hello);
  await sleep(r.int(20));
  const transactions = Array.from({ length: commitsPerClient }, (_, i) => vanishTransaction(role, clientId, i));
  transactions.forEach((bytes, i) => s.sendFrame(commitEnvelope(10 + i, bytes)));
  const torn = vanishTransaction(role, clientId, commitsPerClient, tornPadBytes);
  const tornFrame = commitEnvelope(99, torn);
  s.sendFrame(tornFrame, r.int(tornFrame.length));
  await sleep(r.int(5));
  s.vanish();
  return [...transactions, torn];
}

/** A watch replaying the whole history and a list of listTasks tasks, on a socket that stopped reading. */
async function vanishMidWatch(d: RunningDaemon, r: Prng): Promise<void> {
  const s = await RawSocket.connect(d.port);
  s.stall();
  s.sendFrame(hello);
  s.sendFrame(watchEnvelope(2, { afterRevision: 0n }));
  s.sendFrame(watchEnvelope(3, { list: true, filter: make(f.WatchFilterT, { role: listRole }) }));
  await sleep(20 + r.int(200));
  s.vanish();
}

/** Mid-handshake (half an upgrade request) and mid-Hello (half a Hello frame). */
async function vanishMidHello(d: RunningDaemon, r: Prng): Promise<void> {
  const handshake = await RawSocket.connect(d.port, false);
  handshake.write('GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
  const halfHello = await RawSocket.connect(d.port);
  halfHello.sendFrame(hello, 1 + r.int(hello.length - 1));
  const silent = await RawSocket.connect(d.port);
  await sleep(r.int(20));
  for (const s of [handshake, halfHello, silent]) s.vanish();
}

/** A client process with commits, a history watch and a list in flight, killed with SIGKILL. */
async function vanishByKill(d: RunningDaemon, r: Prng, clientId: string): Promise<Uint8Array[]> {
  const child = spawn(process.execPath, [childFile, d.url, role, clientId, String(commitsPerClient), listRole],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (data: Buffer) => { stderr += data.toString(); });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (data: Buffer) => { if (data.toString().includes('sent')) resolve(); });
    child.on('exit', (code) => reject(new Error(`the child exited with ${code} before sending: ${stderr}`)));
  });
  await sleep(r.int(30));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
  return Array.from({ length: commitsPerClient }, (_, i) => vanishTransaction(role, clientId, i));
}

test('clients vanish mid-transaction, mid-frame, mid-watch, mid-hello and by SIGKILL: freed, exactly once, bystanders unharmed', async (t) => {
  const rounds = byMode(5, 200);
  const dir = tempDir(t, 'vanish');
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { readerThreads: 1 } });
  t.teardown(() => d.kill());
  const started = performance.now();
  const checker = await RawClient.open(d.url);
  const config = jobConfig(listRole, 'prod', 'big');
  for (let at = 0; at < listTasks; at += 500) {
    const tasks = Array.from({ length: 500 }, (_, i) => task(`big-${at + i}`, config, at + i));
    t.is(commitResult(await checker.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert(tasks)])] }))).error, null);
  }
  const health = new HealthMonitor(d.http);
  t.teardown(() => health.stop()); // also when the test failed before its own stop()
  const bystanders = await Bystanders.start({ url: d.url, role: 'vby', writers: 2, queriers: 1 });
  const baseline: Gauges = { connections: 2 + 1 + 1 + 1, subscriptions: 1, behind: 0 }; // bystanders, checker
  await backTo(d.http, baseline, 'before the first round');
  const rssStart = await metricValue(d.http, 'strata_process_resident_memory_bytes');
  const historyStart = await metricValue(d.http, 'strata_watch_history_bytes');
  const r = new Prng(20261126);
  const resent: ResendOutcome = { committedBefore: 0, committedNow: 0 };
  let vanished = 0;
  let transactions = 0;
  for (let round = 0; round < rounds; round++) {
    const [keyed, , , killed] = await Promise.all([
      vanishMidTransaction(d, r, `v${round}a`), vanishMidWatch(d, r), vanishMidHello(d, r),
      vanishByKill(d, r, `v${round}k`),
    ]);
    vanished += 1 + 1 + 3 + 1;
    await backTo(d.http, baseline, `round ${round}`);
    t.is(d.child.exitCode, null);
    for (const [list, torn] of [[keyed, new Set([commitsPerClient])], [killed, new Set<number>()]] as const) {
      const outcome = await resendOnce(checker, list, torn);
      resent.committedBefore += outcome.committedBefore;
      resent.committedNow += outcome.committedNow;
      transactions += list.length;
    }
  }
  const figures = await bystanders.stop();
  const probes = await health.stop();
  t.deepEqual(probes.failures, []);
  const stored = queryResult(await checker.request(f.Body.QueryRequestMessage,
    make(f.QueryRequestMessageT, { request: [...taskQuery({ role })] })));
  t.is((stored.result as f.TasksResultT).tasks.length, transactions, 'each vanished transaction applied exactly once');
  t.is(resent.committedBefore + resent.committedNow, transactions);
  checker.close();
  await backTo(d.http, { ...baseline, connections: 0, subscriptions: 0 }, 'after everyone left');
  const rssEnd = await metricValue(d.http, 'strata_process_resident_memory_bytes');
  const historyEnd = await metricValue(d.http, 'strata_watch_history_bytes'); // grows with the bystanders' revisions
  const line = report('clients-vanish', { rounds, faultsInjected: vanished, transactionsResent: transactions,
    committedBeforeVanish: resent.committedBefore, committedOnResend: resent.committedNow,
    acknowledgedWritesChecked: figures.commits + transactions, bystanderQueries: figures.queriesChecked,
    rssMiBStart: Math.round(rssStart / 2 ** 20), rssMiBEnd: Math.round(rssEnd / 2 ** 20),
    watchHistoryMiBStart: Math.round(historyStart / 2 ** 20), watchHistoryMiBEnd: Math.round(historyEnd / 2 ** 20),
    seconds: Math.round((performance.now() - started) / 1000), found: 'none' });
  t.log(line);
  t.is(await d.stop(), 0);
});
