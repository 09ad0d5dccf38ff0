#!/usr/bin/env node
/**
 * stratad: what `npm start` runs. Owner: the main thread.
 * Reads the configuration (daemon/config.ts), binds the port (HTTP /healthz at once, /readyz once recovered),
 * opens the engine on the data directory (newest snapshot + log replay), then serves WebSocket clients on /v1.
 * Prints one JSON line when listening and one when ready; SIGINT/SIGTERM stop it cleanly (connections closed
 * with 1001, the group in flight finished and synced, the data directory unlocked), exit 0.
 * Exit codes: daemon/exit-codes.ts (docs/operations.md).
 */
import { LockedError } from '../core/lock.js';
import { ConfigError, describeConfig, loadConfig, usage } from './config.js';
import { Daemon } from './daemon.js';
import { EngineError } from './engine.js';
import { exitCodeFor, exitLocked, exitUsage } from './exit-codes.js';
import { UwsFallbackError } from './uws.js';

function line(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

function fail(message: string, code: number): never {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), msg: 'stratad failed', error: message, exitCode: code })}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  let config;
  try {
    config = loadConfig(argv);
  } catch (error) {
    if (error instanceof ConfigError) fail(`${error.message}\n${usage}`, exitUsage);
    throw error;
  }
  line({ msg: 'stratad starting', pid: process.pid, config: describeConfig(config) });
  let daemon: Daemon;
  const started = performance.now();
  try {
    daemon = await Daemon.start(config, {
      onEvent: (event) => line(event),
      // Fail-stop: the writer died (an I/O error of the log, or a bug). Nothing more is acknowledged; exit so
      // that the supervisor restarts us and recovery brings back everything acknowledged.
      onFailure: (error) => fail(String(error?.message ?? error), exitCodeFor((error as EngineError).code ?? 'INTERNAL')),
    });
  } catch (error) {
    if (error instanceof UwsFallbackError) fail(error.message, exitUsage);
    if (error instanceof LockedError) fail(error.message, exitLocked);
    if (error instanceof EngineError) fail(error.message, exitCodeFor(error.code));
    if (error instanceof Error && error.message.startsWith('cannot listen')) fail(error.message, exitUsage);
    throw error;
  }
  const scheme = config.tlsCertFile === '' ? 'ws' : 'wss';
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const stats = daemon.engine!.stats();
  line({ msg: 'stratad ready', url: `${scheme}://${host}:${daemon.port}/v1`, http: `${scheme === 'ws' ? 'http' : 'https'}://${host}:${daemon.port}`,
    websocket: daemon.uws.implementation, dataDir: config.dataDir, revision: stats.revision, tasks: stats.taskCount,
    recovery: daemon.engine!.recovery, startMs: Math.round(performance.now() - started) });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    line({ msg: 'stratad stopping', signal });
    daemon.stop().then(() => {
      line({ msg: 'stratad stopped' });
      process.exit(0);
    }, (error: unknown) => fail(`close failed: ${String(error)}`, 1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  process.stderr.write(`stratad: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
