/**
 * stratad on a fixed port across restarts, for fault suites whose clients reconnect to one address (the daemon
 * killed with SIGKILL and started again on the same data directory). Owner: tests only.
 * Invariants: the port is below the ephemeral range (32768), so no client's own outgoing port can take it; a
 * start that fails (the port not yet free, or any other early exit) is retried at most `startAttemptsMax` times,
 * then the last error (with the daemon's stderr) is thrown; test/support/daemon.ts does the rest.
 */
import { startDaemon, type DaemonStart, type RunningDaemon } from '../../support/daemon.js';
import type { Prng } from '../../../core/prng.js';

/** Attempts to start before giving up: a port in TIME_WAIT use frees within seconds, not minutes. */
const startAttemptsMax = 40;
const startRetryMs = 250;

/** A port in [20000, 32000): below the ephemeral range, away from the well-known ones. */
export function fixedPort(prng: Prng): number {
  return 20_000 + prng.int(12_000);
}

export async function startOnPort(options: DaemonStart & { port: number }): Promise<RunningDaemon> {
  let last: unknown = null;
  for (let attempt = 0; attempt < startAttemptsMax; attempt++) {
    try {
      return await startDaemon(options);
    } catch (error) {
      last = error;
      await new Promise((resolve) => setTimeout(resolve, startRetryMs));
    }
  }
  throw new Error(`stratad did not start on port ${options.port} in ${startAttemptsMax} attempts: ${String(last)}`);
}
