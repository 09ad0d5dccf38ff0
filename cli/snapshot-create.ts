/**
 * `strata snapshot create`: offline compaction of a stopped daemon's data directory. Recovers the state in this
 * process (cli/offline-recovery.ts: newest snapshot + log replay), writes a snapshot of the recovered revision
 * in this thread (workers/snapshot/write.ts, the writer being idle: the pin is the published revision), installs
 * it in <dataDir>/snapshots, then applies the daemon's retention: keep the newest N snapshots, delete the log
 * segments wholly before the oldest kept one (never the newest segment). Owner: the strata process's main thread,
 * the data directory lock held throughout.
 * Invariants: a snapshot is installed whole or not at all (writeSnapshot: .tmp, fsync, rename, directory fsync);
 * nothing is deleted before the new snapshot is installed, and a log segment only once a kept snapshot covers
 * every entry of it (WriteAheadLog.removeBefore); a torn tail is left for the daemon to cut at its next start.
 */
import { mkdirSync } from 'node:fs';
import { listSegments } from '../core/wal.js';
import { retainSnapshots, type Retention } from '../workers/snapshot/retention.js';
import { writeSnapshot, type SnapshotWriteResult } from '../workers/snapshot/write.js';
import { WriteAheadLog } from '../workers/writer/log.js';
import { recoverDataDirectory } from './offline-recovery.js';
import {
  exitOk, logDirectory, type OfflineOptions, type Output, snapshotDirectory, UsageError,
  usageFailed, withDataDirectory, type Write,
} from './tool-support.js';

export interface SnapshotCreateOptions extends OfflineOptions {
  /** Snapshots kept, newest first (the daemon's `retained`); at least 1. */
  keep: number;
}

/** The daemon's default (workers/writer/main.ts snapshotDefaults.retained). */
export const snapshotKeepDefault = 2;

export function snapshotCreate(options: SnapshotCreateOptions, output: Output): number {
  if (!Number.isSafeInteger(options.keep) || options.keep < 1) {
    return usageFailed(new UsageError(`--keep takes a count (an integer >= 1), not ${options.keep}`), output);
  }
  return withDataDirectory(options, 'strata snapshot create', output, () => {
    const write = output.write;
    const written = recoverAndWrite(options.dataDir, write);
    const removed = retain(options.dataDir, options.keep);
    for (const path of removed.snapshots) write(`removed snapshot ${path} (older than the newest ${options.keep})`);
    const oldest = removed.oldestKept;
    if (removed.segments.length > 0) {
      write(`removed ${removed.segments.length} log segment(s) wholly at or before revision ${oldest}: ` +
        removed.segments.join(' '));
    } else {
      write(`removed no log segment (${oldest === null ? 'no snapshot is kept' : 'none is wholly at or before ' +
        `revision ${oldest}, the oldest snapshot kept`}; the newest segment always stays)`);
    }
    write(`snapshot create: ${written === null ? 'no snapshot written' : `revision ${written.revision} in ` +
      `${written.path}, ${written.bytes} bytes`}; ${removed.snapshots.length} snapshot(s) and ` +
      `${removed.segments.length} log segment(s) removed`);
    return exitOk;
  });
}

/** Recovers the state and writes its snapshot; null when there is nothing new to write. */
function recoverAndWrite(dataDir: string, write: Write): SnapshotWriteResult | null {
  const { writer, arena, control, recovery } = recoverDataDirectory(dataDir);
  const revision = writer.revision;
  write(`recovered revision ${revision} in ${Math.round(recovery.ms)} ms: ` +
    `${recovery.snapshot === null ? 'no snapshot' : `snapshot ${recovery.snapshot.path}`} + ` +
    `${recovery.replayed} transaction(s) replayed from the log; ${writer.stats().taskCount} tasks, ` +
    `${writer.stats().configCount} configs`);
  if (recovery.torn !== null) {
    write(`note: torn tail in ${recovery.torn.file} at offset ${recovery.torn.offset} (never acknowledged): left ` +
      'as it is, the daemon cuts it off at its next start');
  }
  if (revision === 0) {
    write('nothing to snapshot: the state is empty (revision 0)');
    return null;
  }
  if (recovery.snapshot !== null && recovery.snapshot.revision === revision) {
    write(`nothing to snapshot: the newest snapshot is already at revision ${revision}`);
    return null;
  }
  const directory = snapshotDirectory(dataDir);
  mkdirSync(directory, { recursive: true });
  // The writer is idle and published `revision` last: slot -1 makes writeSnapshot pin that revision itself.
  const written = writeSnapshot({ arena, control, slotIndex: -1, root: 0, directory, revision, term: 0,
    idempotency: writer.idempotencyEntries() });
  write(`wrote ${written.path}: revision ${written.revision}, ${written.bytes} bytes, ${written.chunks} chunks, ` +
    `${written.tasks} tasks, ${written.configs} configs, in ${Math.round(written.ms)} ms`);
  return written;
}

/** The daemon's retention (workers/snapshot/retention.ts), offline. */
function retain(dataDir: string, keep: number): Retention {
  const logDir = logDirectory(dataDir);
  // (A WriteAheadLog that is not opened only reads and deletes: it never preallocates nor writes.)
  return retainSnapshots(dataDir, keep, (revision) => listSegments(logDir).length > 1 ?
    new WriteAheadLog({ dir: logDir }).removeBefore(revision, 0) : []);
}
