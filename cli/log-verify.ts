/**
 * `strata log verify`: every check recovery makes on the log, segment by segment so that one problem does not
 * hide the next, and optionally a replay of the whole log in an in-process WriterCore. Owner: the strata
 * process's main thread (offline, the data directory lock held).
 * Invariants: verify never reports a clean log that scanLog (what recovery runs) refuses: scanLog runs too, and
 * its error is added when the segment-by-segment pass missed it. Only a torn tail in the newest segment counts as
 * torn; anything else is corruption.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkedBuffer } from '../core/checked.js';
import { LogGroup } from '../core/fbs/strata.js';
import { decodeHeader, type FileHeader, FormatError, magicLog } from '../core/files.js';
import { listSegments, scanLog, scanSegment, type SegmentFile } from '../core/wal.js';
import { recover } from '../workers/writer/recover.js';
import { newOfflineWriter } from './offline-recovery.js';
import {
  dataDirectorySnapshots, exitFailure, exitOk, exitTornTail, logDirectory, type OfflineOptions,
  type Output, snapshotDirectory, withDataDirectory, type Write,
} from './tool-support.js';

export interface LogProblem {
  file: string;
  offset: number;
  revision: number | null;  // the revision expected at that point (null: not known there)
  message: string;
  torn: boolean;
}

export interface LogSummary {
  segments: number;
  groups: number;
  entries: number;
  noops: number;
  firstRevision: number;
  lastRevision: number;
  fileBytes: number;
  recordBytes: number;
}

export interface LogCheck { summary: LogSummary; problems: LogProblem[] }

interface Cursor {
  expected: number | null;      // the next revision, when known
  previous: { seq: number; name: string; lastCrc: number | null } | null;
}

/** Checks the log of `dataDir` (and that a snapshot can serve where it starts); never throws FormatError. */
export function checkLog(dataDir: string): LogCheck {
  const dir = logDirectory(dataDir);
  const files = listSegments(dir);
  const summary: LogSummary = { segments: files.length, groups: 0, entries: 0, noops: 0,
    firstRevision: files[0]?.firstRevision ?? 1, lastRevision: (files[0]?.firstRevision ?? 1) - 1, fileBytes: 0,
    recordBytes: 0 };
  const problems: LogProblem[] = [];
  const cursor: Cursor = { expected: files[0]?.firstRevision ?? null, previous: null };
  for (let i = 0; i < files.length; i++) {
    checkSegment(dir, files[i]!, i === files.length - 1, cursor, summary, problems);
  }
  if (cursor.expected !== null) summary.lastRevision = cursor.expected - 1;
  try {
    scanLog(dir, () => undefined);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    // The segment-by-segment pass names the cause (a missing segment) where scanLog may name a consequence (the
    // revisions of the next group): a second line for a file that already has one would only repeat it.
    if (!problems.some((p) => p.file === error.file)) {
      problems.push({ file: error.file, offset: error.offset, revision: null, message: error.message, torn: false });
    }
  }
  checkSnapshots(dataDir, summary, problems);
  return { summary, problems };
}

function checkSegment(dir: string, segment: SegmentFile, newest: boolean, cursor: Cursor, summary: LogSummary,
  problems: LogProblem[]): void {
  const file = join(dir, segment.name);
  const bytes = readFileSync(file);
  summary.fileBytes += bytes.length;
  const problem = (offset: number, message: string, torn = false) =>
    problems.push({ file, offset, revision: cursor.expected, message, torn });
  let header: FileHeader;
  try {
    header = decodeHeader(bytes, magicLog, file);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    problem(error.offset, error.reason);
    cursor.previous = { seq: segment.seq, name: segment.name, lastCrc: null };
    cursor.expected = null;
    return;
  }
  if (Number(header.a) !== segment.seq || Number(header.b) !== segment.firstRevision) {
    problem(48, `the header says segment ${header.a} from revision ${header.b}; the name disagrees (renamed?)`);
  }
  const previous = cursor.previous;
  if (previous !== null && segment.seq !== previous.seq + 1) {
    problem(0, `segment ${segment.seq} follows segment ${previous.seq} (${previous.name}): ` +
      `${segment.seq > previous.seq + 1 ? `segments ${previous.seq + 1}..${segment.seq - 1} are missing` :
        'out of order'}` + (cursor.expected !== null ? `, revisions from ${cursor.expected} on` : ''));
  } else {
    if (previous !== null && previous.lastCrc !== null && header.c !== previous.lastCrc) {
      problem(64, `the CRC chain from ${previous.name} is broken (stale or misplaced segment)`);
    }
    if (cursor.expected !== null && Number(header.b) !== cursor.expected) {
      problem(56, `starts at revision ${header.b}, expected ${cursor.expected}`);
    }
  }
  cursor.expected = Number(header.b);
  let lastCrc: number | null = null;
  try {
    const scan = scanSegment(bytes, file, newest, (record) => {
      summary.groups++;
      summary.recordBytes += record.end - record.offset;
      try {
        const group = LogGroup.getRootAsLogGroup(checkedBuffer(record.payload));
        const first = Number(group.firstRevision());
        if (cursor.expected !== null && first !== cursor.expected) {
          problem(record.offset, `the group starts at revision ${first}, expected ${cursor.expected}`);
        }
        let changes = 0;
        const count = group.entriesLength();
        for (let e = 0; e < count; e++) if (!group.entries(e)!.noop()) changes++;
        summary.entries += count;
        summary.noops += count - changes;
        cursor.expected = first + changes;
      } catch (error) {
        problem(record.offset, `the group does not decode: ${(error as Error).message}`);
        cursor.expected = null;
      }
    });
    lastCrc = scan.lastCrc;
    if (scan.torn !== null) {
      problem(scan.torn.offset, `${scan.torn.reason} (the daemon cuts it off at its next start)`, true);
    }
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    problem(error.offset, error.reason);
    cursor.expected = null; // the rest of this segment is unread: the next one is checked from its own header
  }
  cursor.previous = { seq: segment.seq, name: segment.name, lastCrc };
}

