/**
 * stratad's configuration: embedded defaults, then a JSON file (--config or STRATA_CONFIG), then environment
 * variables (STRATA_*), then flags; a later source overrides an earlier one. Owner: the main thread, at start
 * and on reload (SIGHUP re-reads the same sources; daemon/reload.ts says what applies live).
 *
 * Invariants:
 * - loadConfig either returns a complete, checked config or throws ConfigError (exit 64): an unknown key, a
 *   value of the wrong type or outside its range is refused, never ignored.
 * - Listening beyond loopback without tokens is refused unless allowUnauthenticated is set.
 * - Tokens are never printed: describeConfig() shows their names and scopes only.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface TokenConfig {
  /** A name for logs and metrics (never the token itself). */
  name: string;
  /** The bearer token, or tokenFile: a file holding it (first line). */
  token: string;
  /** Everything: every role, hosts, maintenance, the scheduler, backups, snapshots. */
  admin: boolean;
  /** Roles this token may read and watch ("*": every role, and the role-less tables). */
  read: string[];
  /** Roles this token may write ("*": every role and the role-less tables). */
  write: string[];
}

export interface LimitsConfig {
  /** Largest WebSocket message accepted (and largest sent: bigger watch revisions are fragmented). */
  frameBytesMax: number;
  /** Requests of one connection answered concurrently; more get RESOURCE_EXHAUSTED. */
  requestsInFlightMax: number;
  /** Watch subscriptions per connection. */
  subscriptionsMax: number;
  /** Requests per second per connection (token bucket, burst = one second's worth); 0: no limit. */
  requestsPerSecondMax: number;
  /** Open WebSocket connections; more are refused with HTTP 503. */
  connectionsMax: number;
  /** A connection that has not said Hello after this long is closed (4401). */
  helloTimeoutMs: number;
  /** Seconds without traffic before uWS closes a connection (it pings before). */
  idleTimeoutS: number;
}

export interface WatchConfig {
  /** Bytes of change history kept in memory for resuming watches (the oldest revisions go first). */
  historyBytes: number;
  /** Default interval of progress messages to an idle subscription. */
  progressMs: number;
  /** A connection whose send buffer holds more than this stops getting live events: its subscriptions catch up
   * from history once it drains (or end with COMPACTED if history moved past them). */
  bufferBytes: number;
  /** A connection whose send buffer holds more than this is closed with 4408 (slow consumer). */
  closeBytes: number;
  /** List-then-watch initial states read at the same time; more wait their turn. */
  listsConcurrent: number;
}

/** Lines about slow work (daemon/log.ts), each kind rate limited: thresholds in milliseconds (0: every one). */
export interface SlowLogConfig {
  /** A commit group whose log append + fdatasync took at least this long. */
  fsyncMs: number;
  /** A commit answered at least this long after its request arrived. */
  commitMs: number;
  /** A query answered at least this long after its request arrived. */
  queryMs: number;
}

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = typeof logLevels[number];

