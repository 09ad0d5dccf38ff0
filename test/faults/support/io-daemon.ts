/**
 * The daemon side of the I/O-fault and corrupt-file suites: stratad started through test/support/daemon.ts with
 * no snapshot or backup trigger but the test's own requests, its fail-stop and refusal lines, and the offline
 * `strata` CLI run on a data directory. Owner: tests only.
 * Invariants: a daemon is started and stopped only by startDaemon's handle (by PID); a refused start is told
 * apart from a crash by its exit code and the 'stratad failed' line (stdout or stderr: the logging may move).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDaemon, type RunningDaemon } from '../../support/daemon.js';

export interface Teardown { teardown(fn: () => unknown): void }

const cliFile = fileURLToPath(new URL('../../../cli/main.js', import.meta.url));
/** An offline tool on a small data directory: far more than it needs on a busy machine. */
const cliTimeoutMs = 120_000;

/** Snapshots and backups only on request: the tests decide when files are written. */
export const quietConfig = { snapshot: { everyMs: 0, logBytes: 0, afterReplay: 0 }, backup: { everyMs: 0 } };

/** Starts a daemon that the test's teardown kills (by PID) if the test did not stop it. */
export async function startQuiet(t: Teardown, dataDir: string, failpoints = ''): Promise<RunningDaemon> {
  const daemon = await startDaemon({ dataDir, config: quietConfig,
    env: failpoints === '' ? {} : { STRATA_FAILPOINTS: failpoints } });
  t.teardown(() => daemon.kill());
  return daemon;
}

function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log line
    }
  }
  return out;
}

/** The daemon's log lines whose msg contains `msg` (stdout lines and JSON lines on stderr). */
export function logLines(daemon: RunningDaemon, msg: string): Record<string, unknown>[] {
  return [...daemon.lines, ...jsonLines(daemon.stderr())].filter((line) => String(line.msg ?? '').includes(msg));
}

export interface Refusal { kind: 'refused'; exitCode: number | null; output: string }

/**
 * Starts a daemon on `dataDir`: if it becomes ready, `started` runs against it and it is stopped (SIGTERM) after;
 * if it exits first, its exit code and everything it printed.
 */
export async function startOrRefusal<T>(t: Teardown, dataDir: string, started: (daemon: RunningDaemon) => Promise<T>):
  Promise<T | Refusal> {
  let daemon: RunningDaemon;
  try {
    daemon = await startQuiet(t, dataDir);
  } catch (error) {
    const text = String((error as Error).message);
    const match = /stratad exited with (\S+) before[^:]*: ([\s\S]*)$/.exec(text);
    if (match === null) throw error;
    return { kind: 'refused', exitCode: match[1] === 'null' ? null : Number(match[1]), output: match[2]! };
  }
  try {
    return await started(daemon);
  } finally {
    await daemon.stop();
  }
}

/** Runs `strata ARGS...` (offline tools): its exit code and its output. */
export function strata(args: string[]): Promise<{ exitCode: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('STRATA_') && v !== undefined) env[k] = v;
    const child = spawn(process.execPath, [cliFile, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), cliTimeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code, output });
    });
  });
}
