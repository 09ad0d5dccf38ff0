/**
 * daemon/config.ts: defaults, then file, then environment, then flags; every bad value refused with its reason.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, describeConfig, loadConfig } from '../daemon/config.js';
import { tempDir } from './support/durable.js';

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
