/**
 * What the engine benchmark's phases share: the command line, result rows, clocks, latency histograms, memory
 * figures and the check that commits succeeded. Owner: the benchmark process's main thread.
 * Invariants: stdout carries only the final JSON array (see bench-engine.ts); everything else goes to stderr.
 */
import * as flatbuffers from 'flatbuffers';
import * as hdr from 'hdr-histogram-js';
import { ErrorCode, QueryResponse, TransactionResult } from '../core/fbs/strata.js';
import { pinClockMs, ReaderSlot } from '../workers/reader/pin.js';

export const sizesDefault = [10_000, 100_000, 1_000_000];
export const sizesQuick = [10_000];
export const latencyNsMax = 60_000_000_000;  // a minute: anything slower is a hang, not a latency

export interface BenchArgs {
  sizes: number[];
  quick: boolean;
  holdPin: boolean;    // hold a reader pin through the transition phases: no memory is reclaimed (see PinHold)
  readerThreads: number | undefined; // the Engine's reader pool size (default: the engine's, cores - 1)
  changes: boolean;    // encode a change record per revision (watch streams), as an engine with onChanges does
  writerOnly: boolean; // only the writer-alone phases (bulk load, commit_single, commit_batch*)
}

export interface Row {
  name: string;
  tasks: number;
  value: number;
  unit: string;
  [extra: string]: string | number | boolean;
}

export function parseArgs(argv: string[]): BenchArgs {
  let sizes: number[] | null = null;
  let quick = false;
  let holdPin = false;
  let readerThreads: number | undefined;
  let changes = false;
  let writerOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--hold-pin') holdPin = true;
    else if (arg === '--changes') changes = true;
    else if (arg === '--writer-only') writerOnly = true;
    else if (arg === '--reader-threads') {
      readerThreads = Number(argv[++i]);
      if (!Number.isInteger(readerThreads) || readerThreads < 1) throw new Error('--reader-threads needs a count >= 1');
    }
    else if (arg === '--sizes' || arg.startsWith('--sizes=')) {
      const list = arg === '--sizes' ? argv[++i] : arg.slice('--sizes='.length);
      if (list === undefined) throw new Error('--sizes needs a list, e.g. --sizes 10000,100000');
      sizes = list.split(',').map((item) => Number(item.trim()));
      for (const size of sizes) {
        if (!Number.isInteger(size) || size < 1000 || size % 1000 !== 0) {
          throw new Error(`a size is a whole number of thousands of tasks (one role = 1,000 tasks): ${list}`);
        }
      }
    } else {
      throw new Error(`unknown argument ${arg} (known: --sizes N,N,... --quick --hold-pin --reader-threads N ` +
        '--changes --writer-only)');
    }
  }
  return { sizes: sizes ?? (quick ? sizesQuick : sizesDefault), quick, holdPin, readerThreads, changes, writerOnly };
}

/** Collects rows and echoes each one to stderr as it is produced. */
export class Rows {
  readonly rows: Row[] = [];

  add(row: Row): Row {
    this.rows.push(row);
    process.stderr.write(`row ${JSON.stringify(row)}\n`);
    return row;
  }

  find(name: string, tasks: number, field?: string, fieldValue?: string | number): Row | undefined {
    return this.rows.find((row) => row.name === name && row.tasks === tasks &&
      (field === undefined || row[field] === fieldValue));
  }
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function nowMs(): number {
  return performance.now();
}

export function round(value: number, digits = 3): number {
  const scale = 10 ** Math.max(0, digits - Math.max(0, Math.floor(Math.log10(Math.abs(value) || 1)) + 1));
  return Math.round(value * scale) / scale;
}

export function perSecond(count: number, ms: number): number {
  return Math.round(count / (ms / 1000));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs the collector (--expose-gc) a few times, so figures do not depend on when it last ran. */
export async function collect(): Promise<void> {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench:engine does)');
  for (let round = 0; round < 3; round++) {
    gc();
    await sleep(20);
  }
}

export function rssBytes(): number {
  return process.memoryUsage().rss;
}

/** A latency histogram in nanoseconds (JS mode: no wasm to initialise or destroy). */
export class Latency {
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1, highestTrackableValue: latencyNsMax, numberOfSignificantValueDigits: 3,
  });

  recordMs(ms: number): void {
    this.histogram.recordValue(Math.max(1, Math.min(latencyNsMax, Math.round(ms * 1e6))));
  }

  percentileMs(percentile: number): number {
    return this.histogram.getValueAtPercentile(percentile) / 1e6;
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summary(): { p50: number; p90: number; p99: number; max: number; mean: number; count: number } {
    const h = this.histogram;
    return {
      p50: round(this.percentileMs(50), 4), p90: round(this.percentileMs(90), 4), p99: round(this.percentileMs(99), 4),
      max: round(h.maxValue / 1e6, 4), mean: round(h.mean / 1e6, 4), count: h.totalCount,
    };
  }
}

/** The error of a TransactionResult, or null when it committed. */
export function transactionError(result: Uint8Array): string | null {
  const decoded = TransactionResult.getRootAsTransactionResult(new flatbuffers.ByteBuffer(result));
  const error = decoded.error();
  if (error === null || error.code() === ErrorCode.OK) return null;
  const where = `op ${error.opIndex()}, precondition ${error.preconditionIndex()}`;
  return `${ErrorCode[error.code()]}: ${error.message()} (${where})`;
}

/** The error of a QueryResponse, or null. */
export function queryError(response: Uint8Array): string | null {
  const decoded = QueryResponse.getRootAsQueryResponse(new flatbuffers.ByteBuffer(response));
  const error = decoded.error();
  if (error === null || error.code() === ErrorCode.OK) return null;
  return `${ErrorCode[error.code()]}: ${error.message()}`;
}

/** Throws with the first failed transaction: a benchmark of failing commits measures nothing. */
export function checkCommitted(results: Uint8Array[], what: string): void {
  for (let i = 0; i < results.length; i++) {
    const error = transactionError(results[i]!);
    if (error !== null) throw new Error(`${what}: transaction ${i} failed: ${error}`);
  }
}

/**
 * A reader pin held by the benchmark (--hold-pin): it claims a reader slot in the control block as a reader
 * thread would and pins the published revision, so the writer reclaims nothing retired after it until release().
 * The writer must run with a pinMsMax longer than the hold, or it expires the pin.
 */
export class PinHold {
  static readonly ownerId = 0x7fff_0000;   // above any threadId + 1, so never a reader's id
  static readonly pinMsMax = 3_600_000;     // the writer's pinMsMax while a hold may be taken
  private readonly slot: ReaderSlot;

  constructor(control: SharedArrayBuffer) {
    this.slot = new ReaderSlot(control, PinHold.ownerId);
    this.slot.pin(pinClockMs());
  }

  release(): void {
    this.slot.release();
    this.slot.close();
  }
}
