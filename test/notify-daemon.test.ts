/**
 * stratad under a fake systemd (test/support/notify-socket.ts): READY=1 only once recovery is done and /readyz
 * says 200, STATUS= lines, WATCHDOG=1 pings while the writer answers and none once it hangs, STOPPING=1 on
 * SIGTERM; without NOTIFY_SOCKET it sends nothing. The real unit's checks are in test/systemd.test.ts.
 */
import test from 'ava';
import { jobConfig, task, txn, upsert } from './support/build.js';
import { tempDir } from './support/durable.js';
import { httpGet, spawnDaemon, startDaemon } from './support/daemon.js';
import { commitResult, f, make, RawClient } from './support/raw-client.js';
import { FakeNotifySocket, installed } from './support/notify-socket.js';

// .ci/run installs both (systemd for systemd-notify, python3 for the fake socket).
const maybe = installed('systemd-notify') && installed('python3') ? test.serial : test.serial.skip;
const config = jobConfig('a', 'prod', 'web');
const commitOf = (id: string) => make(f.CommitRequestT, { transaction: [...txn([upsert([task(id, config, 0)])])] });
const watchdogUsec = 900_000; // pings every 300 ms

maybe('READY=1 after recovery (with /readyz 200), STATUS lines, WATCHDOG=1 pings, STOPPING=1 on SIGTERM', async (t) => {
  const socket = await FakeNotifySocket.start();
  t.teardown(() => socket.stop());
  const dir = tempDir(t, 'notify-daemon');
  // A store with a log to replay, so that READY follows a real recovery.
  const first = await startDaemon({ dataDir: `${dir}/data` });
  const c = await RawClient.open(first.url);
  for (let i = 0; i < 20; i++) t.is(commitResult(await c.request(f.Body.CommitRequest, commitOf(`t${i}`))).error, null);
  c.close();
  t.is(await first.stop(), 0);

  const d = spawnDaemon({ dataDir: `${dir}/data`, env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: String(watchdogUsec) } });
  t.teardown(() => d.kill());
  const ready = await socket.waitFor((m) => m.fields.READY === '1');
  const readyLine = await d.waitLine((line) => line.msg === 'stratad ready');
  t.regex(ready.fields.STATUS ?? '', /^serving revision 20 \(20 tasks\) on 127\.0\.0\.1:\d+$/);
  t.is((await httpGet(`${String(readyLine.http)}/readyz`)).status, 200, 'READY=1 only once /readyz answers 200');
  const recovering = socket.messages.findIndex((m) => /^recovering /.test(m.fields.STATUS ?? ''));
  t.true(recovering >= 0 && recovering < socket.messages.indexOf(ready), 'a recovering STATUS came before READY');
  const starting = d.lines.find((line) => line.msg === 'stratad starting')!;
  t.is(starting.systemd, true);
  t.is(starting.watchdogMs, watchdogUsec / 1000);

  const pingsAtReady = socket.with('WATCHDOG').length;
  await socket.waitFor(() => socket.with('WATCHDOG').length >= pingsAtReady + 3);

  d.signal('SIGTERM');
  await socket.waitFor((m) => m.fields.STOPPING === '1');
  t.is(await d.exited, 0);
  const statuses = socket.messages.map((m) => m.fields.STATUS).filter((s) => s !== undefined);
  for (const step of ['accepting-stopped', 'requests-answered', 'engine-closed', 'connections-closed']) {
    t.true(statuses.includes(`stopping: ${step}`), `STATUS for ${step}`);
  }
});

maybe('WATCHDOG=1 stops while the writer thread hangs (the main loop alone does not earn a ping)', async (t) => {
  const socket = await FakeNotifySocket.start();
  t.teardown(() => socket.stop());
  const dir = tempDir(t, 'notify-hang');
  const d = spawnDaemon({ dataDir: `${dir}/data`, env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: String(watchdogUsec),
    STRATA_FAILPOINTS: 'log.before-write=hang@2' } });
  t.teardown(() => d.kill());
  const readyLine = await d.waitLine((line) => line.msg === 'stratad ready');
  const c = await RawClient.open(String(readyLine.url));
  t.teardown(() => c.close());
  t.is(commitResult(await c.request(f.Body.CommitRequest, commitOf('first'))).error, null);
  const before = socket.with('WATCHDOG').length;
  await socket.waitFor(() => socket.with('WATCHDOG').length >= before + 2, 30_000);

  void c.request(f.Body.CommitRequest, commitOf('hangs')); // the writer blocks for ever in this group's write
  // Pings stop within a check or two; then none come for many intervals although the main loop still serves HTTP.
  const logged = await d.waitLine((line) => line.msg === 'watchdog: not pinging systemd (the writer thread did not answer)', 30_000);
  t.is(logged.level, 'error');
  const settled = socket.with('WATCHDOG').length;
  await new Promise((resolve) => setTimeout(resolve, 3 * watchdogUsec / 1000));
  t.is((await httpGet(`${String(readyLine.http)}/healthz`)).status, 200, 'the main loop is alive');
  const late = socket.with('WATCHDOG').length - settled;
  t.true(late <= 1, `at most one ping already on its way when the hang was seen, got ${late}`);
  await new Promise((resolve) => setTimeout(resolve, 3 * watchdogUsec / 1000));
  t.is(socket.with('WATCHDOG').length, settled + late, 'no ping for six intervals while the writer hangs');
});

test.serial('without NOTIFY_SOCKET the daemon reports systemd off and sends nothing', async (t) => {
  const dir = tempDir(t, 'notify-off');
  const d = await startDaemon({ dataDir: `${dir}/data`, env: { WATCHDOG_USEC: String(watchdogUsec) } });
  const starting = d.lines.find((line) => line.msg === 'stratad starting')!;
  t.is(starting.systemd, false);
  t.is(starting.watchdogMs, 0);
  t.is(await d.stop(), 0);
  t.false(d.lines.some((line) => line.msg === 'sd_notify failed'));
});