export interface DaemonConfig {
  dataDir: string;
  host: string;
  port: number;
  /** TLS (uWS SSLApp) when both are set. */
  tlsCertFile: string;
  tlsKeyFile: string;
  tlsPassphrase: string;
  tokens: TokenConfig[];
  /** Run without tokens on a non-loopback address (everyone is admin). */
  allowUnauthenticated: boolean;
  /** Run on uWebSockets.js's pure-JS fallback if the native binary does not load (slower, no TLS). */
  allowUwsFallback: boolean;
  /** Reader worker threads (default: cores - 1, at least 1). */
  readerThreads: number;
  limits: LimitsConfig;
  watch: WatchConfig;
  snapshot: { everyMs?: number; logBytes?: number; retained?: number; afterReplay?: number };
  backup: { everyMs?: number; keep?: number; dir?: string | null };
  /** Lines below this level are not written (docs/operations.md "Logs"). */
  logLevel: LogLevel;
  slowLog: SlowLogConfig;
  /** SIGTERM/SIGINT: a stop that has not finished after this long logs what is pending and exits 70. */
  shutdownTimeoutMs: number;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const defaultPort = 7420;

export function defaultConfig(): DaemonConfig {
  return {
    dataDir: 'data', host: '127.0.0.1', port: defaultPort, tlsCertFile: '', tlsKeyFile: '', tlsPassphrase: '',
    tokens: [], allowUnauthenticated: false, allowUwsFallback: false, readerThreads: 0,
    limits: {
      frameBytesMax: 16 * 1024 * 1024, requestsInFlightMax: 1024, subscriptionsMax: 64, requestsPerSecondMax: 0,
      connectionsMax: 1024, helloTimeoutMs: 10_000, idleTimeoutS: 120,
    },
    watch: {
      historyBytes: 256 * 1024 * 1024, progressMs: 5_000, bufferBytes: 16 * 1024 * 1024,
      closeBytes: 256 * 1024 * 1024, listsConcurrent: 4,
    },
    snapshot: {}, backup: {},
    logLevel: 'info', slowLog: { fsyncMs: 50, commitMs: 100, queryMs: 100 }, shutdownTimeoutMs: 15_000,
  };
}

// Every scalar key, its type and range: a file, the environment and flags all go through these.
type Kind = 'string' | 'boolean' | 'int';
interface Key { kind: Kind; min?: number; max?: number; get: (c: DaemonConfig) => unknown; set: (c: DaemonConfig, v: never) => void }
const int = (min: number, max: number, get: Key['get'], set: Key['set']): Key => ({ kind: 'int', min, max, get, set });
const str = (get: Key['get'], set: Key['set']): Key => ({ kind: 'string', get, set });
const bool = (get: Key['get'], set: Key['set']): Key => ({ kind: 'boolean', get, set });
const gib = 1024 * 1024 * 1024;

const keys: Record<string, Key> = {
  dataDir: str((c) => c.dataDir, (c, v: string) => { c.dataDir = v; }),
  host: str((c) => c.host, (c, v: string) => { c.host = v; }),
  port: int(0, 65535, (c) => c.port, (c, v: number) => { c.port = v; }),
  tlsCertFile: str((c) => c.tlsCertFile, (c, v: string) => { c.tlsCertFile = v; }),
  tlsKeyFile: str((c) => c.tlsKeyFile, (c, v: string) => { c.tlsKeyFile = v; }),
  tlsPassphrase: str((c) => c.tlsPassphrase, (c, v: string) => { c.tlsPassphrase = v; }),
  allowUnauthenticated: bool((c) => c.allowUnauthenticated, (c, v: boolean) => { c.allowUnauthenticated = v; }),
  allowUwsFallback: bool((c) => c.allowUwsFallback, (c, v: boolean) => { c.allowUwsFallback = v; }),
  readerThreads: int(0, 63, (c) => c.readerThreads, (c, v: number) => { c.readerThreads = v; }),
  'limits.frameBytesMax': int(1024, 256 * 1024 * 1024, (c) => c.limits.frameBytesMax, (c, v: number) => { c.limits.frameBytesMax = v; }),
  'limits.requestsInFlightMax': int(1, 1 << 20, (c) => c.limits.requestsInFlightMax, (c, v: number) => { c.limits.requestsInFlightMax = v; }),
  'limits.subscriptionsMax': int(0, 1 << 16, (c) => c.limits.subscriptionsMax, (c, v: number) => { c.limits.subscriptionsMax = v; }),
  'limits.requestsPerSecondMax': int(0, 1 << 30, (c) => c.limits.requestsPerSecondMax, (c, v: number) => { c.limits.requestsPerSecondMax = v; }),
  'limits.connectionsMax': int(1, 1 << 20, (c) => c.limits.connectionsMax, (c, v: number) => { c.limits.connectionsMax = v; }),
  'limits.helloTimeoutMs': int(10, 3_600_000, (c) => c.limits.helloTimeoutMs, (c, v: number) => { c.limits.helloTimeoutMs = v; }),
  // uWS accepts 0 (off) or 8..960 seconds; anything else aborts the process inside uWS.
  'limits.idleTimeoutS': int(0, 960, (c) => c.limits.idleTimeoutS, (c, v: number) => {
    if (v !== 0 && v < 8) throw new ConfigError(`limits.idleTimeoutS must be 0 (off) or 8..960, not ${v}`);
    c.limits.idleTimeoutS = v;
  }),
  'watch.historyBytes': int(1024 * 1024, 16 * gib, (c) => c.watch.historyBytes, (c, v: number) => { c.watch.historyBytes = v; }),
  'watch.progressMs': int(10, 3_600_000, (c) => c.watch.progressMs, (c, v: number) => { c.watch.progressMs = v; }),
  'watch.bufferBytes': int(64 * 1024, gib, (c) => c.watch.bufferBytes, (c, v: number) => { c.watch.bufferBytes = v; }),
  // uWS counts a socket's buffer in 32 bits: closeBytes + 2 frames + the largest answer must stay below 4 GiB.
  'watch.closeBytes': int(64 * 1024, gib, (c) => c.watch.closeBytes, (c, v: number) => { c.watch.closeBytes = v; }),
  'watch.listsConcurrent': int(1, 1024, (c) => c.watch.listsConcurrent, (c, v: number) => { c.watch.listsConcurrent = v; }),
  'snapshot.everyMs': int(0, 2 ** 40, (c) => c.snapshot.everyMs, (c, v: number) => { c.snapshot.everyMs = v; }),
  'snapshot.logBytes': int(0, 2 ** 50, (c) => c.snapshot.logBytes, (c, v: number) => { c.snapshot.logBytes = v; }),
  'snapshot.retained': int(1, 1000, (c) => c.snapshot.retained, (c, v: number) => { c.snapshot.retained = v; }),
  'snapshot.afterReplay': int(0, 2 ** 40, (c) => c.snapshot.afterReplay, (c, v: number) => { c.snapshot.afterReplay = v; }),
  'backup.everyMs': int(0, 2 ** 40, (c) => c.backup.everyMs, (c, v: number) => { c.backup.everyMs = v; }),
  'backup.keep': int(1, 100_000, (c) => c.backup.keep, (c, v: number) => { c.backup.keep = v; }),
  'backup.dir': str((c) => c.backup.dir, (c, v: string) => { c.backup.dir = v; }),
  logLevel: str((c) => c.logLevel, (c, v: string) => {
    if (!(logLevels as readonly string[]).includes(v)) throw new ConfigError(`logLevel must be one of ${logLevels.join('|')}, not ${JSON.stringify(v)}`);
    c.logLevel = v as LogLevel;
  }),
  // An hour: a threshold above it would never fire (a request that slow has long been timed out by its client).
  'slowLog.fsyncMs': int(0, 3_600_000, (c) => c.slowLog.fsyncMs, (c, v: number) => { c.slowLog.fsyncMs = v; }),
  'slowLog.commitMs': int(0, 3_600_000, (c) => c.slowLog.commitMs, (c, v: number) => { c.slowLog.commitMs = v; }),
  'slowLog.queryMs': int(0, 3_600_000, (c) => c.slowLog.queryMs, (c, v: number) => { c.slowLog.queryMs = v; }),
  // At least a second (the last group's fdatasync and the answers need it); at most 10 minutes (systemd's
  // TimeoutStopSec must stay above it, and a supervisor waiting longer is no longer supervising).
  shutdownTimeoutMs: int(1000, 600_000, (c) => c.shutdownTimeoutMs, (c, v: number) => { c.shutdownTimeoutMs = v; }),
};

/** Every scalar key of the config (the names of the file, flags and STRATA_ variables), in a stable order. */
export const configKeys: readonly string[] = Object.keys(keys);

/** The value of a scalar key (configKeys), as the config holds it. */
export function configValue(config: DaemonConfig, name: string): unknown {
  const key = keys[name];
  if (key === undefined) throw new ConfigError(`unknown key ${name}`);
  return key.get(config);
}

/** Sets a scalar key (configKeys) to a value already checked (one another loadConfig() accepted). */
export function setConfigValue(config: DaemonConfig, name: string, value: unknown): void {
  setKey(config, name, value, 'reload');
}

/** Flags: `--data-dir DIR`, `--listen HOST:PORT`, and `--KEY VALUE` for every key above (dots kept). */
export const usage = `usage: stratad [--config FILE] [--data-dir DIR] [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]
               [--log-level LEVEL] [--allow-uws-fallback] [--allow-unauthenticated] [--KEY VALUE ...]
Config sources, later ones win: embedded defaults, the JSON file (--config or STRATA_CONFIG), environment
(STRATA_DATA_DIR, STRATA_LISTEN, STRATA_ADMIN_TOKEN: one admin token, STRATA_<KEY> in capitals with _), flags.
Keys: ${Object.keys(keys).join(', ')}; tokens only in the file (docs/operations.md).
Signals: SIGTERM/SIGINT stop gracefully (bounded by shutdownTimeoutMs), SIGHUP reloads the same sources.`;

function setKey(config: DaemonConfig, name: string, value: unknown, source: string): void {
  const key = keys[name];
  if (key === undefined) throw new ConfigError(`${source}: unknown key ${name}`);
  let parsed: unknown = value;
  if (typeof value === 'string' && key.kind !== 'string') {
    parsed = key.kind === 'boolean' ? (value === 'true' || value === '1' ? true : value === 'false' || value === '0' ? false : value) :
      (/^-?\d+$/.test(value.trim()) ? Number(value) : value);
  }
  if (key.kind === 'int') {
    if (typeof parsed !== 'number' || !Number.isSafeInteger(parsed) || parsed < key.min! || parsed > key.max!) {
      throw new ConfigError(`${source}: ${name} must be an integer in [${key.min}, ${key.max}], not ${JSON.stringify(value)}`);
    }
  } else if (typeof parsed !== key.kind) {
    throw new ConfigError(`${source}: ${name} must be a ${key.kind}, not ${JSON.stringify(value)}`);
  }
  key.set(config, parsed as never);
}

function listen(config: DaemonConfig, value: string, source: string): void {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d+)$/.exec(value);
  if (match === null) throw new ConfigError(`${source}: listen must be HOST:PORT, not ${JSON.stringify(value)}`);
  config.host = match[1]!.replace(/^\[|\]$/g, '');
  setKey(config, 'port', match[2]!, source);
}

