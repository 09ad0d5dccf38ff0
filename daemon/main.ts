#!/usr/bin/env node
/**
 * stratad: what `npm start` runs. Owner: the main thread.
 * Reads the configuration (daemon/config.ts), binds the port (HTTP /healthz at once, /readyz once recovered),
 * opens the engine on the data directory (newest snapshot + log replay), then serves WebSocket clients on /v1.
 * Logs JSON lines (daemon/log.ts): 'stratad starting', 'stratad listening (ready once recovered)', 'stratad ready'
 * (the READY point below), 'stratad stopping', 'stratad stopped'; a fail-stop exit writes 'stratad failed' on
 * stderr with its exit code (daemon/exit-codes.ts).
 * Signals (docs/operations.md "Signals"):
 * - SIGTERM, SIGINT: the graceful stop of Daemon.stop() (no new connections or requests, the requests taken
 *   answered, the engine closed, subscribers told, connections closed with 1001), exit 0; if shutdownTimeoutMs
 *   passes first, an error line naming what was pending and exit 70. A second signal is logged, nothing more.
 *   Installed before recovery starts: a stop during recovery waits for it (bounded) and serves nothing.
 * - SIGHUP: the same sources (argv, the config file, the environment) are loaded again; the live keys and the
 *   tokens apply (daemon/reload.ts), the rest is reported as needing a restart; a config that does not load is
 *   logged and the running one stays.
 * systemd (daemon/notify.ts, when NOTIFY_SOCKET is set): STATUS= while recovering, READY=1 once serving,
 * WATCHDOG=1 while the main loop and the writer answer (startWatchdog), STOPPING=1 and a STATUS= per stop step.
 */
import { readFileSync } from 'node:fs';
import { LockedError } from '../core/lock.js';
import { ConfigError, describeConfig, loadConfig, usage, type DaemonConfig } from './config.js';
import { Daemon, serverVersion } from './daemon.js';
import { EngineError } from './engine.js';
import { exitCodeFor, exitInternal, exitLocked, exitOk, exitUsage } from './exit-codes.js';
import { DaemonLog, errorFields } from './log.js';
import { Notifier, Watchdog } from './notify.js';
import { planChanges } from './reload.js';
import { UwsFallbackError } from './uws.js';

/** Logs the fail-stop line (synchronously: the destination is sync) and exits with `code`. */
function fail(log: DaemonLog, message: string, code: number, fields: Record<string, unknown> = {}): never {
  log.failed(message, code, fields);
  process.exit(code);
}

function loadOrExit(argv: string[], log: DaemonLog): DaemonConfig {
  try {
    return loadConfig(argv);
  } catch (error) {
    if (error instanceof ConfigError) fail(log, `${error.message}\n${usage}`, exitUsage);
    throw error;
  }
}

/** Descriptors the process needs besides one per connection (systemd/stratad.service: LimitNOFILE arithmetic). */
const descriptorsBesideConnections = 320;

/**
 * Warns when the soft open-file limit cannot hold limits.connectionsMax connections plus the process's own
 * descriptors: running out when the next log segment opens is a fail-stop (exit 74), better known at start.
 */
function checkOpenFileLimit(config: DaemonConfig, log: DaemonLog): void {
  let soft: number;
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const value = line?.split(/\s{2,}/)[1];
    if (value === undefined || value === 'unlimited') return;
    soft = Number(value);
  } catch {
    return; // not Linux: nothing to read
  }
  const needed = config.limits.connectionsMax + descriptorsBesideConnections;
  if (Number.isFinite(soft) && soft < needed) {
    log.warn({ openFilesSoftLimit: soft, needed, connectionsMax: config.limits.connectionsMax },
      'the open-file limit is below limits.connectionsMax + 320: raise it (LimitNOFILE, ulimit -n) or lower connectionsMax');
  }
}

/** Waits for the notify messages asked so far, at most `ms` (the manager may be gone). */
function flushedWithin(notifier: Notifier, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([notifier.flushed(), new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); })])
    .finally(() => clearTimeout(timer));
}

/** SIGHUP: load the same sources again and apply what may change live. Never exits. */
function reload(daemon: Daemon, argv: string[], log: DaemonLog): void {
  if (!['serving', 'recovering', 'reopening', 'starting'].includes(daemon.phase)) {
    log.warn({ signal: 'SIGHUP', phase: daemon.phase }, 'config reload ignored: stopping');
    return;
  }
  let next: DaemonConfig;
  try {
    next = loadConfig(argv);
  } catch (error) {
    log.error({ signal: 'SIGHUP', reason: String((error as Error)?.message ?? error) },
      'config reload failed: the running config stays');
    return;
  }
  const plan = daemon.reload(next);
  checkOpenFileLimit(daemon.config, log); // a raised connectionsMax must still fit the open-file limit
  for (const change of plan.needsRestart) {
    log.warn({ key: change.key, running: change.from, configured: change.to }, 'config key changed, needs a restart: not applied');
  }
  log.info({ signal: 'SIGHUP', changed: planChanges(plan), applied: plan.applied, needsRestart: plan.needsRestart.map((c) => c.key),
    tokensAdded: plan.tokens.added, tokensRemoved: plan.tokens.removed, tokensChanged: plan.tokens.changed }, 'config reloaded');
}

