/**
 * Writer-alone phases of the engine benchmark: a WriterCore in the benchmark's own thread, no readers, no log.
 * Owner: the benchmark process's main thread.
 * Invariants: transaction bytes are made before the clock starts; only commit() and publish() are timed (with
 * --changes also the change records: their encoding in commit(), and per publish the batch taken and posted to a
 * MessagePort, as the writer thread does; the receiver's side, the main thread's, is not timed); every result is
 * checked after the clock stops, and a failed transaction stops the benchmark (it would measure nothing).
 */
import { MessageChannel } from 'node:worker_threads';
import * as layout from '../core/layout.js';
import * as limits from '../core/limits.js';
import { pinClockMs } from '../workers/reader/pin.js';
import { ChangeBatch, ChangeRecorder } from '../workers/writer/changes.js';
import { WriterCore } from '../workers/writer/writer.js';
import {
  checkCommitted, log, nowMs, perSecond, PinHold, round, type Row, Rows, transactionError,
} from './bench-support.js';
import { Transitions } from './bench-transitions.js';
import { bulkLoadTransactionBytes, type WorkloadOptions } from './workload.js';

export const bulkTasksPerTransaction = 1000;
export const groupTransactions = 64;        // what the writer's loop commits from a backlog before one publish

export interface WriterCounts {
  single: number;          // transactions per commit_single variant
  batchTransitions: number; // transitions per commit_batch variant
  warmup: number;          // untimed single transitions before the first timed run
}

/** The change batch of a writer made with changes on (--changes), and where its batches are posted. */
const changeBatches = new WeakMap<WriterCore, ChangeBatch>();
const changesChannel = new MessageChannel();
changesChannel.port2.on('message', () => undefined); // delivered between phases, when the event loop runs
changesChannel.port1.unref();
changesChannel.port2.unref();

/**
 * A WriterCore over fresh shared memory, with the engine's default limits (a longer pinMsMax for --hold-pin);
 * changes: encode change records, as the engine's writer does when it has a watcher (onChanges).
 */
export function newWriterCore(holdPin: boolean, changes = false): { writer: WriterCore; control: SharedArrayBuffer } {
  const arena = new SharedArrayBuffer(limits.arenaBytesInitialDefault, { maxByteLength: limits.arenaBytesMaxDefault });
  const control = new SharedArrayBuffer(layout.controlBytes);
  const writer = new WriterCore({
    arena, control, arenaBytesMax: limits.arenaBytesMaxDefault,
    pinMsMax: holdPin ? PinHold.pinMsMax : limits.pinMsMaxDefault, now: pinClockMs,
  });
  if (changes) {
    const batch = new ChangeBatch();
    writer.changes = new ChangeRecorder(writer.tables, batch, Date.now);
    changeBatches.set(writer, batch);
  }
  return { writer, control };
}

/** publish(), then what the writer thread does with the group's change records (taken, posted). */
function publish(writer: WriterCore): void {
  writer.publish();
  const taken = changeBatches.get(writer)?.take() ?? null;
  if (taken !== null) changesChannel.port1.postMessage(taken.message, [taken.buffer]);
}

const changesOf = (writer: WriterCore): string => (changeBatches.has(writer) ? 'on' : 'off');

/** Bulk load through commit() + publish() per transaction; generation happens between timed calls. */
export function bulkLoadWriter(writer: WriterCore, o: WorkloadOptions, tasks: number, rows: Rows): Row {
  let timedMs = 0;
  const startMs = nowMs();
  let transactions = 0;
  for (const bytes of bulkLoadTransactionBytes(o, bulkTasksPerTransaction)) {
    const t0 = nowMs();
    const result = writer.commit(bytes);
    publish(writer);
    timedMs += nowMs() - t0;
    const error = transactionError(result);
    if (error !== null) throw new Error(`bulk load (writer alone): transaction ${transactions} failed: ${error}`);
    transactions++;
  }
  const stats = writer.stats();
  if (stats.taskCount !== tasks) {
    throw new Error(`bulk load (writer alone): ${stats.taskCount} tasks stored, not ${tasks}`);
  }
  return rows.add({
    name: 'bulk_load', tasks, value: perSecond(tasks, timedMs), unit: 'tasks/s', via: 'writer_core',
    tasksPerTransaction: bulkTasksPerTransaction, applyMs: Math.round(timedMs),
    wallMs: Math.round(nowMs() - startMs), arenaBytesUsed: stats.arenaBytesUsed,
  });
}

