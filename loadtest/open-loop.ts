/**
 * Open-loop load: a fixed-rate schedule of intended send times and latency measured from them (coordinated
 * omission corrected, as wrk2 does), plus histograms that travel between worker threads and merge. Owner: a load
 * generator's thread (each worker has its own Schedule and Histograms; the main thread merges).
 *
 * Invariants:
 * - Request k of a schedule is intended at start + k / rate (ms): the schedule never stretches because the
 *   system under test is slow. A request sent late still counts from its intended time, so a stall of the server
 *   shows up as the latency of every request it held back, not as one slow request and a quieter second.
 * - `due(now)` hands out every request whose intended time has passed; how far the oldest one is behind is
 *   reported (`lagMs`), and `behind` says when the generator itself cannot keep its schedule.
 * - Latencies are recorded in microseconds, 1 µs .. 10 min, 3 significant digits; a histogram encodes to a
 *   compressed base64 string (hdr-histogram-js) that another thread decodes and adds.
 */
import hdr from 'hdr-histogram-js';

export const latencyUsMax = 600_000_000;      // 10 min: anything slower is a hang, not a latency
/** The generator is behind its schedule when its oldest due request waits more than this. */
export const behindMs = 100;

export class Schedule {
  readonly rate: number;          // requests per second
  readonly startMs: number;
  private next = 0;               // index of the next request to hand out

  constructor(rate: number, startMs: number) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be > 0, not ${rate}`);
    this.rate = rate;
    this.startMs = startMs;
  }

  /** The intended send time of request k (ms, same clock as startMs). */
  intendedMs(k: number): number {
    return this.startMs + (k * 1000) / this.rate;
  }

  /** Requests handed out so far. */
  get issued(): number {
    return this.next;
  }

  /**
   * The intended times of every request due at `nowMs` and not handed out yet, oldest first (at most `max`: the
   * caller sends them, then asks again). Empty when none is due.
   */
  due(nowMs: number, max = Number.MAX_SAFE_INTEGER): number[] {
    const out: number[] = [];
    while (out.length < max && this.intendedMs(this.next) <= nowMs) out.push(this.intendedMs(this.next++));
    return out;
  }

  /** How far the oldest request not handed out is behind `nowMs` (0 when none is due). */
  lagMs(nowMs: number): number {
    return Math.max(0, nowMs - this.intendedMs(this.next));
  }

  behind(nowMs: number): boolean {
    return this.lagMs(nowMs) > behindMs;
  }

  /** When the next request is due (ms): a generator sleeps until then. */
  nextDueMs(): number {
    return this.intendedMs(this.next);
  }
}

/** Latencies of one operation, in µs; both corrected (from intended time) and raw (from actual send time). */
export class OperationHistogram {
  readonly corrected = build();
  readonly raw = build();
  errors = 0;

  /** One answer: intended and actual send times and the answer's time, all in ms on one clock. */
  record(intendedMs: number, sentMs: number, answeredMs: number): void {
    this.corrected.recordValue(clampUs(answeredMs - intendedMs));
    this.raw.recordValue(clampUs(answeredMs - sentMs));
  }

  encode(): EncodedOperation {
    return { corrected: hdr.encodeIntoCompressedBase64(this.corrected), raw: hdr.encodeIntoCompressedBase64(this.raw),
      errors: this.errors };
  }

  /** Adds another thread's encoded histograms into this one. */
  add(encoded: EncodedOperation): void {
    this.corrected.add(hdr.decodeFromCompressedBase64(encoded.corrected));
    this.raw.add(hdr.decodeFromCompressedBase64(encoded.raw));
    this.errors += encoded.errors;
  }

  /** The summary a report prints (ms): count, errors, p50 .. p99.99, max, for the corrected latencies. */
  summary(): LatencySummary {
    const h = this.corrected;
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: h.totalCount, errors: this.errors,
      p50: ms(h.getValueAtPercentile(50)), p90: ms(h.getValueAtPercentile(90)), p99: ms(h.getValueAtPercentile(99)),
      p999: ms(h.getValueAtPercentile(99.9)), p9999: ms(h.getValueAtPercentile(99.99)), max: ms(h.maxValue),
      rawP99: ms(this.raw.getValueAtPercentile(99)),
    };
  }
}

export interface EncodedOperation { corrected: string; raw: string; errors: number }
export interface LatencySummary {
  count: number; errors: number; p50: number; p90: number; p99: number; p999: number; p9999: number; max: number;
  rawP99: number;
}

function build(): hdr.Histogram {
  return hdr.build({ bitBucketSize: 64, lowestDiscernibleValue: 1, highestTrackableValue: latencyUsMax,
    numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

function clampUs(ms: number): number {
  return Math.max(1, Math.min(latencyUsMax, Math.round(ms * 1000)));
}
