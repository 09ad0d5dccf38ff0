/**
 * Which uWebSockets.js runs. Owner: the main thread, at start.
 * The npm package (an alias of @trufflesuite/uws-js-unofficial) loads its native binary
 * `binaries/uws_<platform>_<arch>_<node ABI>.node`, and when that fails (another Node ABI, an older glibc) or
 * UWS_USE_FALLBACK is set, it silently returns a pure-JS server built on `ws` instead, which is slower and lacks
 * SSLApp. stratad must know which one it got: it refuses to start on the fallback unless allowed explicitly, and
 * reports the implementation in /metrics (the network issue wires both).
 * Detection: the native module is the very object that requiring the binary by its path returns (Node caches
 * native modules), so the loaded export is compared with it; anything else is the fallback.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import uWS from 'uWebSockets.js';

export type UwsImplementation = 'native' | 'fallback';

export interface UwsDetection {
  implementation: UwsImplementation;
  binary: string;              // the native binary this platform would load
  reason: string;              // why the fallback runs ('' for native)
}

const require = createRequire(import.meta.url);

/** The binary path for this process (platform, architecture, Node ABI). */
export function uwsBinaryPath(): string {
  const packageDir = dirname(require.resolve('uWebSockets.js/package.json'));
  return join(packageDir, 'binaries',
    `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
}

/** Which implementation `loaded` (default: the uWebSockets.js module this process imported) is. */
export function detectUws(loaded: unknown = uWS): UwsDetection {
  const binary = uwsBinaryPath();
  let native: unknown;
  try {
    native = require(binary);
  } catch (error) {
    return { implementation: 'fallback', binary, reason: `the native binary does not load: ${String((error as Error)?.message ?? error).split('\n')[0]}` };
  }
  if (loaded === native) return { implementation: 'native', binary, reason: '' };
  const forced = ['1', 'true', 'True', 'TRUE'].includes(process.env.UWS_USE_FALLBACK ?? '');
  return { implementation: 'fallback', binary,
    reason: forced ? 'UWS_USE_FALLBACK is set' : 'the loaded module is not the native binary' };
}

/** Thrown when the fallback runs and was not allowed. */
export class UwsFallbackError extends Error {
  constructor(readonly detection: UwsDetection) {
    super(`uWebSockets.js runs its pure-JS fallback, not the native server (${detection.reason}; ` +
      `${detection.binary}); start with --allow-uws-fallback to run anyway, slower and without TLS`);
    this.name = 'UwsFallbackError';
  }
}

/** The detection, or UwsFallbackError when the fallback runs and `allowFallback` is false. */
export function requireNativeUws(allowFallback: boolean, loaded: unknown = uWS): UwsDetection {
  const detection = detectUws(loaded);
  if (detection.implementation === 'fallback' && !allowFallback) throw new UwsFallbackError(detection);
  return detection;
}
