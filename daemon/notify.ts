/**
 * sd_notify(3) for stratad under systemd (Type=notify): READY=1 once recovered, STATUS= lines, WATCHDOG=1 pings,
 * STOPPING=1. Owner: the main thread.
 *
 * Node has no AF_UNIX datagram sockets (dgram is UDP only, net is streams only), and the notify socket is a
 * datagram socket; the packages that fill the gap are native addons built at install time. So each message is
 * sent by systemd's own systemd-notify(1), which exists wherever systemd runs. It sends the datagram from its
 * own PID, hence NotifyAccess=all in the unit (systemd/stratad.service); since systemd 246 it waits until the
 * manager has read the message (BARRIER=1), so the manager never sees a message from an already-exited PID
 * it cannot attribute to the service.
 *
 * Invariants:
 * - Nothing is spawned and nothing is sent unless NOTIFY_SOCKET is set.
 * - Messages go out one at a time, in the order asked; a watchdog ping asked while one is queued or being
 *   sent is folded into it (pings never pile up behind a slow manager).
 * - A message that cannot be sent is reported through onError and never thrown: the daemon's work does not
 *   depend on the supervisor hearing it (a missed WATCHDOG=1 is the supervisor's signal, by design).
 * - Each systemd-notify run is bounded by timeoutMs, then killed.
 * - Values never contain a newline (a newline would start another variable): they are replaced by spaces.
 */
import { spawn } from 'node:child_process';

export interface NotifyOptions {
  /** The environment to read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The program that sends a datagram (default systemd-notify, found on PATH). */
  command?: string;
  /** Bound of one send (default 10 s). */
  timeoutMs?: number;
  /** A send that failed (the program missing, a non-zero exit, the bound passed). */
  onError?: (error: Error) => void;
}

export const notifyTimeoutMsDefault = 10_000;
/** The longest watchdog interval we honour: systemd's own maximum is far larger, ours is an input check. */
const watchdogUsecMax = 24 * 3600 * 1_000_000;
const nameRe = /^[A-Z][A-Z0-9_]*$/;

