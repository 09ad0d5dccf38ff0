/**
 * `strata log truncate --after REV`: removes every log entry after revision REV, keeping the cut bytes (and the
 * snapshots past REV) in <dataDir>/log/truncated-<UTC timestamp>/. Owner: the strata process's main thread
 * (offline, the lock held). Also the repair for a corrupt log: REV may be any revision before the corruption.
 *
 * Order, so that a crash at any point leaves a log that recovers (to REV or to where it was):
 *   1. copy the cut tail of REV's segment into the keep directory (fsync);
 *   2. move the snapshots past REV, then the later segments (newest first) into it (fsync both directories);
 *   3. rewrite REV's segment through <name>.tmp + rename: the group holding REV keeps only its entries up to
 *      REV (re-encoded, framed with the same seed), and the rest of the segment is zeros.
 * Invariants: nothing is removed before a copy of it is durable; the kept segment keeps its size, name, header and
 * every record before the cut byte for byte.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { decodeGroup, frameRecord, recordBytes, recordGroup } from '../core/wal.js';
import { fsyncDirectory, headerBytes } from '../core/files.js';
import { checkExitCode, checkLog, printCheck } from './log-verify.js';
import {
  dataEnd, encodeGroup, findRevision, groupPayload, type GroupItem, type LogRead, readLog, segmentPath,
} from './log-read.js';
import {
  dataDirectorySnapshots, exitOk, logDirectory, makeKeepDirectory, moveInto, moveSnapshots, type OfflineOptions,
  type Output, replaceFileSynced, snapshotFloor, UsageError, usageFailed, withDataDirectory, writeFileSynced,
} from './tool-support.js';

export interface TruncateOptions extends OfflineOptions {
  /** Keep revisions up to and including this one. */
  after: number;
}

interface Cut {
  segmentIndex: number;
  offset: number;                 // the first byte that goes
  replacement: Uint8Array | null; // the group holding REV, re-encoded without its later entries, written at offset
  seed: number;                   // the replacement's chain seed
  what: string;
}

export function logTruncate(options: TruncateOptions, output: Output): number {
  if (!Number.isSafeInteger(options.after) || options.after < 0) {
    return usageFailed(new UsageError(`--after takes a revision (an integer >= 0), not ${options.after}`), output);
  }
  return withDataDirectory(options, 'strata log truncate', output, () => truncate(options, output));
}

function truncate(options: TruncateOptions, output: Output): number {
  const write = output.write;
  const after = options.after;
  const dir = logDirectory(options.dataDir);
  const read = readLog(dir);
  if (read.segments.length === 0) throw new UsageError(`the log (${dir}) is empty: nothing to truncate`);
  if (after < read.firstRevision - 1 || after > read.lastRevision) {
    throw new UsageError(`--after ${after} is out of range: the log holds revisions ${read.firstRevision}..` +
      `${read.lastRevision}${read.corruption === null ? '' : ' (readable, before the corruption)'}, so --after ` +
      `takes ${read.firstRevision - 1}..${read.lastRevision}`);
  }
  const floor = snapshotFloor(options.dataDir, read.firstRevision);
  if (floor !== null && after < floor) {
    throw new UsageError(`--after ${after} would move away every snapshot the log continues from (it starts at ` +
      `revision ${read.firstRevision}; the oldest snapshot past ${read.firstRevision - 1} is at ${floor}), so ` +
      `--after takes ${floor}..${read.lastRevision}`);
  }
  if (read.corruption !== null) write(`note: the log is corrupt (${read.corruption.message}); cutting before it`);
  const cut = findCut(read, after);
  const path = segmentPath(read, cut.segmentIndex);
  const bytes = readFileSync(path);
  const tailEnd = dataEnd(bytes, cut.offset);
  const later = read.segments.slice(cut.segmentIndex + 1);
  const snapshots = dataDirectorySnapshots(options.dataDir).filter((snapshot) => snapshot.revision > after);
  if (tailEnd === cut.offset && later.length === 0 && snapshots.length === 0) {
    write(`nothing to truncate: the log ends at revision ${after}`);
    return exitOk;
  }
  const keep = makeKeepDirectory(dir, 'truncated');
  if (tailEnd > cut.offset) {
    const copy = join(keep, `${basename(path)}.from-${cut.offset}`);
    writeFileSynced(copy, bytes.subarray(cut.offset, tailEnd));
    write(`kept ${tailEnd - cut.offset} bytes of ${basename(path)} from offset ${cut.offset} in ${copy}`);
  }
  for (const name of moveSnapshots(options.dataDir, keep, (revision) => revision > after)) {
    write(`moved snapshot ${name} (past revision ${after}) to ${keep}`);
  }
  for (let i = later.length - 1; i >= 0; i--) moveInto(join(dir, later[i]!.name), keep);
  fsyncDirectory(keep);
  fsyncDirectory(dir);
  if (later.length > 0) {
    write(`moved ${later.length} later segment(s) to ${keep}: ${later.map((s) => s.name).join(' ')}`);
  }
  if (tailEnd > cut.offset) replaceFileSynced(path, cutSegment(bytes, cut));
  write(`truncated after revision ${after} in ${basename(path)} at offset ${cut.offset} (${cut.what}); ` +
    `the cut bytes are in ${keep}`);
  const check = checkLog(options.dataDir);
  printCheck(check, options.dataDir, write);
  return checkExitCode(check);
}

/** Where the log is cut so that REV is its last revision. */
function findCut(read: LogRead, after: number): Cut {
  if (after === read.firstRevision - 1) {
    const corruption = read.corruption;
    if (corruption !== null && corruption.file === segmentPath(read, 0) && corruption.offset < headerBytes) {
      throw new Error(`the first segment's header is corrupt: no part of the log can be kept (${corruption.message})`);
    }
    return { segmentIndex: 0, offset: headerBytes, replacement: null, seed: 0, what: 'no entry kept' };
  }
  const found = findRevision(read, after);
  if (found === null) throw new Error(`revision ${after} is not in the log (a bug: it is in range)`);
  const position = read.groups[found.group]!;
  if (found.entry === position.entryCount - 1) {
    return { segmentIndex: position.segmentIndex, offset: position.end, replacement: null, seed: position.crc,
      what: `after the group of revisions ${position.firstRevision}..${position.lastRevision}` };
  }
  const old = decodeGroup(groupPayload(found.bytes, position));
  const items: GroupItem[] = [];
  for (let e = 0; e <= found.entry; e++) items.push(old.entries(e)!);
  return { segmentIndex: position.segmentIndex, offset: position.offset, seed: position.seedBefore,
    replacement: encodeGroup(old, position.firstRevision, items),
    what: `the group of revisions ${position.firstRevision}..${position.lastRevision} re-encoded with its first ` +
      `${items.length} of ${position.entryCount} entries` };
}

/** The segment's new bytes: everything before the cut, the re-encoded group if any, then zeros. */
function cutSegment(bytes: Buffer, cut: Cut): Buffer {
  let next = bytes;
  let zeroFrom = cut.offset;
  if (cut.replacement !== null) {
    const end = cut.offset + recordBytes(cut.replacement.length);
    if (end > next.length) next = Buffer.concat([next, Buffer.alloc(end - next.length)]);
    frameRecord(next, cut.offset, cut.replacement, recordGroup, cut.seed);
    zeroFrom = end;
  }
  next.fill(0, zeroFrom);
  return next;
}
