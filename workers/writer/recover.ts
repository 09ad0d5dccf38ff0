/**
 * Recovery: the newest valid snapshot, then a replay of the log after it. Owner: the writer thread, at start.
 *
 * Replay re-executes each logged transaction (core/log-entry.ts) through WriterCore.commit with logging off and
 * checks that it does what it did the first time: no error, and the revision the log says. A divergence or a
 * corrupt record stops recovery with a FormatError that names the file, the offset and the revision. A torn
 * tail in the newest segment is reported in the result; WriteAheadLog.open() cuts it off.
 * Replay publishes every replayPublishEvery entries: copy-on-write nodes of one epoch are updated in place, so
 * long epochs replay faster, and publishing lets the arena reclaim what the replay made garbage.
 * A writer with a ChangeRecorder (writer.changes) encodes each replayed revision's change record exactly as the
 * commit did (a restore entry: a reset record); `published` is called after each publish, to ship them.
 */
import * as flatbuffers from 'flatbuffers';
import { TransactionResult, type StateRestore } from '../../core/fbs/strata.js';
import { join } from 'node:path';
import { FormatError, sha256File } from '../../core/files.js';
import { entryTransaction } from '../../core/log-entry.js';
import { scanLog } from '../../core/wal.js';
import type { LogTail } from './log.js';
import { loadSnapshot } from './restore.js';
import type { WriterCore } from './writer.js';

const replayPublishEvery = 4096;

/** scanLog, with a corruption error that says the revision and what to do about it. */
function scanLogExplained(logDir: string, from: number, good: () => number, onGroup: Parameters<typeof scanLog>[1]):
  ReturnType<typeof scanLog> {
  try {
    return scanLog(logDir, onGroup, from);
  } catch (error) {
    if (!(error instanceof FormatError) || error.message.includes('strata log')) throw error;
    throw new FormatError(error.file, error.offset, `${error.reason}` +
      ` (after revision ${good()}). Recovery stopped: nothing was changed. Inspect with \`strata log verify\`; ` +
      `to keep everything up to revision ${good()} and cut the rest, \`strata log truncate --after ${good()}\` ` +
      '(it keeps a copy of what it cuts); see docs/operations.md');
  }
}

export interface Recovery {
  writer: WriterCore;      // the recovered writer (a restore entry replaces the one recovery started with)
  revision: number;
  snapshot: { path: string; revision: number; ms: number } | null;
  replayed: number;        // transactions re-executed from the log
  skipped: number;         // entries at or below the snapshot's revision
  tail: LogTail;
  torn: { file: string; offset: number; reason: string } | null;
  brokenSnapshots?: string[]; // damaged snapshots set aside (renamed .broken) before an older one loaded
  ms: number;
}

/**
 * `loadSnapshot` loads the newest usable snapshot into the empty writer and returns it (null: none), so that
 * recovery does not depend on the snapshot format.
 */