function commitSingle(writer: WriterCore, transitions: Transitions, count: number, group: number): {
  ms: number; replacementShare: number } {
  const replacementsBefore = transitions.replacements;
  const transactions = transitions.single(count);
  const replacementShare = (transitions.replacements - replacementsBefore) / count;
  const results: Uint8Array[] = new Array(count);
  const revisionBefore = writer.revision;
  const t0 = nowMs();
  for (let i = 0; i < count; i++) {
    results[i] = writer.commit(transactions[i]!);
    if ((i + 1) % group === 0) publish(writer);
  }
  if (count % group !== 0) publish(writer);
  const ms = nowMs() - t0;
  checkCommitted(results, `commit_single (group ${group})`);
  if (writer.revision - revisionBefore !== count) {
    throw new Error(`commit_single: ${writer.revision - revisionBefore} revisions for ${count} transactions`);
  }
  return { ms, replacementShare };
}

function commitBatch(writer: WriterCore, transitions: Transitions, batch: number, transitionCount: number): {
  ms: number; transactions: number; replacementShare: number } {
  const transactionCount = Math.max(1, Math.round(transitionCount / batch));
  const replacementsBefore = transitions.replacements;
  const transactions = transitions.batched(batch, transactionCount);
  const replacementShare = (transitions.replacements - replacementsBefore) / (transactionCount * batch);
  const results: Uint8Array[] = new Array(transactionCount);
  const t0 = nowMs();
  for (let i = 0; i < transactionCount; i++) {
    results[i] = writer.commit(transactions[i]!);
    publish(writer);
  }
  const ms = nowMs() - t0;
  checkCommitted(results, `commit_batch${batch}`);
  return { ms, transactions: transactionCount, replacementShare };
}

/**
 * commit_single (publish every / group of 64) and commit_batch64 / commit_batch1000 on a loaded WriterCore.
 * `reclamation` is recorded in every row: 'on', or 'blocked' when the caller holds a pin (--hold-pin).
 */
export function writerPhases(writer: WriterCore, transitions: Transitions, tasks: number, counts: WriterCounts,
  reclamation: string, rows: Rows): void {
  log(`warm-up: ${counts.warmup} single transitions`);
  commitSingle(writer, transitions, counts.warmup, 1);
  for (const group of [1, groupTransactions]) {
    const { ms, replacementShare } = commitSingle(writer, transitions, counts.single, group);
    rows.add({
      name: 'commit_single', tasks, value: perSecond(counts.single, ms), unit: 'commits/s',
      publish: group === 1 ? 'every' : 'group', group, transactions: counts.single,
      replacementShare: round(replacementShare, 3), usPerCommit: round((ms * 1000) / counts.single, 3), reclamation,
      changes: changesOf(writer), arenaBytesUsed: writer.stats().arenaBytesUsed,
    });
  }
  for (const batch of [64, 1000]) {
    const { ms, transactions, replacementShare } = commitBatch(writer, transitions, batch, counts.batchTransitions);
    rows.add({
      name: `commit_batch${batch}`, tasks, value: perSecond(transactions * batch, ms), unit: 'transitions/s',
      transactions, transitionsPerTransaction: batch, replacementShare: round(replacementShare, 3),
      msPerTransaction: round(ms / transactions, 3), reclamation, changes: changesOf(writer), arenaBytesUsed: writer.stats().arenaBytesUsed,
    });
  }
  const stats = writer.stats();
  log(`writer after the commit phases: revision ${stats.revision}, tasks ${stats.taskCount}, ` +
    `arena used ${mib(stats.arenaBytesUsed)} MiB of ${mib(stats.arenaBytes)} MiB, ` +
    `retired ${stats.retired}, strings ${stats.strings}`);
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}
