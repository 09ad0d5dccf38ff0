/**
 * stratad as a child process of a benchmark, and CPU time read from /proc (Linux): the daemon's process and
 * threads, the calling thread, the whole machine. Owner: a benchmark process (main thread; workers use the
 * CPU readers only). loadtest/ must not depend on test/: this is the benchmark's own copy of the idea in
 * test/support/daemon.ts.
 * Invariants: the daemon is stopped by its PID only (SIGTERM, SIGKILL after a bound); its stdout lines are
 * parsed as JSON and kept; nothing here throws once the daemon is ready except stop()'s wait.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const mainFile = fileURLToPath(new URL('../daemon/main.js', import.meta.url));
export const stopMsMax = 60_000;       // a clean stop syncs the group in flight: seconds at most, then SIGKILL
const clockTicksPerSecond = 100;       // USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK)

export interface DaemonStart {
  dataDir: string;
  configFile: string;
  config: Record<string, unknown>;
  /** Flags for node itself (before the script), e.g. --cpu-prof --cpu-prof-dir=DIR. */
  nodeArgs: string[];
  /** host:port to listen on (default 127.0.0.1:0, a port the daemon picks): a restart reuses the port. */
  listen?: string;
}

export class DaemonProcess {
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  url = '';
  http = '';
  private readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess, readonly pid: number) {
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  /** Writes the config file, starts the daemon on 127.0.0.1 (a port it picks), resolves once it is ready. */
  static start(options: DaemonStart): Promise<DaemonProcess> {
    writeFileSync(options.configFile, JSON.stringify(options.config));
    const args = [...options.nodeArgs, mainFile, '--config', options.configFile, '--data-dir', options.dataDir,
      '--listen', options.listen ?? '127.0.0.1:0'];
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith('STRATA_') && value !== undefined) env[key] = value; // the config file alone decides
    }
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error('stratad did not start');
    const daemon = new DaemonProcess(child, child.pid);
    return new Promise((resolve, reject) => {
      let pending = '';
      child.stderr!.on('data', (data: Buffer) => { daemon.stderr += data.toString(); });
      child.stdout!.on('data', (data: Buffer) => {
        pending += data.toString();
        for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
          const line = daemon.parse(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
          if (line?.msg === 'stratad ready') {
            daemon.url = String(line.url);
            daemon.http = String(line.http);
            resolve(daemon);
          }
        }
      });
      daemon.exited.then((code) => reject(new Error(`stratad exited with ${code} before ready: ${daemon.stderr}`)));
    });
  }

  private parse(text: string): Record<string, unknown> | null {
    try {
      const line = JSON.parse(text) as Record<string, unknown>;
      this.lines.push(line);
      return line;
    } catch {
      return null; // not a log line (a profiler's or node's own message)
    }
  }

  /** SIGTERM by PID, then the exit code (SIGKILL after stopMsMax). */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (this.child.exitCode === null) process.kill(this.pid, 'SIGKILL');
    }, stopMsMax);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** user + system CPU ms from the fields after the command name of a /proc stat line (utime, stime: 14, 15). */
function statCpuMs(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}

/** CPU ms of a whole process (every thread), from /proc/PID/stat. */
export function processCpuMs(pid: number): number {
  return statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** CPU ms of the calling thread (a worker reads its own). */
export function threadCpuMs(): number {
  return statCpuMs(readFileSync('/proc/thread-self/stat', 'utf8'));
}

/** CPU ms of each thread of a process, by thread id (threads that ended meanwhile are missing). */
export function threadsCpuMs(pid: number): Map<number, number> {
  const threads = new Map<number, number>();
  for (const name of readdirSync(`/proc/${pid}/task`)) {
    try {
      threads.set(Number(name), statCpuMs(readFileSync(`/proc/${pid}/task/${name}/stat`, 'utf8')));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return threads;
}

/** Busy CPU ms of the whole machine (every core: all but idle and iowait), from /proc/stat. */
export function machineBusyMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  let busy = 0;
  for (let i = 0; i < Math.min(fields.length, 8); i++) if (i !== 3 && i !== 4) busy += fields[i]!;
  return (busy * 1000) / clockTicksPerSecond;
}
