/**
 * sd_notify (daemon/notify.ts) against a fake notify socket: READY, STATUS, WATCHDOG, STOPPING in order, pings
 * folded, nothing without NOTIFY_SOCKET, failures reported not thrown, WATCHDOG_USEC/WATCHDOG_PID parsing, and
 * the Watchdog pinging only while its health check answers in time.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Notifier, Watchdog, watchdogIntervalMs } from '../daemon/notify.js';
import { FakeNotifySocket, installed } from './support/notify-socket.js';

// .ci/run installs both (systemd for systemd-notify, python3 for the fake socket); a bare dev machine may lack them.
const tools = installed('systemd-notify') && installed('python3');
const maybe = tools ? test.serial : test.serial.skip;

maybe('READY, STATUS, WATCHDOG and STOPPING arrive in order, one datagram each, from systemd-notify', async (t) => {
  const socket = await FakeNotifySocket.start();
  t.teardown(() => socket.stop());
  const errors: Error[] = [];
  const notifier = new Notifier({ env: { ...process.env, NOTIFY_SOCKET: socket.path }, onError: (e) => errors.push(e) });
  t.true(notifier.enabled);
  await notifier.ready('serving revision 42\nsecond line');
  await notifier.watchdog();
  await notifier.status('snapshot written');
  await notifier.stopping('stopping: SIGTERM');
  await socket.waitFor((m) => m.fields.STOPPING === '1');
  const texts = socket.messages.filter((m) => !('BARRIER' in m.fields)).map((m) => m.fields);
  t.deepEqual(texts, [
    { READY: '1', STATUS: 'serving revision 42 second line' }, // a newline would start another variable
    { WATCHDOG: '1' },
    { STATUS: 'snapshot written' },
    { STOPPING: '1', STATUS: 'stopping: SIGTERM' },
  ]);
  t.is(notifier.sent, 4);
  t.deepEqual(errors, []);
});

maybe('watchdog pings asked while one waits are folded into it; flushed() waits for everything asked', async (t) => {
  const socket = await FakeNotifySocket.start();
  t.teardown(() => socket.stop());
  const notifier = new Notifier({ env: { ...process.env, NOTIFY_SOCKET: socket.path } });
  const asked = [notifier.status('one'), notifier.watchdog(), notifier.watchdog(), notifier.watchdog(), notifier.status('two')];
  await notifier.flushed();
  await Promise.all(asked);
  const sent = socket.messages.filter((m) => !('BARRIER' in m.fields)).map((m) => m.text);
  await socket.waitFor((m) => m.fields.STATUS === 'two');
  t.deepEqual(sent, ['STATUS=one', 'WATCHDOG=1', 'STATUS=two']);
  t.is(notifier.sent, 3);
});

test('without NOTIFY_SOCKET nothing is spawned or sent', async (t) => {
  const errors: Error[] = [];
  const notifier = new Notifier({ env: { WATCHDOG_USEC: '3000000' }, command: '/nonexistent/systemd-notify', onError: (e) => errors.push(e) });
  t.false(notifier.enabled);
  t.is(notifier.watchdogMs, 0);
  await notifier.ready('x');
  await notifier.watchdog();
  t.is(notifier.sent + notifier.failed, 0);
  t.deepEqual(errors, []);
});

test('a send that fails is reported, not thrown, and later sends still go', async (t) => {
  const errors: Error[] = [];
  const notifier = new Notifier({ env: { NOTIFY_SOCKET: '/nonexistent/notify.sock' }, command: '/nonexistent/systemd-notify', onError: (e) => errors.push(e) });
  await notifier.ready('x');
  await notifier.watchdog();
  t.is(notifier.failed, 2);
  t.is(errors.length, 2);
  t.regex(errors[0]!.message, /cannot run \/nonexistent\/systemd-notify/);
});

maybe('systemd-notify failing (no socket at the path) is reported with its exit', async (t) => {
  const errors: Error[] = [];
  const notifier = new Notifier({ env: { ...process.env, NOTIFY_SOCKET: '/nonexistent/notify.sock' }, onError: (e) => errors.push(e) });
  await notifier.stopping('bye');
  t.is(notifier.failed, 1);
  t.regex(errors[0]!.message, /exited/);
});

test('a send is bounded: a program that hangs is killed after timeoutMs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-notify-hang-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const hang = join(dir, 'hang');
  writeFileSync(hang, '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
  const errors: Error[] = [];
  const notifier = new Notifier({ env: { NOTIFY_SOCKET: '/x' }, command: hang, timeoutMs: 200, onError: (e) => errors.push(e) });
  const started = performance.now();
  await notifier.ready('x');
  t.is(notifier.failed, 1);
  t.regex(errors[0]!.message, /did not finish within 200 ms/);
  t.true(performance.now() - started < 30_000);
});

test('variable names are checked', (t) => {
  const notifier = new Notifier({ env: { NOTIFY_SOCKET: '/x' } });
  t.throws(() => void notifier.send({ 'BAD NAME': 1 }), { message: /bad variable name/ });
  t.throws(() => void notifier.send({ lower: 1 }), { message: /bad variable name/ });
});

test('WATCHDOG_USEC and WATCHDOG_PID as sd_watchdog_enabled reads them', (t) => {
  t.is(watchdogIntervalMs({}), 0);
  t.is(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }), 30_000);
  t.is(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }), 30_000);
  t.is(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid + 1) }), 0, 'meant for another process');
  t.is(watchdogIntervalMs({ WATCHDOG_USEC: '500' }), 1);
  const errors: Error[] = [];
  for (const bad of ['abc', '-5', '0', '1e9', '99999999999999999']) t.is(watchdogIntervalMs({ WATCHDOG_USEC: bad }, 1, (e) => errors.push(e)), 0, bad);
  t.is(errors.length, 5);
});

maybe('the Watchdog pings while healthy, stops while the check fails or is late, and resumes', async (t) => {
  const socket = await FakeNotifySocket.start();
  t.teardown(() => socket.stop());
  const notifier = new Notifier({ env: { ...process.env, NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '300000' } });
  t.is(notifier.watchdogMs, 300);
  let state: 'ok' | 'fail' | 'hang' = 'ok';
  const reasons: string[] = [];
  const watchdog = new Watchdog(notifier, () => {
    if (state === 'ok') return Promise.resolve(true);
    if (state === 'fail') return Promise.resolve(false);
    return new Promise<boolean>(() => undefined); // never answers: a stuck writer
  }, (reason) => reasons.push(reason));
  t.is(watchdog.intervalMs, 100);
  watchdog.start();
  t.teardown(() => watchdog.stop());
  const pings = () => socket.with('WATCHDOG').length;
  await socket.waitFor(() => pings() >= 3);

  state = 'fail';
  await waitUntil(() => reasons.length >= 2);
  await notifier.flushed();
  const afterFail = pings();
  await sleep(500);
  t.is(pings(), afterFail, 'no ping while the check fails');

  state = 'ok';
  await socket.waitFor(() => pings() >= afterFail + 2);

  state = 'hang';
  const skipped = watchdog.skipped;
  await waitUntil(() => watchdog.skipped >= skipped + 2);
  await notifier.flushed();
  const afterHang = pings();
  await sleep(500);
  t.is(pings(), afterHang, 'no ping while the check hangs');
  t.true(reasons.some((r) => /has not answered/.test(r)));
  watchdog.stop();
});

test('the Watchdog does nothing without WATCHDOG_USEC', async (t) => {
  const notifier = new Notifier({ env: { NOTIFY_SOCKET: '/x' }, command: '/nonexistent' });
  let checks = 0;
  const watchdog = new Watchdog(notifier, () => { checks++; return Promise.resolve(true); });
  watchdog.start();
  await sleep(100);
  watchdog.stop();
  t.is(checks, 0);
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}
