/**
 * What the online commands of the strata command share: the connection options (--url, --token, --ca,
 * --timeout), connecting through the client SDK (client/), and turning failures into exit codes and one-line
 * messages. Owner: the strata process's main thread.
 * Invariants:
 * - A one-shot command connects without reconnects: a lost connection fails its request at once (exit 5)
 *   instead of waiting out a timeout; only `watch` reconnects (and resumes).
 * - The client is closed before the command's exit code is returned, whatever happened.
 * - Exit codes follow the error's ErrorCode: UNAVAILABLE and DEADLINE_EXCEEDED 5, UNAUTHENTICATED and
 *   PERMISSION_DENIED 6, every other typed error 1; the message names the code.
 */
import { readFileSync } from 'node:fs';
import { ErrorCode, StrataClient, StrataError } from '../client/index.js';
import type { ClientOptions } from '../client/index.js';
import { type Io, integer, type OptionSpec, text, type Values } from './command-spec.js';
import { exitFailure, exitOk, UsageError } from './tool-support.js';

export const exitUnavailable = 5;   // cannot connect, connection lost, no answer in time: try again later
export const exitDenied = 6;        // the token is refused (UNAUTHENTICATED) or not allowed this (PERMISSION_DENIED)

export const urlDefault = 'ws://127.0.0.1:7420/v1';
/** A CA file bigger than this is not a PEM bundle anyone meant to pass. */
const caBytesMax = 1024 * 1024;

export const onlineOptions: OptionSpec[] = [
  { name: 'url', type: 'string', value: 'URL', description: `the daemon (default $STRATA_URL, else ${urlDefault})` },
  { name: 'token', type: 'string', value: 'TOKEN', description: 'the bearer token (default $STRATA_TOKEN)' },
  { name: 'ca', type: 'string', value: 'FILE', description: 'PEM CA certificate(s) to trust for wss:// (a private CA)' },
  { name: 'timeout', type: 'string', value: 'MS', description: 'connect and per-request timeout (default 10000 / 30000)' },
];

export const onlineOptionNames = onlineOptions.map((o) => o.name);

export interface Connect {
  url: string;
  token: string;
  ca: Buffer | null;
  timeoutMs: number | undefined;
}

/** The connection options of a command line (environment variables as defaults); throws UsageError. */
export function connectOptions(values: Values): Connect {
  const url = text(values, 'url') ?? process.env.STRATA_URL ?? urlDefault;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url takes ws://HOST:PORT/v1 or wss://HOST:PORT/v1, not ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new UsageError(`--url takes a ws:// or wss:// URL, not ${JSON.stringify(url)}`);
  }
  const caFile = text(values, 'ca');
  let ca: Buffer | null = null;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile);
    } catch (error) {
      throw new UsageError(`--ca: cannot read ${caFile}: ${(error as Error).message}`);
    }
    if (ca.length > caBytesMax) throw new UsageError(`--ca: ${caFile} has more than ${caBytesMax} bytes`);
  }
  return { url, token: text(values, 'token') ?? process.env.STRATA_TOKEN ?? '', ca,
    timeoutMs: integer('timeout', values['timeout'], 1, 'milliseconds') };
}

export function clientOptions(connect: Connect, reconnect: boolean): ClientOptions {
  const options: ClientOptions = { url: connect.url, token: connect.token, clientName: 'strata-cli' };
  if (!reconnect) options.reconnect = false;
  if (connect.timeoutMs !== undefined) {
    options.connectTimeoutMs = connect.timeoutMs;
    options.requestTimeoutMs = connect.timeoutMs;
  }
  if (connect.ca !== null) options.webSocketOptions = { ca: connect.ca };
  return options;
}

/** The exit code of an error from the client (or of the command), after writing its one-line message. */
export function onlineFailed(error: unknown, what: string, io: Io): number {
  if (error instanceof UsageError) throw error;
  if (!(error instanceof StrataError)) throw error;
  io.writeError(`strata: ${what}: ${error.message}${hint(error)}`);
  return exitCodeOf(error.code);
}

export function exitCodeOf(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.OK: return exitOk;
    case ErrorCode.UNAVAILABLE:
    case ErrorCode.DEADLINE_EXCEEDED: return exitUnavailable;
    case ErrorCode.UNAUTHENTICATED:
    case ErrorCode.PERMISSION_DENIED: return exitDenied;
    default: return exitFailure;
  }
}

function hint(error: StrataError): string {
  if (error.code === ErrorCode.UNAUTHENTICATED) return ' (give the token with --token or $STRATA_TOKEN)';
  if (error.code === ErrorCode.UNAVAILABLE && /cannot open|connection lost|no connection/.test(error.message)) {
    return ' (is stratad running there? --url or $STRATA_URL)';
  }
  return '';
}

/**
 * Connects (one-shot: no reconnects), runs `body`, closes. Failures of the connection and of requests become
 * exit codes (onlineFailed); `body` returns the command's own exit code otherwise.
 */
export async function withClient(values: Values, io: Io, what: string,
  body: (client: StrataClient) => Promise<number>): Promise<number> {
  const options = clientOptions(connectOptions(values), false);
  let client: StrataClient;
  try {
    client = await StrataClient.connect(options);
  } catch (error) {
    return onlineFailed(error, what, io);
  }
  try {
    return await body(client);
  } catch (error) {
    return onlineFailed(error, what, io);
  } finally {
    await client.close();
  }
}

/** Writes a refused answer's error (a typed Error of the wire) and returns its exit code. */
export function refused(what: string, error: { code: ErrorCode; message: string | Uint8Array | null }, io: Io,
  detail = ''): number {
  const message = typeof error.message === 'string' ? error.message : '';
  io.writeError(`strata: ${what}: ${ErrorCode[error.code] ?? `code ${error.code}`}: ${message}${detail}`);
  return exitCodeOf(error.code);
}
