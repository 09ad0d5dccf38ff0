/**
 * The writer thread's entry. Owner: the writer thread.
 * At start: recovery (newest snapshot + log replay) when there is a data directory, then 'ready'.
 * Then per group: drain the commit port (at most writerGroupTransactionsMax transactions), commit each (each
 * logged entry goes into one LogGroup), append the group to the log with one write and one fdatasync, publish,
 * post the group's change records ('changes', when the engine asked for them), answer the whole group. Nothing of
 * a group is visible, acknowledged or shown to a watcher before its fdatasync returned. Recovery posts the change
 * records of the revisions it replays before 'ready', which says from which revision on history is complete.
 * Fail-stop: an I/O error of the log, a bug (assertion) or a full arena mid-apply throws; the thread first posts
 * 'fatal' with the error's code, then dies, and the main thread fails every pending and later call.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import { failpoint } from '../../core/failpoints.js';
import { LogGroupBuilder } from '../../core/log-entry.js';
import { renameSync } from 'node:fs';
import { ErrorCode, type StateRestore } from '../../core/fbs/strata.js';
import { FormatError, fsyncDirectory, magicBackup, mkdirDurable } from '../../core/files.js';
import { backupName, pruneBackups } from '../snapshot/backups.js';
import { changesGroupBytesMax, groupBytesMax, writerGroupTransactionsMax } from '../../core/limits.js';
import { listSnapshots } from '../snapshot/read.js';
import { spawnSnapshot } from '../snapshot/spawn.js';
import type { SnapshotWriteResult } from '../snapshot/write.js';
import { loadSnapshot } from './restore.js';
import { pinClockMs } from '../reader/pin.js';
import { WriteAheadLog } from './log.js';
import { recover, restoredWriter, type Recovery } from './recover.js';
import { ChangeBatch, ChangeRecorder, type ChangesMessage } from './changes.js';
import { restoreFileName, retainSnapshots } from '../snapshot/retention.js';
import { errorResult, WriterCore } from './writer.js';

export interface WriterData {
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
  arenaBytesMax: number;
  pinMsMax: number;
  port: MessagePort;
  /** null: in memory only (tests and benchmarks of the engine alone). */
  dataDir: string | null;
  segmentBytes?: number;
  snapshot?: Partial<SnapshotOptions>;
  backup?: Partial<BackupOptions>;
  /** Encode a change record per revision and post them ('changes'); false or absent: none (no watcher). */
  changes?: boolean;
}

export interface SnapshotOptions {
  /** Take a snapshot this often (ms; 0: never by time). Default 30 min. */
  everyMs: number;
  /** Take a snapshot when this many log bytes were written since the last one (0: never by size). Default 256 MiB. */
  logBytes: number;
  /** Snapshots kept (newest first); log segments wholly before the oldest kept one are deleted. Default 2. */
  retained: number;
  /**
   * Take a snapshot right after a recovery that replayed at least this many transactions (0: never), so that a
   * long tail is replayed once, not at every restart (log bytes count only what this process wrote). Default 10k.
   */
  afterReplay: number;
}

export const snapshotDefaults: SnapshotOptions = {
  everyMs: 30 * 60_000, logBytes: 256 * 1024 * 1024, retained: 2, afterReplay: 10_000,
};

export interface BackupOptions {
  /** Take a backup this often (ms; 0: never by time). Default 1 h, as Aurora. */
  everyMs: number;
  /** Backups kept (oldest deleted). Default 48, as Aurora. */
  keep: number;
  /** Where backups go; default <dataDir>/backups (Aurora's advice: not on the log's disk). */
  dir: string | null;
}

export const backupDefaults: BackupOptions = { everyMs: 60 * 60_000, keep: 48, dir: null };

