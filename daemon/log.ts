/**
 * stratad's log: pino JSON lines for journald (docs/operations.md "Logs"). Owner: the main thread.
 *
 * Invariants:
 * - One JSON object per line: `level` as a label ("info"), `time` in ISO 8601 (UTC), `pid`, `version`, `msg`,
 *   then the line's own fields. Lines go to stdout; the one line of a fail-stop exit ('stratad failed') goes to
 *   stderr.
 * - Writes are synchronous (pino.destination({ sync: true })): a line is in the kernel when the call returns, so
 *   the process.exit of a fail-stop path right after it loses nothing, and no buffer grows in the process while
 *   journald is slow. The volume that makes this cheap is bounded by the next rule.
 * - Lines that a client or a load can repeat without bound (slow work, refused connections, failed Hellos,
 *   request errors) go through limited(): at most one line per kind per logRateMs; the next line of that kind
 *   carries `suppressed`, how many were dropped since the last one. At most logKindsMax kinds are tracked.
 * - A disabled level costs one comparison: limited() checks it before building anything.
 * - Tokens never reach a line: callers pass a token's name, never its value.
 */
import pino from 'pino';
import type { LogLevel } from './config.js';

/** One line per kind per second: a storm of slow requests is one line a second, not one per request. */
export const logRateMs = 1000;
/** Kinds are code constants and error codes (a few dozen); the bound only guards against a caller's mistake. */
export const logKindsMax = 256;

export type LogFields = Record<string, unknown>;
type LineLevel = Exclude<LogLevel, 'silent'>;

/** Per-kind rate limiting: take() says whether a line of `kind` may go out now and what was suppressed. */
export class LogRate {
  private readonly kinds = new Map<string, { lastMs: number; suppressed: number }>();

  constructor(private readonly intervalMs = logRateMs, private readonly now: () => number = () => performance.now()) {}

  /** -1: suppress this line (counted); otherwise the count of lines of `kind` suppressed since the last one. */
  take(kind: string): number {
    const now = this.now();
    let entry = this.kinds.get(kind);
    if (entry === undefined) {
      if (this.kinds.size >= logKindsMax) this.kinds.clear(); // forget the oldest windows at once: rare, and safe
      entry = { lastMs: Number.NEGATIVE_INFINITY, suppressed: 0 };
      this.kinds.set(kind, entry);
    }
    if (now - entry.lastMs < this.intervalMs) {
      entry.suppressed++;
      return -1;
    }
    const suppressed = entry.suppressed;
    entry.lastMs = now;
    entry.suppressed = 0;
    return suppressed;
  }
}

export interface DaemonLogOptions {
  level: LogLevel;
  version: string;
  /** Where lines go (default: stdout through a synchronous destination); tests pass a stream. */
  stream?: pino.DestinationStream;
  /** Where the fail-stop line goes (default: stderr, synchronous). */
  failureStream?: pino.DestinationStream;
  now?: () => number;
}

function logger(level: LogLevel, version: string, stream: pino.DestinationStream): pino.Logger {
  return pino({
    level, base: { pid: process.pid, version }, timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, stream);
}

export class DaemonLog {
  readonly logger: pino.Logger;
  private readonly failureLogger: pino.Logger;
  private readonly rate: LogRate;

  constructor(options: DaemonLogOptions) {
    this.logger = logger(options.level, options.version, options.stream ?? pino.destination({ dest: 1, sync: true }));
    // The exit reason is written whatever logLevel says: it is what an operator reads after a failed start.
    this.failureLogger = logger('fatal', options.version,
      options.failureStream ?? pino.destination({ dest: 2, sync: true }));
    this.rate = new LogRate(logRateMs, options.now);
  }

  /** A logger that writes nothing (tests that build a server without a daemon). */
  static silent(): DaemonLog {
    const sink = { write: () => undefined };
    return new DaemonLog({ level: 'silent', version: 'test', stream: sink, failureStream: sink });
  }

  get level(): LogLevel {
    return this.logger.level as LogLevel;
  }

  set level(level: LogLevel) {
    this.logger.level = level;
  }

  enabled(level: LineLevel): boolean {
    return this.logger.isLevelEnabled(level);
  }

  fatal(fields: LogFields, msg: string): void { this.logger.fatal(fields, msg); }
  error(fields: LogFields, msg: string): void { this.logger.error(fields, msg); }
  warn(fields: LogFields, msg: string): void { this.logger.warn(fields, msg); }
  info(fields: LogFields, msg: string): void { this.logger.info(fields, msg); }
  debug(fields: LogFields, msg: string): void { this.logger.debug(fields, msg); }

  /** A line of a kind that may repeat without bound: rate limited per kind (`kind` is a field of the line). */
  limited(level: LineLevel, kind: string, fields: LogFields | (() => LogFields), msg: string): void {
    if (!this.logger.isLevelEnabled(level)) return;
    const suppressed = this.rate.take(kind);
    if (suppressed < 0) return; // a dropped line's fields are never built (pass a function where they cost)
    const built = typeof fields === 'function' ? fields() : fields;
    this.logger[level](suppressed > 0 ? { kind, ...built, suppressed } : { kind, ...built }, msg);
  }

  /** The one line of a fail-stop exit, on stderr (also when logLevel is silent). */
  failed(error: string, exitCode: number, fields: LogFields = {}): void {
    this.failureLogger.fatal({ ...fields, error, exitCode }, 'stratad failed');
  }
}

/** An error's fields for a line: its typed code, its message, and the stack for a bug (INTERNAL). */
export function errorFields(error: unknown, code: string): LogFields {
  const message = String((error as Error)?.message ?? error);
  const stack = code === 'INTERNAL' && error instanceof Error ? error.stack : undefined;
  return stack === undefined ? { code, error: message } : { code, error: message, stack };
}