function tokens(value: unknown, base: string): TokenConfig[] {
  if (!Array.isArray(value)) throw new ConfigError('tokens must be an array');
  return value.map((entry: unknown, i) => {
    const where = `tokens[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw new ConfigError(`${where} must be an object`);
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (!['name', 'token', 'tokenFile', 'admin', 'read', 'write'].includes(k)) throw new ConfigError(`${where}: unknown key ${k}`);
    }
    let token = e.token;
    if (typeof e.tokenFile === 'string') {
      try {
        token = readFileSync(resolve(base, e.tokenFile), 'utf8').split('\n')[0]!.trim();
      } catch (error) {
        throw new ConfigError(`${where}: tokenFile ${e.tokenFile}: ${(error as Error).message}`);
      }
    }
    if (typeof token !== 'string' || token.length < 16) throw new ConfigError(`${where}: token (or tokenFile) must hold at least 16 characters`);
    const roles = (v: unknown, k: string): string[] => {
      if (v === undefined) return [];
      if (!Array.isArray(v) || !v.every((r) => typeof r === 'string' && r.length > 0)) {
        throw new ConfigError(`${where}: ${k} must be an array of role names ("*": all)`);
      }
      return v as string[];
    };
    if (e.admin !== undefined && typeof e.admin !== 'boolean') throw new ConfigError(`${where}: admin must be a boolean`);
    return { name: typeof e.name === 'string' ? e.name : `token${i}`, token, admin: e.admin === true,
      read: roles(e.read, 'read'), write: roles(e.write, 'write') };
  });
}

function applyObject(config: DaemonConfig, object: Record<string, unknown>, prefix: string, source: string, base: string): void {
  for (const [k, v] of Object.entries(object)) {
    const name = prefix + k;
    if (name === 'tokens') config.tokens = tokens(v, base);
    else if (name === 'listen' && typeof v === 'string') listen(config, v, source);
    else if (typeof v === 'object' && v !== null && !Array.isArray(v) && ['limits', 'watch', 'snapshot', 'backup', 'slowLog'].includes(name)) {
      applyObject(config, v as Record<string, unknown>, `${name}.`, source, base);
    } else setKey(config, name, v, source);
  }
}

/** The config from defaults, file, environment and argv (without the node and script arguments). */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const config = defaultConfig();
  let file = env.STRATA_CONFIG;
  const flags: [string, string | null][] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${arg}`);
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    if (name === 'allow-uws-fallback' || name === 'allow-unauthenticated') {
      flags.push([name, eq < 0 ? 'true' : arg.slice(eq + 1)]);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ConfigError(`${arg} needs a value`);
    if (name === 'config') file = value;
    else flags.push([name, value]);
  }
  if (file !== undefined && file !== '') {
    let object: unknown;
    try {
      object = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`config file ${file}: ${(error as Error).message}`);
    }
    if (typeof object !== 'object' || object === null || Array.isArray(object)) throw new ConfigError(`config file ${file}: not a JSON object`);
    applyObject(config, object as Record<string, unknown>, '', `config file ${file}`, resolve(file, '..'));
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('STRATA_') || value === undefined) continue;
    if (name === 'STRATA_CONFIG' || name === 'STRATA_URL' || name === 'STRATA_FUZZ_FRAMES' || name === 'STRATA_FAILPOINTS' || name.startsWith('STRATA_CRASH') || name.startsWith('STRATA_FAULTS')) continue;
    if (name === 'STRATA_LISTEN') { listen(config, value, name); continue; }
    // STRATA_TOKEN is the CLI's client token, not the daemon's: the daemon's one admin token has its own name.
    if (name === 'STRATA_TOKEN') continue;
    if (name === 'STRATA_ADMIN_TOKEN') {
      config.tokens = tokens([{ name: 'env', token: value, admin: true }], '.');
      continue;
    }
    const key = Object.keys(keys).find((k) => `STRATA_${k.replace(/[A-Z]/g, (c) => `_${c}`).replace(/\./g, '_').toUpperCase()}` === name);
    if (key === undefined) throw new ConfigError(`environment: unknown variable ${name}`);
    setKey(config, key, value, name);
  }
  for (const [name, value] of flags) {
    const source = `--${name}`;
    if (name === 'listen') listen(config, value!, source);
    else if (name === 'data-dir') setKey(config, 'dataDir', value, source);
    else if (name === 'tls-cert') setKey(config, 'tlsCertFile', value, source);
    else if (name === 'tls-key') setKey(config, 'tlsKeyFile', value, source);
    else if (name === 'log-level') setKey(config, 'logLevel', value, source);
    else if (name === 'allow-uws-fallback') setKey(config, 'allowUwsFallback', value, source);
    else if (name === 'allow-unauthenticated') setKey(config, 'allowUnauthenticated', value, source);
    else setKey(config, name, value, source);
  }
  config.dataDir = resolve(config.dataDir);
  if ((config.tlsCertFile === '') !== (config.tlsKeyFile === '')) throw new ConfigError('TLS needs both tlsCertFile and tlsKeyFile');
  if (config.tokens.length === 0 && !isLoopback(config.host) && !config.allowUnauthenticated) {
    throw new ConfigError(`listening on ${config.host} without tokens would let anyone in: configure tokens or set allowUnauthenticated`);
  }
  if (config.watch.closeBytes < config.watch.bufferBytes) throw new ConfigError('watch.closeBytes must be >= watch.bufferBytes');
  if (config.watch.closeBytes < config.limits.frameBytesMax) throw new ConfigError('watch.closeBytes must be >= limits.frameBytesMax');
  const seen = new Set<string>();
  for (const t of config.tokens) {
    if (seen.has(t.token)) throw new ConfigError(`token ${t.name} is configured twice`);
    seen.add(t.token);
  }
  return config;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The config as a log line may show it: tokens by name and scope only. */
export function describeConfig(config: DaemonConfig): Record<string, unknown> {
  return { ...config, tlsPassphrase: config.tlsPassphrase === '' ? '' : '***',
    tokens: config.tokens.map((t) => ({ name: t.name, admin: t.admin, read: t.read, write: t.write })) };
}