/** scopes: per transaction the roles it may write (null: any), or null when no transaction of it has a scope. */
export interface CommitMessage {
  kind: 'commit'; ids: number[]; transactions: Uint8Array[]; scopes: (readonly string[] | null)[] | null;
}
export interface StatsMessage { kind: 'stats'; id: number }
export interface CloseMessage { kind: 'close'; id: number }
export interface SnapshotMessage { kind: 'snapshot' | 'backup'; id: number }
/** Stage a snapshot or backup file into this (empty, in-memory) writer: the staged copy of a recovery. */
export interface LoadMessage { kind: 'load'; id: number; path: string }
/** Replace the whole state by a snapshot file of the data directory (a committed staged backup), as one entry. */
export interface RestoreMessage { kind: 'restore'; id: number; file: string; sha256: Uint8Array; fromRevision: number }
export type WriterRequest = CommitMessage | StatsMessage | CloseMessage | SnapshotMessage | LoadMessage | RestoreMessage;
/** The answer to LoadMessage and RestoreMessage. */
export interface DoneMessage { kind: 'done'; id: number; revision: number; error: string | null }
/** The answer to SnapshotMessage: the snapshot written, or why not. */
export interface SnapshotDoneMessage { kind: 'snapshot'; id: number; result: SnapshotWriteResult | null; error: string | null }
/** syncMs: the group's log append + fdatasync time (-1: nothing was logged), for the fsync histogram. */
export interface ResultsMessage { kind: 'results'; ids: number[]; results: Uint8Array[]; syncMs?: number }
/** historyFrom: 'changes' came for every revision after it (the loaded snapshot's revision; 0: none). */
export interface ReadyMessage { kind: 'ready'; recovery: Omit<Recovery, 'tail' | 'writer'> | null; historyFrom: number }
export interface FatalMessage { kind: 'fatal'; code: string; message: string }

const data = workerData as WriterData;

/**
 * Loads the newest snapshot that checks into the (empty) writer. A damaged one is set aside (brokenRevisions) and
 * the next older one is tried with a new, empty writer, as etcd does; the log must then reach back to it (recover()
 * says so when it does not) and beyond the damaged one's revision (checkBrokenSnapshots). The damaged files are
 * renamed `<name>.broken` only once recovery succeeded: a refused start leaves them in place, so that every
 * restart refuses the same way instead of starting from less.
 */
