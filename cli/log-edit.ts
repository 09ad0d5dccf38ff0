/**
 * `strata log edit --revision REV (--drop | --replace FILE)`: a new valid log where the transaction at REV is
 * dropped (later revisions shift down by one) or replaced by a FlatBuffers Transaction. Owner: the strata
 * process's main thread (offline, the lock held).
 *
 * The segment holding REV and every later one are rewritten, one new segment per old one (same sequence numbers):
 * records before REV's group are copied as they are, REV's group is re-encoded, later groups get their new first
 * revision, and the CRC chain is re-seeded from the last untouched record. Install order, so that a crash leaves
 * either the old log or a valid prefix of the new one:
 *   1. write every new segment as <name>.edit.tmp and fsync it;
 *   2. move the snapshots at or past REV, then the old segments (newest first), into <dataDir>/log/edited-<UTC>/;
 *   3. rename the new segments into place (oldest first), fsync the directory.
 * Then the result is checked as `strata log verify` does, and replayed when the log starts at revision 1.
 * Invariants: the log is never edited when any part of it is corrupt; an old segment is moved only after every
 * new one is durable.
 */
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { checkedBuffer } from '../core/checked.js';
import { Transaction } from '../core/fbs/strata.js';
import { decodeHeader, encodeHeader, fsyncDirectory, headerBytes, magicLog } from '../core/files.js';
import { transactionBytesMax } from '../core/limits.js';
import { decodeGroup, frameRecord, recordBytes, recordGroup, segmentName } from '../core/wal.js';
import { checkExitCode, checkLog, printCheck, replayLog } from './log-verify.js';
import {
  encodeGroup, findRevision, groupPayload, type GroupItem, type GroupPosition, type LogRead, readLog, segmentPath,
  withFirstRevision,
} from './log-read.js';
import {
  exitFailure, exitOk, logDirectory, makeKeepDirectory, moveInto, moveSnapshots, type OfflineOptions, type Output,
  snapshotFloor, UsageError, usageFailed, withDataDirectory, writeFileSynced,
} from './tool-support.js';

export interface EditOptions extends OfflineOptions {
  revision: number;
  drop?: boolean;
  /** A file holding one binary FlatBuffers Transaction. */
  replace?: string;
  /** Replay the result (when the log starts at revision 1); default true. */
  replay?: boolean;
}

interface NewSegment { name: string; bytes: Buffer }

export function logEdit(options: EditOptions, output: Output): number {
  let replacement: Uint8Array | null;
  try {
    if (!Number.isSafeInteger(options.revision) || options.revision < 1) {
      throw new UsageError(`--revision takes a revision (an integer >= 1), not ${options.revision}`);
    }
    if ((options.drop === true) === (options.replace !== undefined)) {
      throw new UsageError('give exactly one of --drop and --replace FILE');
    }
    replacement = options.replace === undefined ? null : readReplacement(options.replace);
  } catch (error) {
    return usageFailed(error, output);
  }
  return withDataDirectory(options, 'strata log edit', output, () => edit(options, replacement, output));
}

/** The Transaction in `path`, checked to decode completely (replay checks what it does). */
export function readReplacement(path: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new UsageError(`--replace ${path}: ${(error as Error).message}`);
  }
  const first = bytes.toString('latin1', 0, 64).trimStart()[0];
  if (first === '{' || first === '[') {
    throw new UsageError(`--replace ${path}: looks like JSON; --replace takes a binary FlatBuffers Transaction ` +
      '(make one with: flatc -b --root-type strata.fbs.Transaction schema.fbs FILE.json)');
  }
  if (bytes.length < 8 || bytes.length > transactionBytesMax) {
    throw new UsageError(`--replace ${path}: ${bytes.length} bytes is not a Transaction (8..${transactionBytesMax})`);
  }
  try {
    const transaction = Transaction.getRootAsTransaction(checkedBuffer(bytes));
    transaction.unpack();
    if (transaction.opsLength() === 0) throw new Error('it has no operations');
  } catch (error) {
    throw new UsageError(`--replace ${path}: not a FlatBuffers Transaction: ${(error as Error).message}`);
  }
  return new Uint8Array(bytes);
}

