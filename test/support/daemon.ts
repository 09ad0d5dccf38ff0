/**
 * Starts stratad as a child process for the network tests: 127.0.0.1, port 0 (the daemon picks one), a
 * temporary data directory, a config file the test gives (rewritable: SIGHUP reloads it). Stopped by PID
 * (SIGTERM, then SIGKILL after a bound). Its stdout lines are parsed as JSON (daemon/log.ts) and kept in order.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request as httpRequest, type Agent } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const mainFile = fileURLToPath(new URL('../../daemon/main.js', import.meta.url));

export type LogLine = Record<string, unknown>;

/** A stratad process, from its spawn on (ready or not). */
export interface DaemonChild {
  child: ChildProcess;
  pid: number;
  /** The JSON lines of its stdout so far, in order. */
  lines: LogLine[];
  stderr: () => string;
  /** The config file it was started with (rewrite it with writeConfig, then signal('SIGHUP')). */
  configFile: string;
  exited: Promise<number | null>;
  /** Resolves with the first line (from index `from` on) that matches; rejects after timeoutMs or on exit. */
  waitLine(match: (line: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  signal(name: NodeJS.Signals): void;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

export interface RunningDaemon extends DaemonChild {
  url: string;          // ws://127.0.0.1:PORT/v1
  http: string;         // http://127.0.0.1:PORT
  port: number;
  /** SIGTERM and wait for the exit code (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<number | null>;
}

export interface DaemonStart {
  dataDir: string;
  config?: Record<string, unknown>;
  args?: string[];
  env?: Record<string, string>;
  port?: number;
}

/** The config file of a data directory (beside it), written with readerThreads 1 unless the config says. */
export function writeConfig(dataDir: string, config: Record<string, unknown> = {}): string {
  const configFile = join(dataDir, '..', `${dataDir.split('/').pop()}-config.json`);
  writeFileSync(configFile, JSON.stringify({ readerThreads: 1, ...config }));
  return configFile;
}

/** Spawns the daemon and returns at once (use waitLine for its lines). */
export function spawnDaemon(options: DaemonStart): DaemonChild {
  const configFile = writeConfig(options.dataDir, options.config);
  const args = [mainFile, '--config', configFile, '--data-dir', options.dataDir,
    '--listen', `127.0.0.1:${options.port ?? 0}`, ...(options.args ?? [])];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('STRATA_') && v !== undefined) env[k] = v;
  const child = spawn(process.execPath, args, { env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let pending = '';
  let exitCode: number | null | undefined;
  // 'close', not 'exit': every line it wrote has been read by then.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => {
    exitCode = code;
    resolve(code);
    for (const w of [...waiters]) w();
  }));
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout!.on('data', (d: Buffer) => {
    pending += d.toString();
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        continue; // not a log line (node's own warnings)
      }
    }
    for (const w of [...waiters]) w();
  });
  const waitLine = (match: (line: LogLine) => boolean, timeoutMs = 60_000, from = 0): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        const found = lines.slice(from).find(match);
        if (found === undefined && exitCode === undefined) return;
        waiters.delete(check);
        clearTimeout(timer);
        if (found !== undefined) resolve(found);
        else reject(new Error(`stratad exited with ${exitCode} before the line: ${stderr}`));
      };
      timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no such line after ${timeoutMs} ms; last lines: ${JSON.stringify(lines.slice(-5))}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child, pid: child.pid!, lines, stderr: () => stderr, configFile, exited, waitLine,
    signal: (name) => { if (alive()) process.kill(child.pid!, name); },
    kill: async () => {
      if (alive()) process.kill(child.pid!, 'SIGKILL');
      await exited;
    },
  };
}

/** Starts the daemon and resolves once it printed 'stratad ready' (rejects with its stderr if it exits first). */
export async function startDaemon(options: DaemonStart): Promise<RunningDaemon> {
  const d = spawnDaemon(options);
  let ready: LogLine;
  try {
    ready = await d.waitLine((line) => line.msg === 'stratad ready', 120_000);
  } catch (error) {
    await d.kill();
    throw error;
  }
  const url = String(ready.url);
  const port = Number(new URL(url).port);
  const stop = async (timeoutMs = 30_000): Promise<number | null> => {
    d.signal('SIGTERM');
    const timer = setTimeout(() => d.signal('SIGKILL'), timeoutMs);
    const code = await d.exited;
    clearTimeout(timer);
    return code;
  };
  return { ...d, url, http: `http://127.0.0.1:${port}`, port, stop };
}

/** An HTTP GET (the daemon's /healthz, /readyz, /metrics): status and body. `agent`: keep-alive tests. */
export function httpGet(url: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest(url, { agent }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => { body += chunk.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).end();
  });
}
