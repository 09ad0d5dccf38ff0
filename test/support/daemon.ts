/**
 * Starts stratad as a child process for the network tests: 127.0.0.1, port 0 (the daemon picks one), a
 * temporary data directory, a config file the test gives. Stopped by PID (SIGTERM, then SIGKILL after a bound).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const mainFile = fileURLToPath(new URL('../../daemon/main.js', import.meta.url));

export interface RunningDaemon {
  child: ChildProcess;
  pid: number;
  url: string;          // ws://127.0.0.1:PORT/v1
  http: string;         // http://127.0.0.1:PORT
  port: number;
  lines: Record<string, unknown>[];
  stderr: () => string;
  /** SIGTERM and wait for the exit code (SIGKILL after timeoutMs). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export interface DaemonStart {
  dataDir: string;
  config?: Record<string, unknown>;
  args?: string[];
  env?: Record<string, string>;
  port?: number;
}

/** Starts the daemon and resolves once it printed 'stratad ready' (rejects with its stderr if it exits first). */
export function startDaemon(options: DaemonStart): Promise<RunningDaemon> {
  const configFile = join(options.dataDir, '..', `${options.dataDir.split('/').pop()}-config.json`);
  writeFileSync(configFile, JSON.stringify({ readerThreads: 1, ...options.config }));
  const args = [mainFile, '--config', configFile, '--data-dir', options.dataDir,
    '--listen', `127.0.0.1:${options.port ?? 0}`, ...(options.args ?? [])];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('STRATA_') && v !== undefined) env[k] = v;
  const child = spawn(process.execPath, args, { env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let pending = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => {
      pending += d.toString();
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const text = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text) as Record<string, unknown>;
        } catch {
          continue;
        }
        lines.push(line);
        if (line.msg === 'stratad ready') {
          const url = String(line.url);
          const port = Number(new URL(url).port);
          const stop = async (timeoutMs = 30_000): Promise<number | null> => {
            if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM');
            const timer = setTimeout(() => { if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL'); }, timeoutMs);
            const code = await exited;
            clearTimeout(timer);
            return code;
          };
          resolve({ child, pid: child.pid!, url, http: `http://127.0.0.1:${port}`, port, lines, stderr: () => stderr,
            stop, exited,
            kill: async () => {
              if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
              await exited;
            } });
        }
      }
    });
    exited.then((code) => reject(new Error(`stratad exited with ${code} before ready: ${stderr}`)));
  });
}