/**
 * The watchdog interval systemd asks for, in ms (0: none): WATCHDOG_USEC, if WATCHDOG_PID is unset or is this
 * process (sd_watchdog_enabled(3)). Malformed values mean no watchdog and are reported.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid, onError?: (error: Error) => void): number {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || usec === '') return 0;
  const wantedPid = env.WATCHDOG_PID;
  if (wantedPid !== undefined && wantedPid !== '' && wantedPid !== String(pid)) return 0;
  if (!/^\d+$/.test(usec) || Number(usec) <= 0 || Number(usec) > watchdogUsecMax) {
    onError?.(new Error(`WATCHDOG_USEC=${JSON.stringify(usec)} is not a number of microseconds in 1..${watchdogUsecMax}: no watchdog pings`));
    return 0;
  }
  return Math.max(1, Math.floor(Number(usec) / 1000));
}

export class Notifier {
  /** NOTIFY_SOCKET is set: messages are sent. */
  readonly enabled: boolean;
  /** The interval systemd expects pings within (0: no watchdog). */
  readonly watchdogMs: number;
  /** Messages sent successfully, and failed (for /metrics and tests). */
  sent = 0;
  failed = 0;
  private readonly command: string;
  private readonly timeoutMs: number;
  private readonly onError: (error: Error) => void;
  private readonly env: NodeJS.ProcessEnv;
  private queue: { fields: string[]; done: (() => void)[]; ping: boolean }[] = [];
  private sending = false;

  constructor(options: NotifyOptions = {}) {
    this.env = options.env ?? process.env;
    const socket = this.env.NOTIFY_SOCKET;
    this.enabled = socket !== undefined && socket !== '';
    this.command = options.command ?? 'systemd-notify';
    this.timeoutMs = options.timeoutMs ?? notifyTimeoutMsDefault;
    this.onError = options.onError ?? (() => undefined);
    this.watchdogMs = this.enabled ? watchdogIntervalMs(this.env, process.pid, this.onError) : 0;
  }

  /** Sends VARIABLE=value pairs in one datagram; resolves when sent or failed (never rejects). */
  send(fields: Record<string, string | number>): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const list: string[] = [];
    for (const [name, value] of Object.entries(fields)) {
      if (!nameRe.test(name)) throw new Error(`sd_notify: bad variable name ${JSON.stringify(name)}`);
      list.push(`${name}=${String(value).replace(/[\r\n]+/g, ' ')}`);
    }
    if (list.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.queue.push({ fields: list, done: [resolve], ping: false });
      this.pump();
    });
  }

  /** READY=1 with a status line: recovery is done and clients are served. */
  ready(status: string): Promise<void> {
    return this.send({ READY: 1, STATUS: status });
  }

  status(status: string): Promise<void> {
    return this.send({ STATUS: status });
  }

  /** STOPPING=1 with a status line: the graceful stop began. */
  stopping(status: string): Promise<void> {
    return this.send({ STOPPING: 1, STATUS: status });
  }

  /** WATCHDOG=1; folded into a ping already waiting to go out. */
  watchdog(): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const waiting = this.queue.find((m, i) => m.ping && (i > 0 || !this.sending));
    if (waiting !== undefined) return new Promise((resolve) => waiting.done.push(resolve));
    return new Promise((resolve) => {
      this.queue.push({ fields: ['WATCHDOG=1'], done: [resolve], ping: true });
      this.pump();
    });
  }

  /** Resolves once every message asked so far has been sent (or has failed). */
  async flushed(): Promise<void> {
    // A message leaves the queue only once sent: while anything is sending, the queue is not empty.
    while (this.queue.length > 0) {
      const last = this.queue[this.queue.length - 1]!;
      await new Promise<void>((resolve) => last.done.push(resolve));
    }
  }

  private pump(): void {
    if (this.sending || this.queue.length === 0) return;
    this.sending = true;
    const message = this.queue[0]!;
    this.run(message.fields).then(() => {
      this.sent++;
    }, (error: Error) => {
      this.failed++;
      this.onError(error);
    }).finally(() => {
      this.queue.shift();
      this.sending = false;
      for (const done of message.done) done();
      this.pump();
    });
  }

  private run(fields: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.command, fields, { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let settled = false;
      const finish = (error: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error === null) resolve();
        else reject(error);
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        finish(new Error(`sd_notify: ${this.command} ${fields.join(' ')} did not finish within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      child.stderr!.on('data', (chunk: Buffer) => { if (stderr.length < 4096) stderr += chunk.toString(); });
      child.on('error', (error) => finish(new Error(`sd_notify: cannot run ${this.command}: ${error.message}`)));
      child.on('exit', (code, signal) => {
        if (code === 0) finish(null);
        else finish(new Error(`sd_notify: ${this.command} ${fields.join(' ')} exited ${code ?? signal}: ${stderr.trim()}`));
      });
    });
  }
}

/**
 * Pings the watchdog at a third of its interval while `healthy` answers true within that third; stops pinging
 * (and says why through onUnhealthy) while it does not, so that systemd kills and restarts a daemon whose main
 * loop or writer thread is stuck. A check still running when the next tick comes is not started twice.
 */
export class Watchdog {
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  /** Pings sent, and ticks skipped because the check failed or was late. */
  pings = 0;
  skipped = 0;

  constructor(
    private readonly notifier: Notifier,
    private readonly healthy: (timeoutMs: number) => Promise<boolean>,
    private readonly onUnhealthy: (reason: string) => void = () => undefined,
  ) {}

  get intervalMs(): number {
    return Math.max(1, Math.floor(this.notifier.watchdogMs / 3));
  }

  start(): void {
    if (this.notifier.watchdogMs === 0 || this.timer !== null) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.tick();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (this.checking) {
      this.skipped++;
      this.onUnhealthy(`the last health check has not answered within ${this.intervalMs} ms`);
      return;
    }
    this.checking = true;
    const started = performance.now();
    this.healthy(this.intervalMs).then((ok) => ok, () => false).then((ok) => {
      this.checking = false;
      if (this.timer === null) return;
      if (ok && performance.now() - started <= this.intervalMs) {
        this.pings++;
        void this.notifier.watchdog();
      } else {
        this.skipped++;
        this.onUnhealthy(ok ? 'the health check answered late' : 'the health check failed');
      }
    });
  }
}
