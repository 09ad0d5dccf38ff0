/**
 * A fake systemd notify socket (test/support/notify-socket.py, run by python3) that records every datagram, for
 * the sd_notify tests of the Notifier and of stratad. Stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../../test/support/notify-socket.py', import.meta.url));

/** A command on PATH (the tests whose tool is missing skip with a note; .ci/run installs them all). */
export function installed(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).status === 0;
}

export interface NotifyMessage {
  /** The sender's PID (SCM_CREDENTIALS). */
  pid: number | null;
  fields: Record<string, string>;
  text: string;
  /** performance.now() when the test process read it. */
  at: number;
}

export class FakeNotifySocket {
  readonly messages: NotifyMessage[] = [];
  private waiters: (() => void)[] = [];

  private constructor(readonly path: string, private readonly dir: string, private readonly child: ChildProcess) {}

  static start(): Promise<FakeNotifySocket> {
    const dir = mkdtempSync(join(tmpdir(), 'strata-notify-'));
    const path = join(dir, 'notify.sock');
    const child = spawn('python3', [script, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    return new Promise((resolve, reject) => {
      const socket = new FakeNotifySocket(path, dir, child);
      let pending = '';
      let bound = false;
      child.on('error', reject);
      child.on('exit', (code) => { if (!bound) reject(new Error(`notify-socket.py exited ${code}: ${stderr}`)); });
      child.stdout!.on('data', (d: Buffer) => {
        pending += d.toString();
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line === 'bound') {
            bound = true;
            resolve(socket);
            continue;
          }
          const parsed = JSON.parse(line) as Omit<NotifyMessage, 'at'>;
          socket.messages.push({ ...parsed, at: performance.now() });
          for (const wake of socket.waiters.splice(0)) wake();
        }
      });
    });
  }

  /** Messages with this variable (BARRIER=1 datagrams left out). */
  with(name: string): NotifyMessage[] {
    return this.messages.filter((m) => name in m.fields);
  }

  /** Waits for a message matching `match` (already received ones count); rejects after timeoutMs. */
  async waitFor(match: (m: NotifyMessage) => boolean, timeoutMs = 30_000): Promise<NotifyMessage> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found !== undefined) return found;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no matching notify message within ${timeoutMs} ms; got ${JSON.stringify(this.messages.map((m) => m.text))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  stop(): void {
    if (this.child.pid !== undefined) {
      try { process.kill(this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
