/**
 * uWebSockets.js: the native binary runs on this platform (Node 20, glibc of Debian 12), and the fallback (forced
 * with UWS_USE_FALLBACK in a child process, or any other module object) is detected and refused unless allowed.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { detectUws, requireNativeUws, UwsFallbackError } from '../daemon/uws.js';

const module = fileURLToPath(new URL('../daemon/uws.js', import.meta.url));

test('the native uWebSockets.js binary is what this process loaded', (t) => {
  const detection = detectUws();
  t.is(detection.implementation, 'native', detection.reason);
  t.regex(detection.binary, /uws_linux_x64_115\.node$/);
  t.notThrows(() => requireNativeUws(false));
});

test('any other module object is the fallback: refused unless allowed', (t) => {
  const fake = { App: () => undefined };
  t.is(detectUws(fake).implementation, 'fallback');
  const error = t.throws(() => requireNativeUws(false, fake), { instanceOf: UwsFallbackError });
  t.regex(error!.message, /--allow-uws-fallback/);
  t.is(requireNativeUws(true, fake).implementation, 'fallback');
});

test('UWS_USE_FALLBACK makes the package load its ws fallback, and the detection says so', (t) => {
  const script = `const { detectUws } = await import(${JSON.stringify(module)}); ` +
    'process.stdout.write(JSON.stringify(detectUws()));';
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script],
    { env: { ...process.env, UWS_USE_FALLBACK: '1' }, encoding: 'utf8' });
  const detection = JSON.parse(out.slice(out.indexOf('{'))) as { implementation: string; reason: string };
  t.is(detection.implementation, 'fallback');
  t.regex(detection.reason, /UWS_USE_FALLBACK/);
});