function loadNewestSnapshot(dir: string): { path: string; revision: number } | null {
  let candidates: { path: string; revision: number }[];
  try {
    candidates = listSnapshots(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  for (const candidate of candidates) {
    try {
      const loaded = loadSnapshot(writer, candidate.path);
      return { path: candidate.path, revision: loaded.revision };
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      brokenRevisions.push({ path: candidate.path, revision: candidate.revision, reason: error.message });
      writer = newWriter();
    }
  }
  return null;
}
/** The change records of the group being built (and of a replay), when the engine wants them. */
const changeBatch = data.changes === true ? new ChangeBatch() : null;
const newWriter = (): WriterCore => {
  const core = new WriterCore({
    arena: data.arena, control: data.control, arenaBytesMax: data.arenaBytesMax, pinMsMax: data.pinMsMax,
    now: pinClockMs,
  });
  if (changeBatch !== null) core.changes = new ChangeRecorder(core.tables, changeBatch, Date.now);
  return core;
};
let writer = newWriter();
const brokenRevisions: { path: string; revision: number; reason: string }[] = [];

/**
 * A damaged snapshot at revision R means the store once reached R. If the state recovered without it (an older
 * snapshot plus the log, or the log alone, or nothing) stops short of R, serving it would silently drop revisions
 * that were acknowledged: refuse (FORMAT, exit 65) naming the file, so that the operator restores a backup or
 * repairs. Otherwise set the damaged files aside.
 */
function checkBrokenSnapshots(recoveredRevision: number): void {
  for (const broken of brokenRevisions) {
    if (broken.revision > recoveredRevision) {
      throw new FormatError(broken.path, 0, `the snapshot at revision ${broken.revision} is damaged (${broken.reason}) and ` +
        `the older snapshots and the log recover only up to revision ${recoveredRevision}: refusing to serve a state ` +
        `that lost revisions; see strata snapshot dump and strata log verify, then restore a backup (strata backup restore)`);
    }
  }
  for (const broken of brokenRevisions) renameSync(broken.path, `${broken.path}.broken`);
}
const port = data.port;
let log: WriteAheadLog | null = null;
const groupLog = new LogGroupBuilder();
let fsyncMsTotal = 0;
let commitMsTotal = 0;   // planning + applying + log encoding, summed over groups
let appendMsTotal = 0;   // log write + fdatasync
let groupTransactions = 0;

/** An I/O error in a promise callback (retention, pruning): fail-stop as in the commit path, off this stack. */
function fatalLater(error: unknown): void {
  setImmediate(() => fatal(error));
}

function fatal(error: unknown): never {
  const e = error as NodeJS.ErrnoException;
  port.postMessage({ kind: 'fatal', code: e?.code ?? (e?.name === 'FormatError' ? 'FORMAT' : 'INTERNAL'),
    message: String(e?.message ?? error) } satisfies FatalMessage);
  throw error;
}

function stats(): Record<string, number> {
  return { ...writer.stats(), commitMsTotal, appendMsTotal, groupTransactions, ...snapshotStats, ...backupStats,
    ...(log === null ? {} : { ...prefixed(log.stats()), fsyncMsTotal }) };
}

function prefixed(values: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(values)) out[`log${key[0]!.toUpperCase()}${key.slice(1)}`] = value;
  return out;
}

/** Posts the change records held (all durable: after a group's fdatasync, or replayed from the log). */
function postChanges(): void {
  const taken = changeBatch?.take() ?? null;
  if (taken !== null) port.postMessage(taken.message satisfies ChangesMessage, [taken.buffer]);
}

/** Set once a restore entry is durable: the state is to be replaced, so the engine reopens; nothing else commits. */
let restored = false;

/** Drains the port into groups until it is empty; a group ends at writerGroupTransactionsMax or groupBytesMax. */
function group(first: CommitMessage): void {
  let next: CommitMessage | null = first;
  while (next !== null) next = oneGroup(next);
  snapshotDue();
}

/** One group: commit, append + fdatasync, publish, answer. Returns the commits it left for the next group. */
function oneGroup(first: CommitMessage): CommitMessage | null {
  if (restored || closing) {
    const refused = errorResult(writer.revision, ErrorCode.UNAVAILABLE, restored ?
      'the state was replaced by a restored backup; the engine is reopening: retry' : 'the engine is closing');
    port.postMessage({ kind: 'results', ids: first.ids, results: first.ids.map(() => refused) } satisfies ResultsMessage);
    return null;
  }
  const ids: number[] = [];
  const results: Uint8Array[] = [];
  const t0 = performance.now();
  if (log !== null) groupLog.begin(writer.revision + 1, 0);
  let message: WriterRequest | undefined = first;
  let left: CommitMessage | null = null;
  const after: WriterRequest[] = [];
  drain: while (message !== undefined) {
    if (message.kind === 'commit') {
      for (let i = 0; i < message.transactions.length; i++) {
        if (ids.length >= writerGroupTransactionsMax || (log !== null && groupLog.bytes() >= groupBytesMax) ||
          (changeBatch !== null && changeBatch.bytes >= changesGroupBytesMax)) {
          left = { kind: 'commit', ids: message.ids.slice(i), transactions: message.transactions.slice(i),
            scopes: message.scopes?.slice(i) ?? null };
          break drain;
        }
        ids.push(message.ids[i]!);
        results.push(writer.commit(message.transactions[i]!, message.scopes?.[i] ?? null));
      }
    } else {
      after.push(message); // answered after the group is durable (close waits for it)
    }
    message = receiveMessageOnPort(port)?.message as WriterRequest | undefined;
  }
  const t1 = performance.now();
  commitMsTotal += t1 - t0;
  groupTransactions += ids.length;
  let syncMs = -1;
  if (log !== null && groupLog.count > 0) {
    try {
      log.append(groupLog.finish(), writer.revision);
    } catch (error) {
      fatal(error);
    }
    syncMs = performance.now() - t1;
    appendMsTotal += syncMs;
  }
  failpoint('log.before-publish');
  writer.publish();
  postChanges();
  port.postMessage({ kind: 'results', ids, results, syncMs } satisfies ResultsMessage);
  for (const request of after) other(request);
  return left;
}

function other(message: WriterRequest): void {
  if (message.kind === 'stats') port.postMessage({ kind: 'stats', id: message.id, stats: stats() });
  else if (message.kind === 'snapshot') {
    snapshotWaiters.push(message.id);
    startSnapshot('request');
  } else if (message.kind === 'backup') {
    startBackup('request', message.id);
  } else if (message.kind === 'load') {
    port.postMessage(load(message));
  } else if (message.kind === 'restore') {
    port.postMessage(restore(message));
  } else if (message.kind === 'close') {
    closing = true;
    Promise.allSettled([snapshotRunning, backupRunning]).then(() => close(message.id), () => close(message.id));
  }
}

/** Stages a snapshot or backup into this writer, which must be an empty in-memory one. */
function load(message: LoadMessage): DoneMessage {
  if (data.dataDir !== null || writer.revision !== 0) {
    return { kind: 'done', id: message.id, revision: writer.revision, error: 'only an empty in-memory engine stages a backup' };
  }
  try {
    return { kind: 'done', id: message.id, revision: loadSnapshot(writer, message.path).revision, error: null };
  } catch (error) {
    writer = newWriter();
    return { kind: 'done', id: message.id, revision: 0, error: String((error as Error)?.message ?? error) };
  }
}

/**
 * Logs a restore entry (its own group, one fdatasync): from it on, the state is the snapshot in `file`. The
 * writer does not swap its tables under readers: it refuses further commits, and the engine reopens, which
 * recovers through the entry (replaceState) exactly as a restart or a standby would.
 */
function restore(message: RestoreMessage): DoneMessage {
  if (log === null || restored) {
    return { kind: 'done', id: message.id, revision: writer.revision, error: log === null ? 'no data directory' : 'already restored' };
  }
  const revision = writer.revision + 1;
  if (message.fromRevision >= revision) {
    // Its records carry revisions up to fromRevision: the store's revision must stay above every record's.
    return { kind: 'done', id: message.id, revision: writer.revision, error: `the backup is at revision ` +
      `${message.fromRevision}, not older than this store (${writer.revision}): it cannot be restored here` };
  }
  // The file is renamed to carry the entry's revision, so that retention knows when no snapshot needs it.
  const file = `restores/${restoreFileName(revision, Buffer.from(message.sha256).toString('hex'))}`;
  try {
    renameSync(join(data.dataDir!, message.file), join(data.dataDir!, file));
    fsyncDirectory(join(data.dataDir!, 'restores'));
  } catch (error) {
    return { kind: 'done', id: message.id, revision: writer.revision, error: String((error as Error)?.message ?? error) };
  }
  groupLog.begin(revision, 0);
  groupLog.addRestore(file, message.sha256, message.fromRevision);
  try {
    log.append(groupLog.finish(), revision);
  } catch (error) {
    fatal(error);
  }
  restored = true;
  writer.changes?.reset(revision);
  postChanges();
  return { kind: 'done', id: message.id, revision, error: null };
}

/** Recovery's handling of a restore entry: a new writer holding the snapshot it names, at the entry's revision. */
function replaceState(entry: StateRestore, revision: number): WriterCore {
  writer = restoredWriter(data.dataDir!, entry, revision, newWriter);
  return writer;
}

function close(id: number): void {
  clearInterval(snapshotTimer);
  clearInterval(backupTimer);
  writer.log = null;
  log?.close();
  log = null;
  port.postMessage({ kind: 'closed', id });
}

// ----------------------------------------------------------------------------------------------------------
// Snapshots: by time, by log bytes, on request; one at a time, in a worker, from the revision just published.

const snapshotOptions: SnapshotOptions = { ...snapshotDefaults, ...data.snapshot };
let snapshotRunning: Promise<unknown> | null = null;
let snapshotWaiters: number[] = [];
let snapshotLogBytesAt = 0;      // log.bytesWritten when the last snapshot started
let snapshotTimer: ReturnType<typeof setInterval> | undefined;
let closing = false;
const snapshotStats = { snapshotsTaken: 0, snapshotsFailed: 0, snapshotLastRevision: 0, snapshotLastMs: 0,
  snapshotLastBytes: 0, segmentsRemoved: 0 };

function snapshotDue(): void {
  if (log === null || snapshotRunning !== null || snapshotOptions.logBytes <= 0) return;
  if (log.bytesWritten - snapshotLogBytesAt >= snapshotOptions.logBytes) startSnapshot('log bytes');
}

/** Pins the published revision and writes it in a worker; the writer goes on committing meanwhile. */
function startSnapshot(reason: string): void {
  if (data.dataDir === null || closing || restored) {
    answerSnapshot(null, data.dataDir === null ? 'no data directory: nothing to snapshot' :
      restored ? 'the state was replaced by a restore; the engine is reopening' : 'closing');
    return;
  }
  if (snapshotRunning !== null) return; // the waiters get the running one's outcome
  const dir = join(data.dataDir, 'snapshots');
  mkdirDurable(dir);
  snapshotLogBytesAt = log?.bytesWritten ?? 0;
  const revision = writer.revision;
  let promise: Promise<SnapshotWriteResult>;
  try {
    promise = spawnSnapshot({ arena: data.arena, control: data.control, directory: dir, revision, term: 0,
      idempotency: writer.idempotencyEntries() });
  } catch (error) {
    snapshotStats.snapshotsFailed++;
    answerSnapshot(null, String((error as Error)?.message ?? error));
    return;
  }
  snapshotRunning = promise.then((result) => {
    snapshotStats.snapshotsTaken++;
    snapshotStats.snapshotLastRevision = result.revision;
    snapshotStats.snapshotLastMs = result.ms;
    snapshotStats.snapshotLastBytes = result.bytes;
    try {
      retain();
    } catch (error) {
      fatalLater(error);
    }
    port.postMessage({ kind: 'event', event: { msg: 'snapshot written', reason, ...result } });
    answerSnapshot(result, null);
  }, (error: unknown) => {
    // Not fail-stop: the log still holds everything; the next trigger tries again.
    snapshotStats.snapshotsFailed++;
    port.postMessage({ kind: 'event', event: { msg: 'snapshot failed', reason, error: String((error as Error)?.message ?? error) } });
    answerSnapshot(null, String((error as Error)?.message ?? error));
  }).finally(() => {
    snapshotRunning = null;
  });
}

function answerSnapshot(result: SnapshotWriteResult | null, error: string | null): void {
  const waiters = snapshotWaiters;
  snapshotWaiters = [];
  for (const id of waiters) port.postMessage({ kind: 'snapshot', id, result, error } satisfies SnapshotDoneMessage);
}

// ----------------------------------------------------------------------------------------------------------
// Backups: periodic (default hourly, keep 48) and on request; the snapshot worker writes them.

const backupOptions: BackupOptions = { ...backupDefaults, ...data.backup };
let backupRunning: Promise<unknown> | null = null;
let backupTimer: ReturnType<typeof setInterval> | undefined;
const backupStats = { backupsTaken: 0, backupsFailed: 0, backupLastRevision: 0, backupLastMs: 0 };

function startBackup(reason: string, id: number | null): void {
  const answer = (result: SnapshotWriteResult | null, error: string | null) => {
    if (id !== null) port.postMessage({ kind: 'snapshot', id, result, error } satisfies SnapshotDoneMessage);
  };
  if (data.dataDir === null || closing) return answer(null, data.dataDir === null ? 'no data directory' : 'closing');
  if (backupRunning !== null) return answer(null, 'a backup is being written; try again when it is done');
  const dir = backupOptions.dir ?? join(data.dataDir, 'backups');
  mkdirDurable(dir);
  let promise: Promise<SnapshotWriteResult>;
  try {
    promise = spawnSnapshot({ arena: data.arena, control: data.control, directory: dir, revision: writer.revision,
      term: 0, idempotency: writer.idempotencyEntries(), fileName: backupName(dir), magic: magicBackup });
  } catch (error) {
    backupStats.backupsFailed++;
    return answer(null, String((error as Error)?.message ?? error));
  }
  backupRunning = promise.then((result) => {
    backupStats.backupsTaken++;
    backupStats.backupLastRevision = result.revision;
    backupStats.backupLastMs = result.ms;
    let pruned: string[] = [];
    try {
      pruned = pruneBackups(dir, Math.max(1, backupOptions.keep));
    } catch (error) {
      fatalLater(error);
    }
    port.postMessage({ kind: 'event', event: { msg: 'backup written', reason, ...result, pruned } });
    answer(result, null);
  }, (error: unknown) => {
    backupStats.backupsFailed++;
    const message = String((error as Error)?.message ?? error);
    port.postMessage({ kind: 'event', event: { msg: 'backup failed', reason, error: message } });
    answer(null, message);
  }).finally(() => {
    backupRunning = null;
  });
}

/** The data directory's retention (workers/snapshot/retention.ts), after a snapshot. */
function retain(): void {
  const retention = retainSnapshots(data.dataDir!, snapshotOptions.retained,
    (revision) => log === null ? [] : log.removeBefore(revision, 0));
  snapshotStats.segmentsRemoved += retention.segments.length;
}

function start(): void {
  let recovery: Recovery | null = null;
  if (data.dataDir !== null) {
    const logDir = join(data.dataDir, 'log');
    const snapshotDir = join(data.dataDir, 'snapshots');
    recovery = recover(() => writer, logDir, () => loadNewestSnapshot(snapshotDir), replaceState, postChanges);
    writer = recovery.writer;
    checkBrokenSnapshots(writer.revision);
    if (brokenRevisions.length > 0) recovery.brokenSnapshots = brokenRevisions.map((b) => `${b.path}: ${b.reason}`);
    log = new WriteAheadLog({ dir: logDir, segmentBytes: data.segmentBytes, onSync: (ms) => { fsyncMsTotal += ms; } });
    log.open(recovery.tail, writer.revision);
    writer.log = groupLog;
    if (snapshotOptions.everyMs > 0) {
      snapshotTimer = setInterval(() => startSnapshot('time'), snapshotOptions.everyMs);
      snapshotTimer.unref();
    }
    if (backupOptions.everyMs > 0) {
      backupTimer = setInterval(() => startBackup('time', null), backupOptions.everyMs);
      backupTimer.unref();
    }
  }
  port.on('message', (message: WriterRequest) => {
    if (message.kind === 'commit') group(message);
    else other(message);
  });
  let ready: ReadyMessage['recovery'] = null;
  if (recovery !== null) {
    const { tail: _tail, writer: _writer, ...rest } = recovery;
    ready = rest;
  }
  postChanges();
  // Replay encoded every revision after the snapshot it started from (a bulk snapshot load encodes none).
  const historyFrom = recovery?.snapshot?.revision ?? 0;
  port.postMessage({ kind: 'ready', recovery: ready, historyFrom } satisfies ReadyMessage);
  if (recovery !== null && snapshotOptions.afterReplay > 0 && recovery.replayed >= snapshotOptions.afterReplay) {
    startSnapshot('recovery replayed a long log tail');
  }
}

try {
  start();
} catch (error) {
  fatal(error);
}
