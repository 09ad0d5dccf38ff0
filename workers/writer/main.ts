/**
 * The writer thread's entry. Owner: the writer thread.
 * At start: recovery (newest snapshot + log replay) when there is a data directory, then 'ready'.
 * Then per group: drain the commit port (at most writerGroupTransactionsMax transactions), commit each (each
 * logged entry goes into one LogGroup), append the group to the log with one write and one fdatasync, publish,
 * answer the whole group. Nothing of a group is visible or acknowledged before its fdatasync returned.
 * Fail-stop: an I/O error of the log, a bug (assertion) or a full arena mid-apply throws; the thread first posts
 * 'fatal' with the error's code, then dies, and the main thread fails every pending and later call.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import { failpoint } from '../../core/failpoints.js';
import { LogGroupBuilder } from '../../core/log-entry.js';
import { writerGroupTransactionsMax } from '../../core/limits.js';
import { pinClockMs } from '../reader/pin.js';
import { WriteAheadLog } from './log.js';
import { recover, type Recovery } from './recover.js';
import { WriterCore } from './writer.js';

export interface WriterData {
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
  arenaBytesMax: number;
  pinMsMax: number;
  port: MessagePort;
  /** null: in memory only (tests and benchmarks of the engine alone). */
  dataDir: string | null;
  segmentBytes?: number;
}

export interface CommitMessage { kind: 'commit'; ids: number[]; transactions: Uint8Array[] }
export interface StatsMessage { kind: 'stats'; id: number }
export interface CloseMessage { kind: 'close'; id: number }
export type WriterRequest = CommitMessage | StatsMessage | CloseMessage;
export interface ResultsMessage { kind: 'results'; ids: number[]; results: Uint8Array[] }
export interface ReadyMessage { kind: 'ready'; recovery: Omit<Recovery, 'tail'> | null }
export interface FatalMessage { kind: 'fatal'; code: string; message: string }

const data = workerData as WriterData;

// Wired to workers/writer/restore.ts when the snapshot loader lands (same commit series).
function loadNewestSnapshot(_writer: WriterCore, _dir: string): { path: string; revision: number } | null {
  return null;
}
const writer = new WriterCore({
  arena: data.arena, control: data.control, arenaBytesMax: data.arenaBytesMax, pinMsMax: data.pinMsMax,
  now: pinClockMs,
});
const port = data.port;
let log: WriteAheadLog | null = null;
const groupLog = new LogGroupBuilder();
let fsyncMsTotal = 0;
let commitMsTotal = 0;   // planning + applying + log encoding, summed over groups
let appendMsTotal = 0;   // log write + fdatasync
let groupTransactions = 0;

function fatal(error: unknown): never {
  const e = error as NodeJS.ErrnoException;
  port.postMessage({ kind: 'fatal', code: e?.code ?? (e?.name === 'FormatError' ? 'FORMAT' : 'INTERNAL'),
    message: String(e?.message ?? error) } satisfies FatalMessage);
  throw error;
}

function stats(): Record<string, number> {
  return { ...writer.stats(), commitMsTotal, appendMsTotal, groupTransactions,
    ...(log === null ? {} : { ...prefixed(log.stats()), fsyncMsTotal }) };
}

function prefixed(values: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(values)) out[`log${key[0]!.toUpperCase()}${key.slice(1)}`] = value;
  return out;
}

function group(first: CommitMessage): void {
  const ids: number[] = [];
  const results: Uint8Array[] = [];
  const t0 = performance.now();
  if (log !== null) groupLog.begin(writer.revision + 1, 0);
  let message: WriterRequest | undefined = first;
  const after: WriterRequest[] = [];
  while (message !== undefined) {
    if (message.kind === 'commit') {
      for (let i = 0; i < message.transactions.length; i++) {
        ids.push(message.ids[i]!);
        results.push(writer.commit(message.transactions[i]!));
      }
    } else {
      after.push(message); // answered after the group is durable (close waits for it)
    }
    if (ids.length >= writerGroupTransactionsMax) break;
    message = receiveMessageOnPort(port)?.message as WriterRequest | undefined;
  }
  const t1 = performance.now();
  commitMsTotal += t1 - t0;
  groupTransactions += ids.length;
  if (log !== null && groupLog.count > 0) {
    try {
      log.append(groupLog.finish(), writer.revision);
    } catch (error) {
      fatal(error);
    }
    appendMsTotal += performance.now() - t1;
  }
  failpoint('log.before-publish');
  writer.publish();
  port.postMessage({ kind: 'results', ids, results } satisfies ResultsMessage);
  for (const request of after) other(request);
}

function other(message: WriterRequest): void {
  if (message.kind === 'stats') port.postMessage({ kind: 'stats', id: message.id, stats: stats() });
  else if (message.kind === 'close') {
    log?.close();
    log = null;
    port.postMessage({ kind: 'closed', id: message.id });
  }
}

function start(): void {
  let recovery: Recovery | null = null;
  if (data.dataDir !== null) {
    const logDir = join(data.dataDir, 'log');
    const snapshotDir = join(data.dataDir, 'snapshots');
    recovery = recover(writer, logDir, () => loadNewestSnapshot(writer, snapshotDir));
    log = new WriteAheadLog({ dir: logDir, segmentBytes: data.segmentBytes, onSync: (ms) => { fsyncMsTotal += ms; } });
    log.open(recovery.tail, writer.revision);
    writer.log = groupLog;
  }
  port.on('message', (message: WriterRequest) => {
    if (message.kind === 'commit') group(message);
    else other(message);
  });
  let ready: ReadyMessage['recovery'] = null;
  if (recovery !== null) {
    const { tail: _tail, ...rest } = recovery;
    ready = rest;
  }
  port.postMessage({ kind: 'ready', recovery: ready } satisfies ReadyMessage);
}

try {
  start();
} catch (error) {
  fatal(error);
}