function edit(options: EditOptions, replacement: Uint8Array | null, output: Output): number {
  const write = output.write;
  const revision = options.revision;
  const dir = logDirectory(options.dataDir);
  const read = readLog(dir);
  if (read.corruption !== null) {
    (output.writeError ?? write)(`strata: the log is corrupt (${read.corruption.message}); edit needs a readable ` +
      'log: see strata log verify, and strata log truncate to cut the corruption off first');
    return exitFailure;
  }
  if (revision < read.firstRevision || revision > read.lastRevision) {
    throw new UsageError(`--revision ${revision} is out of range: the log holds revisions ` +
      `${read.firstRevision}..${read.lastRevision}`);
  }
  const floor = snapshotFloor(options.dataDir, read.firstRevision);
  if (floor !== null && revision <= floor) {
    throw new UsageError(`--revision ${revision} would move away every snapshot the log continues from (it starts ` +
      `at revision ${read.firstRevision}; the oldest snapshot past ${read.firstRevision - 1} is at ${floor}), so ` +
      `--revision takes ${floor + 1}..${read.lastRevision}`);
  }
  const found = findRevision(read, revision)!;
  const start = read.groups[found.group]!;
  if (read.torn !== null) write(`note: the torn tail of ${basename(read.torn.file)} is not carried over`);
  const segments = rewrite(read, start, found.entry, found.bytes, replacement);
  const keep = install(options.dataDir, read, start.segmentIndex, segments, revision, write);
  write(`${replacement === null ? `dropped revision ${revision} (later revisions shift down by one)` :
    `replaced revision ${revision} with ${options.replace}`}: rewrote ${segments.length} segment(s) from ` +
    `${read.segments[start.segmentIndex]!.name}; the old ones are in ${keep}`);
  const check = checkLog(options.dataDir);
  printCheck(check, options.dataDir, write);
  let code = checkExitCode(check);
  if (code === exitOk && options.replay !== false && replayLog(options.dataDir, write) === false) code = exitFailure;
  if (code !== exitOk) {
    write(`edit: the new log does not check or replay; to undo, remove ${segments.map((s) => s.name).join(' ')} ` +
      `from ${dir} and move the .log files of ${keep} back`);
  }
  return code;
}

/** The new segments from REV's segment on. */
function rewrite(read: LogRead, start: GroupPosition, entry: number, startBytes: Buffer,
  replacement: Uint8Array | null): NewSegment[] {
  const segments: NewSegment[] = [];
  const shift = replacement === null ? -1 : 0;
  let seed = start.seedBefore;
  let revision = start.firstRevision;
  let g = read.groups.indexOf(start);
  for (let s = start.segmentIndex; s < read.segments.length; s++) {
    const segment = read.segments[s]!;
    const oldBytes = s === start.segmentIndex ? startBytes : readFileSync(segmentPath(read, s));
    let bytes = Buffer.alloc(oldBytes.length);
    let at: number;
    if (s === start.segmentIndex) {
      oldBytes.copy(bytes, 0, 0, start.offset); // its header and the records before REV's group, as they are
      at = start.offset;
    } else {
      const header = decodeHeader(oldBytes, magicLog, segmentPath(read, s));
      encodeHeader(magicLog, BigInt(segment.seq), BigInt(revision), seed, header.d).copy(bytes, 0);
      at = headerBytes;
    }
    const firstRevision = s === start.segmentIndex ? segment.firstRevision : revision;
    for (; g < read.groups.length && read.groups[g]!.segmentIndex === s; g++) {
      const position = read.groups[g]!;
      const before = groupPayload(oldBytes, position);
      const payload = position === start ? editedGroup(before, position, entry, replacement)
        : shift === 0 ? before : withFirstRevision(before, revision);
      if (payload === null) continue;
      const end = at + recordBytes(payload.length);
      if (end > bytes.length) bytes = Buffer.concat([bytes, Buffer.alloc(end - bytes.length)]);
      seed = frameRecord(bytes, at, payload, recordGroup, seed);
      at = end;
      revision += changes(payload);
    }
    segments.push({ name: segmentName(segment.seq, firstRevision), bytes });
  }
  return segments;
}

/** REV's group without the entry (null when nothing is left) or with the replacement in its place. */
function editedGroup(payload: Uint8Array, position: GroupPosition, entry: number, replacement: Uint8Array | null):
  Uint8Array | null {
  const old = decodeGroup(payload);
  const items: GroupItem[] = [];
  for (let e = 0; e < old.entriesLength(); e++) {
    if (e !== entry) items.push(old.entries(e)!);
    else if (replacement !== null) items.push(replacement);
  }
  return items.length === 0 ? null : encodeGroup(old, position.firstRevision, items);
}

function changes(payload: Uint8Array): number {
  const group = decodeGroup(payload);
  let count = 0;
  for (let e = 0; e < group.entriesLength(); e++) if (!group.entries(e)!.noop()) count++;
  return count;
}

/** Installs the new segments (see the order in the module comment); returns the keep directory. */
function install(dataDir: string, read: LogRead, from: number, segments: NewSegment[], revision: number,
  write: (line: string) => void): string {
  const dir = read.dir;
  const tmp = (segment: NewSegment) => join(dir, `${segment.name}.edit.tmp`);
  try {
    for (const segment of segments) {
      rmSync(tmp(segment), { force: true }); // left by an edit that crashed before its renames
      writeFileSynced(tmp(segment), segment.bytes);
    }
    fsyncDirectory(dir);
  } catch (error) {
    for (const segment of segments) rmSync(tmp(segment), { force: true }); // nothing was changed yet
    throw error;
  }
  const keep = makeKeepDirectory(dir, 'edited');
  for (const name of moveSnapshots(dataDir, keep, (snapshot) => snapshot >= revision)) {
    write(`moved snapshot ${name} (at or past revision ${revision}) to ${keep}`);
  }
  for (let s = read.segments.length - 1; s >= from; s--) moveInto(segmentPath(read, s), keep);
  fsyncDirectory(keep);
  fsyncDirectory(dir);
  for (const segment of segments) renameSync(tmp(segment), join(dir, segment.name));
  fsyncDirectory(dir);
  return keep;
}