export function recover(writerOf: WriterCore | (() => WriterCore), logDir: string,
  loadSnapshot: () => { path: string; revision: number } | null,
  replaceState?: (restore: StateRestore, revision: number) => WriterCore, published?: () => void): Recovery {
  const start = performance.now();
  const snapshot = loadSnapshot();
  let writer = typeof writerOf === 'function' ? writerOf() : writerOf; // loading may have replaced a writer spoilt by a damaged snapshot
  const snapshotMs = performance.now() - start;
  const base = snapshot?.revision ?? 0;
  let replayed = 0;
  let skipped = 0;
  let sincePublish = 0;
  const previousLog = writer.log;
  writer.log = null;
  let good = base; // the last revision known good, for the error an operator reads
  const scan = scanLogExplained(logDir, base, () => good, (record) => {
    const group = record.group;
    let revision = record.firstRevision - 1;
    const count = group.entriesLength();
    for (let i = 0; i < count; i++) {
      const entry = group.entries(i)!;
      const noop = entry.noop();
      if (!noop) revision++;
      if (noop ? revision < base : revision <= base) {
        skipped++;
        continue;
      }
      if (writer.revision !== (noop ? revision : revision - 1)) {
        throw new FormatError(record.file, record.offset, `revision ${revision}: the log does not continue the ` +
          `state at revision ${writer.revision} (a gap after the snapshot at ${base}?); see strata log verify`);
      }
      const remembered = entry.resultArray();
      if (remembered !== null && remembered.length > 0) {
        // A keyed failure: its outcome is remembered again, nothing is executed.
        const key = entry.idempotency();
        if (key === null || !noop) {
          throw new FormatError(record.file, record.offset, `revision ${revision}: a remembered outcome without a key`);
        }
        writer.restoreIdempotency(key.clientId() ?? '', key.sequence(), remembered.slice());
        replayed++;
        continue;
      }
      const restore = entry.restore();
      if (restore !== null) {
        // A committed staged backup: the whole state is replaced by its snapshot, at this revision.
        if (replaceState === undefined) {
          throw new FormatError(record.file, record.offset, `revision ${revision}: a restore entry (${restore.file()}) ` +
            'needs the data directory it was written in');
        }
        writer.publish();
        published?.();
        writer = replaceState(restore, revision);
        writer.log = null;
        writer.changes?.reset(revision);
        replayed++;
        good = revision;
        continue;
      }
      const result = TransactionResult.getRootAsTransactionResult(new flatbuffers.ByteBuffer(
        writer.commit(entryTransaction(entry))));
      const error = result.error();
      const diverged = error !== null || (noop ? writer.revision !== revision :
        Number(result.revision()) !== revision && !result.duplicate());
      if (diverged) {
        throw new FormatError(record.file, record.offset, `revision ${revision}: replay diverged (${error !== null ?
          `error ${error.code()}: ${error.message()}` : `got revision ${result.revision()}`}); the log or this build is ` +
          'wrong: see strata log verify, strata log edit');
      }
      replayed++;
      good = revision;
      if (++sincePublish >= replayPublishEvery) {
        writer.publish();
        published?.();
        sincePublish = 0;
      }
    }
  });
  writer.publish();
  published?.();
  writer.log = previousLog;
  const final = writer;
  if (scan.segments.length > 0 && scan.segments[0]!.firstRevision > base + 1) {
    throw new FormatError(scan.segments[0]!.name, 0, `the log starts at revision ${scan.segments[0]!.firstRevision} ` +
      `but the state (snapshot) is at ${base}: revisions in between are missing`);
  }
  if (scan.segments.length > 0 && scan.lastRevision < base) {
    throw new FormatError(scan.segments.at(-1)!.name, 0, `the log ends at revision ${scan.lastRevision}, before ` +
      `the snapshot at ${base}`);
  }
  const last = scan.segments.at(-1);
  const tail: LogTail = {
    segment: last === undefined ? null : { name: last.name, seq: last.seq, firstRevision: last.firstRevision,
      validEnd: last.validEnd },
    lastCrc: scan.lastCrc, lastRevision: Math.max(scan.lastRevision, base),
    torn: scan.torn === null ? null : { offset: scan.torn.offset },
  };
  return {
    writer: final, revision: writer.revision, replayed, skipped, tail, torn: scan.torn, ms: performance.now() - start,
    snapshot: snapshot === null ? null : { ...snapshot, ms: snapshotMs },
  };
}

/**
 * A restore entry's state: a new writer (from `fresh`) holding the snapshot the entry names in `dataDir`, checked
 * against the entry's SHA-256, at the entry's revision. Used by recovery (daemon and offline tools alike).
 */
export function restoredWriter(dataDir: string, entry: StateRestore, revision: number, fresh: () => WriterCore):
  WriterCore {
  const file = entry.file() ?? '';
  const path = join(dataDir, file);
  if (file.includes('..') || !file.startsWith('restores/')) {
    throw new FormatError(path, 0, `a restore entry names ${JSON.stringify(file)}, not a file in restores/`);
  }
  const expected = Buffer.from(entry.sha256Array() ?? []).toString('hex');
  const actual = sha256File(path).toString('hex');
  if (actual !== expected) {
    throw new FormatError(path, 0, `revision ${revision} restores this file, whose SHA-256 is ${actual}, not ${expected}`);
  }
  const writer = fresh();
  const loaded = loadSnapshot(writer, path);
  if (loaded.revision >= revision) {
    throw new FormatError(path, 0, `revision ${revision} restores a snapshot at revision ${loaded.revision}: ` +
      'records would be newer than the store');
  }
  writer.revision = revision;
  writer.tables.revisionBuilding = revision + 1;
  writer.publish();
  return writer;
}
