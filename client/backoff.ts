/**
 * Reconnect delays: exponential backoff with jitter. Owner: the client's thread.
 * Invariants: the delay of attempt n (1, 2, ...) is min(maxMs, initialMs * factor^(n-1)), moved by at most
 * ±jitter of itself; it is never negative and never above maxMs.
 */
import {
  reconnectFactorDefault, reconnectInitialMsDefault, reconnectJitterDefault, reconnectMaxMsDefault,
} from './limits.js';

export interface ReconnectOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** 0..1: the share of the delay that is random (0.2: ±20%). */
  jitter?: number;
}

export interface Backoff { initialMs: number; maxMs: number; factor: number; jitter: number }

export function backoffOf(options: ReconnectOptions = {}): Backoff {
  const initialMs = Math.max(0, options.initialMs ?? reconnectInitialMsDefault);
  const maxMs = Math.max(initialMs, options.maxMs ?? reconnectMaxMsDefault);
  const factor = Math.max(1, options.factor ?? reconnectFactorDefault);
  const jitter = Math.min(1, Math.max(0, options.jitter ?? reconnectJitterDefault));
  return { initialMs, maxMs, factor, jitter };
}

export function backoffDelayMs(backoff: Backoff, attempt: number, random: () => number): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(backoff.maxMs, backoff.initialMs * Math.pow(backoff.factor, Math.min(exponent, 64)));
  const jittered = base * (1 + backoff.jitter * (2 * random() - 1));
  return Math.round(Math.min(backoff.maxMs, Math.max(0, jittered)));
}
