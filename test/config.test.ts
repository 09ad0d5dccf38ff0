/**
 * daemon/config.ts: defaults, then file, then environment, then flags; every bad value refused with its reason.
 * daemon/reload.ts: what a reload applies and what it reports as needing a restart.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, describeConfig, loadConfig } from '../daemon/config.js';
import { liveKeys, planReload } from '../daemon/reload.js';
import { backpressureMax } from '../daemon/server.js';
import { tempDir } from './support/durable.js';
import { spawnDaemon } from './support/daemon.js';

test('embedded defaults: ./data, 127.0.0.1:7420, no tokens', (t) => {
  const c = loadConfig([], {});
  t.true(c.dataDir.endsWith('/data'));
  t.is(c.host, '127.0.0.1');
  t.is(c.port, 7420);
  t.is(c.tokens.length, 0);
  t.is(c.limits.frameBytesMax, 16 * 1024 * 1024);
});

test('file < environment < flags', (t) => {
  const dir = tempDir(t, 'config');
  const file = join(dir, 'c.json');
  writeFileSync(join(dir, 'tok'), 'from-a-file-0123456789\n');
  writeFileSync(file, JSON.stringify({ listen: '127.0.0.2:1000', limits: { subscriptionsMax: 5, requestsInFlightMax: 7 },
    watch: { progressMs: 99 }, tokens: [{ name: 'f', tokenFile: 'tok', read: ['a'] }] }));
  const c = loadConfig(['--config', file, '--limits.requestsInFlightMax', '9', '--listen=127.0.0.3:3000'],
    { STRATA_LIMITS_SUBSCRIPTIONS_MAX: '6', STRATA_WATCH_PROGRESS_MS: '150' });
  t.is(c.host, '127.0.0.3');
  t.is(c.port, 3000);
  t.is(c.limits.subscriptionsMax, 6);
  t.is(c.limits.requestsInFlightMax, 9);
  t.is(c.watch.progressMs, 150);
  t.is(c.tokens[0]!.token, 'from-a-file-0123456789');
  t.deepEqual(describeConfig(c).tokens, [{ name: 'f', admin: false, read: ['a'], write: [] }]);
  t.false(JSON.stringify(describeConfig(c)).includes('from-a-file'));
  const ipv6 = loadConfig(['--listen', '[::1]:0'], {});
  t.is(ipv6.host, '::1');
  t.is(loadConfig([], { STRATA_ADMIN_TOKEN: 'environment-token-0123' }).tokens[0]!.admin, true);
  t.is(loadConfig([], { STRATA_TOKEN: 'a-cli-token-0123456789' }).tokens.length, 0, "STRATA_TOKEN is the CLI's");
});

test('bad input is refused with the reason', (t) => {
  const dir = tempDir(t, 'config-bad');
  const bad = (argv: string[], env: Record<string, string>, message: RegExp) =>
    t.throws(() => loadConfig(argv, env), { instanceOf: ConfigError, message });
  const file = (content: string) => {
    const path = join(dir, `f${Math.random()}.json`);
    writeFileSync(path, content);
    return path;
  };
  bad(['--nope', '1'], {}, /unknown key nope/);
  bad(['--port', '70000'], {}, /port must be an integer in \[0, 65535\]/);
  bad(['--limits.frameBytesMax', 'big'], {}, /frameBytesMax must be an integer/);
  bad(['--listen', 'nohostport'], {}, /HOST:PORT/);
  bad(['--data-dir'], {}, /needs a value/);
  bad(['stray'], {}, /unexpected argument/);
  bad([], { STRATA_BOGUS: '1' }, /unknown variable STRATA_BOGUS/);
  bad(['--config', file('{not json')], {}, /config file/);
  bad(['--config', file('[1]')], {}, /not a JSON object/);
  bad(['--config', file('{"tokens": [{"token": "short"}]}')], {}, /at least 16/);
  bad(['--config', file('{"tokens": [{"token": "0123456789abcdefgh", "read": "a"}]}')], {}, /array of role names/);
  bad(['--config', file('{"tokens": [{"token": "0123456789abcdefgh", "colour": 1}]}')], {}, /unknown key colour/);
  bad(['--config', file('{"tokens": [{"token": "0123456789abcdefgh"}, {"token": "0123456789abcdefgh"}]}')], {}, /twice/);
  bad(['--listen', '0.0.0.0:7420'], {}, /without tokens/);
  bad(['--tls-cert', '/x.pem'], {}, /both/);
  bad(['--watch.bufferBytes', '1048576', '--watch.closeBytes', '65536'], {}, /closeBytes must be >= watch.bufferBytes/);
  bad(['--limits.idleTimeoutS', '4'], {}, /0 \(off\) or 8\.\.960/);
  bad(['--limits.idleTimeoutS', '1000'], {}, /idleTimeoutS must be an integer in \[0, 960\]/);
  bad(['--watch.closeBytes', '17179869184'], {}, /closeBytes must be an integer/);
  bad(['--limits.frameBytesMax', '2097152', '--watch.bufferBytes', '65536', '--watch.closeBytes', '1048576'], {}, /closeBytes must be >= limits.frameBytesMax/);
  bad(['--config', file('{"tokens": [{"tokenFile": "/nonexistent/token"}]}')], {}, /tokenFile \/nonexistent\/token/);
  t.notThrows(() => loadConfig(['--listen', '0.0.0.0:7420', '--allow-unauthenticated'], {}));
});

test('logLevel, slowLog.*, shutdownTimeoutMs: defaults, every source, bad values refused', (t) => {
  const c = loadConfig([], {});
  t.is(c.logLevel, 'info');
  t.deepEqual(c.slowLog, { fsyncMs: 50, commitMs: 100, queryMs: 100 });
  t.is(c.shutdownTimeoutMs, 15_000);
  t.is(loadConfig(['--log-level', 'debug'], {}).logLevel, 'debug');
  t.is(loadConfig(['--logLevel=warn'], {}).logLevel, 'warn');
  t.is(loadConfig([], { STRATA_LOG_LEVEL: 'silent' }).logLevel, 'silent');
  t.is(loadConfig(['--log-level', 'trace'], { STRATA_LOG_LEVEL: 'error' }).logLevel, 'trace', 'a flag beats the environment');
  const dir = tempDir(t, 'config-new');
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ logLevel: 'error', slowLog: { fsyncMs: 0, queryMs: 7 }, shutdownTimeoutMs: 1000 }));
  const fromFile = loadConfig(['--config', file], { STRATA_SLOW_LOG_COMMIT_MS: '9' });
  t.is(fromFile.logLevel, 'error');
  t.deepEqual(fromFile.slowLog, { fsyncMs: 0, commitMs: 9, queryMs: 7 });
  t.is(fromFile.shutdownTimeoutMs, 1000);
  const bad = (argv: string[], env: Record<string, string>, message: RegExp) =>
    t.throws(() => loadConfig(argv, env), { instanceOf: ConfigError, message });
  bad(['--log-level', 'loud'], {}, /logLevel must be one of fatal\|error\|warn\|info\|debug\|trace\|silent, not "loud"/);
  bad([], { STRATA_LOG_LEVEL: 'INFO' }, /logLevel must be one of/);
  bad(['--log-level'], {}, /needs a value/);
  bad(['--slowLog.fsyncMs', '-1'], {}, /slowLog.fsyncMs must be an integer in \[0, 3600000\]/);
  bad(['--slowLog.queryMs', 'fast'], {}, /slowLog.queryMs must be an integer/);
  bad(['--slowLog.nope', '1'], {}, /unknown key slowLog.nope/);
  bad(['--shutdownTimeoutMs', '999'], {}, /shutdownTimeoutMs must be an integer in \[1000, 600000\]/);
  bad(['--shutdownTimeoutMs', '600001'], {}, /shutdownTimeoutMs must be an integer/);
  writeFileSync(file, JSON.stringify({ slowLog: { commitMs: '5ms' } }));
  bad(['--config', file], {}, /slowLog.commitMs must be an integer/);
});

test('stratad exits 64 on a bad new key, with the reason on stderr', async (t) => {
  const dir = tempDir(t, 'config-exit');
  const d = spawnDaemon({ dataDir: `${dir}/data`, args: ['--log-level', 'loud'] });
  t.is(await d.exited, 64);
  t.regex(d.stderr(), /"msg":"stratad failed"/);
  t.regex(d.stderr(), /logLevel must be one of/);
  const e = spawnDaemon({ dataDir: `${dir}/data`, config: { shutdownTimeoutMs: 10 } });
  t.is(await e.exited, 64);
  t.regex(e.stderr(), /shutdownTimeoutMs must be an integer in \[1000, 600000\]/);
});

test('planReload: live keys and tokens apply; restart-only keys keep their running value and are reported; no token value shown', (t) => {
  const running = loadConfig(['--data-dir', '/srv/a', '--limits.subscriptionsMax', '4'], {});
  running.tokens = [{ name: 'x', token: 'x-token-0123456789ab', admin: true, read: [], write: [] },
    { name: 'y', token: 'y-token-0123456789ab', admin: false, read: ['r'], write: [] }];
  const next = loadConfig(['--data-dir', '/srv/b', '--limits.subscriptionsMax', '2', '--log-level', 'debug',
    '--readerThreads', '3', '--limits.frameBytesMax', '65536', '--snapshot.everyMs', '1000', '--tlsPassphrase', 'secret-pass'], {});
  next.tokens = [{ name: 'x', token: 'x-token-0123456789ab', admin: true, read: [], write: [] },
    { name: 'y', token: 'y-token-0123456789ab', admin: false, read: ['r', 's'], write: [] },
    { name: 'z', token: 'z-token-0123456789ab', admin: false, read: ['*'], write: [] }];
  const listen = backpressureMax(running);
  const plan = planReload(running, next, backpressureMax, listen);
  t.deepEqual(plan.applied.map((a) => a.key).sort(), ['limits.subscriptionsMax', 'logLevel']);
  t.deepEqual(plan.needsRestart.map((a) => a.key).sort(),
    ['dataDir', 'limits.frameBytesMax', 'readerThreads', 'snapshot.everyMs', 'tlsPassphrase']);
  t.is(plan.config.dataDir, '/srv/a');
  t.is(plan.config.limits.frameBytesMax, running.limits.frameBytesMax);
  t.is(plan.config.limits.subscriptionsMax, 2);
  t.is(plan.config.logLevel, 'debug');
  t.is(plan.config.snapshot.everyMs, undefined);
  t.deepEqual(plan.tokens, { added: ['z'], removed: [], changed: ['y'] });
  t.is(plan.config.tokens.length, 3);
  t.is(running.limits.subscriptionsMax, 4, 'the running config is not changed in place');
  const shown = JSON.stringify(plan.applied) + JSON.stringify(plan.needsRestart) + JSON.stringify(plan.tokens);
  t.false(shown.includes('secret-pass'));
  t.false(shown.includes('token-0123'));
  for (const key of ['dataDir', 'host', 'port', 'readerThreads', 'limits.frameBytesMax', 'limits.idleTimeoutS', 'allowUnauthenticated']) {
    t.false(liveKeys.has(key), key);
  }

  // watch.closeBytes may go down live; past uWS's limit fixed at listen it needs a restart.
  const lower = loadConfig(['--data-dir', '/srv/a', '--limits.subscriptionsMax', '4', '--watch.closeBytes', String(64 << 20)], {});
  lower.tokens = running.tokens;
  t.deepEqual(planReload(running, lower, backpressureMax, listen).applied.map((a) => a.key), ['watch.closeBytes']);
  const smaller = planReload(lower, running, backpressureMax, backpressureMax(lower));
  t.deepEqual(smaller.needsRestart.map((a) => a.key), ['watch.closeBytes']);
  t.is(smaller.config.watch.closeBytes, 64 << 20);
  // A live bufferBytes above the closeBytes that must stay is not applied either.
  const wide = loadConfig(['--data-dir', '/srv/a', '--limits.subscriptionsMax', '4', '--watch.closeBytes', String(512 << 20),
    '--watch.bufferBytes', String(300 << 20)], {});
  const pair = planReload(running, wide, backpressureMax, listen);
  t.deepEqual(pair.needsRestart.map((a) => a.key).sort(), ['watch.bufferBytes', 'watch.closeBytes']);
  t.is(pair.config.watch.bufferBytes, running.watch.bufferBytes);
});