function onSignals(daemon: Daemon, argv: string[], log: DaemonLog, notifier: Notifier): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal, phase: daemon.phase }, 'stratad stopping already: signal ignored (the stop is bounded by shutdownTimeoutMs)');
      return;
    }
    stopping = true;
    log.info({ signal, phase: daemon.phase, shutdownTimeoutMs: daemon.config.shutdownTimeoutMs }, 'stratad stopping');
    void notifier.stopping(`stopping (${signal})`);
    daemon.stop().then(async (result) => {
      if (result.ok) {
        log.info({ ms: result.ms }, 'stratad stopped');
        await flushedWithin(notifier, 1_000);
        process.exit(exitOk);
      }
      log.error({ ms: result.ms, pending: result.pending }, 'stratad stop timed out: work still pending');
      fail(log, `the stop did not finish within shutdownTimeoutMs (${daemon.config.shutdownTimeoutMs} ms)`, exitInternal,
        { pending: result.pending });
    }, (error: unknown) => fail(log, `stop failed: ${String(error)}`, exitInternal));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => reload(daemon, argv, log));
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const config = loadOrExit(argv, new DaemonLog({ level: 'info', version: serverVersion }));
  const log = new DaemonLog({ level: config.logLevel, version: serverVersion });
  const startedAt = new Date().toISOString();
  const notifier = new Notifier({ onError: (error) => log.limited('warn', 'sd_notify', { error: error.message }, 'sd_notify failed') });
  log.info({ node: process.version, config: describeConfig(config), systemd: notifier.enabled,
    watchdogMs: notifier.watchdogMs }, 'stratad starting');
  let daemon: Daemon;
  try {
    daemon = Daemon.create(config, {
      log,
      onStopStep: (step) => void notifier.status(`stopping: ${step}`),
      // Fail-stop: the writer died (an I/O error of the log, or a bug). Nothing more is acknowledged; exit so
      // that the supervisor restarts us and recovery brings back everything acknowledged.
      onFailure: (error) => {
        const code = (error as EngineError).code ?? 'INTERNAL';
        log.fatal(errorFields(error, code), 'engine failed: fail-stop');
        fail(log, String(error?.message ?? error), exitCodeFor(code), { code });
      },
    });
  } catch (error) {
    if (error instanceof UwsFallbackError) fail(log, error.message, exitUsage);
    throw error;
  }
  checkOpenFileLimit(config, log);
  onSignals(daemon, argv, log, notifier);
  startWatchdog(daemon, notifier, log);
  void notifier.status(`recovering ${config.dataDir}`);
  const started = performance.now();
  let serving: boolean;
  try {
    serving = await daemon.start();
  } catch (error) {
    if (error instanceof LockedError) fail(log, error.message, exitLocked, { dataDir: config.dataDir, holder: error.holder });
    if (error instanceof EngineError) fail(log, error.message, exitCodeFor(error.code), { code: error.code });
    if (error instanceof Error && error.message.startsWith('cannot listen')) fail(log, error.message, exitUsage);
    throw error;
  }
  if (!serving) return; // a signal stopped it during recovery: the stop exits
  const scheme = config.tlsCertFile === '' ? 'ws' : 'wss';
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const stats = daemon.engine!.stats();
  const recovery = daemon.engine!.recovery;
  log.info({ url: `${scheme}://${host}:${daemon.port}/v1`, http: `${scheme === 'ws' ? 'http' : 'https'}://${host}:${daemon.port}`,
    node: process.version, websocket: daemon.uws.implementation, dataDir: config.dataDir, revision: stats.revision,
    tasks: stats.taskCount, recoveryMs: recovery === null ? 0 : Math.round(recovery.ms), replayed: recovery?.replayed ?? 0,
    recovery, startedAt, startMs: Math.round(performance.now() - started) }, 'stratad ready');
  // READY=1 only now: recovery is done and clients are let in (systemd orders dependent units after this).
  void notifier.ready(`serving revision ${stats.revision} (${stats.taskCount} tasks) on ${host}:${daemon.port}`);
}

/**
 * WATCHDOG=1 at a third of WatchdogSec while the main loop runs (the timer fires) and, once serving, the writer
 * thread answers a round trip within that third (Daemon.healthCheck). Recovery and a reopen after a committed
 * staged backup cannot ask the writer (it is busy recovering): the main loop's health suffices then, and
 * TimeoutStartSec bounds the first recovery. A check takes up to a third and pings come a third apart, so a
 * writer that does not answer for about two thirds of WatchdogSec (20 s of 30 s) gets the daemon restarted.
 */
function startWatchdog(daemon: Daemon, notifier: Notifier, log: DaemonLog): void {
  const watchdog = new Watchdog(notifier, (timeoutMs) => {
    if (daemon.phase === 'serving') return daemon.healthCheck(timeoutMs);
    return Promise.resolve(true);
  }, (reason) => log.limited('error', 'watchdog', { phase: daemon.phase, reason }, 'watchdog: not pinging systemd (the writer thread did not answer)'));
  watchdog.start();
}

main().catch((error: unknown) => {
  const log = new DaemonLog({ level: 'fatal', version: serverVersion });
  log.failed(error instanceof Error ? error.stack ?? error.message : String(error), exitInternal, { code: 'INTERNAL' });
  process.exit(exitInternal);
});