/** Recovery starts from the newest snapshot (or revision 0): the log must go on from there. */
function checkSnapshots(dataDir: string, summary: LogSummary, problems: LogProblem[]): void {
  const newest = dataDirectorySnapshots(dataDir)[0];
  const base = newest?.revision ?? 0;
  if (summary.segments === 0) return;
  if (summary.firstRevision > base + 1) {
    problems.push({ file: newest?.path ?? snapshotDirectory(dataDir), offset: 0, revision: null, torn: false,
      message: `the log starts at revision ${summary.firstRevision} but ${newest === undefined ? 'there is no ' +
        'snapshot' : `the newest snapshot is at ${base}`}: revisions ${base + 1}..${summary.firstRevision - 1} are ` +
        'missing and the daemon cannot recover' });
  } else if (summary.lastRevision < base) {
    problems.push({ file: newest!.path, offset: 0, revision: null, torn: false,
      message: `the log ends at revision ${summary.lastRevision}, before the newest snapshot (${base})` });
  }
}

export function printCheck(check: LogCheck, dataDir: string, write: Write): void {
  const s = check.summary;
  write(`log ${logDirectory(dataDir)}: ${s.segments} segments, ${s.groups} groups, ${s.entries} entries ` +
    `(${s.noops} noop), revisions ${s.lastRevision >= s.firstRevision ? `${s.firstRevision}..${s.lastRevision}` :
      `none (starts at ${s.firstRevision})`}${check.problems.some((p) => !p.torn) ? ' (not all readable)' : ''}, ` +
    `${s.fileBytes} bytes in files (${s.recordBytes} in records)`);
  for (const p of check.problems) {
    write(`${p.torn ? 'torn tail' : 'problem'}: ${p.file} at offset ${p.offset}` +
      `${p.revision === null ? '' : ` (revision ${p.revision})`}: ${p.message}`);
  }
}

/** 0 clean, 4 when every problem is a torn tail, 1 otherwise. */
export function checkExitCode(check: LogCheck): number {
  if (check.problems.length === 0) return exitOk;
  return check.problems.every((p) => p.torn) ? exitTornTail : exitFailure;
}

/**
 * Replays the log in a WriterCore of this thread, as recovery does (workers/writer/recover.ts). Returns true when
 * it replayed, false when it diverged or failed, null when it was skipped (a log that does not start at revision
 * 1 needs the snapshot loader, which the offline tools do not have yet).
 */
export function replayLog(dataDir: string, write: Write): boolean | null {
  const dir = logDirectory(dataDir);
  const segments = listSegments(dir);
  if (segments.length === 0) {
    write('replay: skipped (the log is empty)');
    return null;
  }
  if (segments[0]!.firstRevision !== 1) {
    write(`replay: skipped: the log starts at revision ${segments[0]!.firstRevision}; replaying it needs the ` +
      'snapshot loader');
    return null;
  }
  const { writer } = newOfflineWriter();
  const start = performance.now();
  try {
    const recovery = recover(writer, dir, () => null);
    const stats = writer.stats();
    write(`replay: ${recovery.replayed} transactions re-executed to revision ${recovery.revision} in ` +
      `${Math.round(performance.now() - start)} ms: ${stats.taskCount} tasks, ${stats.configCount} configs`);
    return true;
  } catch (error) {
    write(`replay: FAILED: ${(error as Error).message}`);
    return false;
  }
}

export interface VerifyOptions extends OfflineOptions {
  /** Also re-execute the log (only when it starts at revision 1). */
  replay?: boolean;
}

export function logVerify(options: VerifyOptions, output: Output): number {
  return withDataDirectory(options, 'strata log verify', output, () => {
    const check = checkLog(options.dataDir);
    printCheck(check, options.dataDir, output.write);
    let code = checkExitCode(check);
    output.write(code === exitOk ? 'verify: clean' : code === exitTornTail ?
      'verify: torn tail only (the daemon cuts it off at its next start; nothing acknowledged is lost)' :
      `verify: ${check.problems.filter((p) => !p.torn).length} problem(s): the log is corrupt`);
    if (options.replay === true) {
      if (code === exitFailure) output.write('replay: skipped (the log is corrupt)');
      else if (replayLog(options.dataDir, output.write) === false) code = exitFailure;
    }
    return code;
  });
}
