/**
 * The log as the offline tools that change it see it: where every group record is (segment, offset, chain seed,
 * revisions), read once with core/wal.ts scanLog, and the two ways a group is rewritten (a subset of its entries
 * re-encoded, or its first revision moved). Owner: the strata process's main thread (offline, the lock held).
 * Invariants: a position is recorded only for a record whose CRC checked and whose revisions continue the log;
 * a rewritten group encodes its entries exactly as the writer does (core/log-entry.ts LogGroupBuilder), so
 * that replay reads it like any other.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import * as flatbuffers from 'flatbuffers';
import { assert } from '../core/assert.js';
import { LogEntry, LogGroup, Transaction } from '../core/fbs/strata.js';
import { decodeHeader, FormatError, headerBytes, magicLog } from '../core/files.js';
import { entryTransaction, LogGroupBuilder } from '../core/log-entry.js';
import { decodeGroup, listSegments, recordHeaderBytes, scanLog, type SegmentFile } from '../core/wal.js';

export interface GroupPosition {
  segmentIndex: number;   // in LogRead.segments
  offset: number;         // of the record header
  end: number;            // after the record (padding included)
  payloadBytes: number;
  crc: number;            // the record's CRC: the seed of the next record
  seedBefore: number;     // the previous record's CRC (or the segment header's seed): this record's seed
  firstRevision: number;
  lastRevision: number;   // firstRevision - 1 when every entry is a noop
  entryCount: number;
}

export interface LogRead {
  dir: string;
  segments: SegmentFile[];       // every segment file, oldest first (those after a corruption too)
  groups: GroupPosition[];       // the readable groups, in order
  firstRevision: number;         // the first segment's first revision (1 for an empty log)
  lastRevision: number;          // the last readable revision (firstRevision - 1 when none)
  corruption: FormatError | null; // where scanLog stopped, if it did
  torn: { file: string; offset: number; reason: string } | null;
}

function segmentSeed(path: string): number {
  const header = Buffer.alloc(headerBytes);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, headerBytes, 0);
  } finally {
    closeSync(fd);
  }
  return decodeHeader(header, magicLog, path).c;
}

/**
 * Reads the positions of every readable group. Corruption does not throw: it ends the readable part, and when it
 * is in a segment's header (offset < 128) none of that segment's groups count.
 */
export function readLog(dir: string): LogRead {
  const segments = listSegments(dir);
  const indexByPath = new Map<string, number>();
  for (let i = 0; i < segments.length; i++) indexByPath.set(join(dir, segments[i]!.name), i);
  const groups: GroupPosition[] = [];
  let previousFile = '';
  let previousCrc = 0;
  let corruption: FormatError | null = null;
  let torn: LogRead['torn'] = null;
  try {
    torn = scanLog(dir, (record) => {
      const seedBefore = record.file === previousFile ? previousCrc : segmentSeed(record.file);
      previousFile = record.file;
      previousCrc = record.crc;
      groups.push({
        segmentIndex: indexByPath.get(record.file)!, offset: record.offset, end: record.end,
        payloadBytes: record.payload.length, crc: record.crc, seedBefore, firstRevision: record.firstRevision,
        lastRevision: record.lastRevision, entryCount: record.group.entriesLength(),
      });
    }).torn;
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    corruption = error;
    if (error.offset < headerBytes) {
      const index = indexByPath.get(error.file);
      while (groups.length > 0 && groups.at(-1)!.segmentIndex === index) groups.pop();
    }
  }
  const firstRevision = segments[0]?.firstRevision ?? 1;
  const lastRevision = groups.length === 0 ? firstRevision - 1 : groups.at(-1)!.lastRevision;
  return { dir, segments, groups, firstRevision, lastRevision, corruption, torn };
}

export function segmentPath(read: LogRead, index: number): string {
  return join(read.dir, read.segments[index]!.name);
}

/** The group record's payload in `bytes` (the segment file's bytes). */
export function groupPayload(bytes: Uint8Array, position: GroupPosition): Uint8Array {
  const start = position.offset + recordHeaderBytes;
  return bytes.subarray(start, start + position.payloadBytes);
}

/** The group that holds revision `revision` (a changing entry), and that entry's index in it; null: none. */
export function findRevision(read: LogRead, revision: number): { group: number; entry: number; bytes: Buffer } | null {
  for (let g = 0; g < read.groups.length; g++) {
    const position = read.groups[g]!;
    if (revision < position.firstRevision || revision > position.lastRevision) continue;
    const bytes = readFileSync(segmentPath(read, position.segmentIndex));
    const group = decodeGroup(groupPayload(bytes, position));
    let at = position.firstRevision - 1;
    for (let e = 0; e < group.entriesLength(); e++) {
      if (group.entries(e)!.noop()) continue;
      if (++at === revision) return { group: g, entry: e, bytes };
    }
  }
  return null;
}

/** What goes into a rewritten group: an entry of the old group, or new transaction bytes. */
export type GroupItem = LogEntry | Uint8Array;

const groupBuilder = new LogGroupBuilder();

/**
 * A group payload made of `items` in order, from `firstRevision`, with the old group's term. Entries keep their
 * form (compact or general), key and noop flag; new transaction bytes become general, changing entries.
 * (Not LogGroupT.pack(): the object API writes an empty `transaction` vector into every compact entry, and
 * entryTransaction() would then read that empty vector as the transaction.)
 */
export function encodeGroup(old: LogGroup, firstRevision: number, items: GroupItem[]): Uint8Array {
  const b = groupBuilder;
  b.begin(firstRevision, Number(old.term()));
  for (const item of items) {
    if (item instanceof Uint8Array) {
      b.addGeneral(item, false);
      continue;
    }
    const noop = item.noop();
    if (item.transition() === null) {
      const nested = item.transactionArray();
      if (nested === null) throw new Error('a log entry with neither a transaction nor a transition');
      b.addGeneral(nested, noop);
      continue;
    }
    const transaction = Transaction.getRootAsTransaction(new flatbuffers.ByteBuffer(entryTransaction(item)));
    const key = item.idempotency();
    b.addCompact(transaction, key?.clientId() ?? null, key?.sequence() ?? 0n, noop);
  }
  const payload = b.finish().slice();
  assert(Number(decodeGroup(payload).firstRevision()) === firstRevision);
  assert(decodeGroup(payload).entriesLength() === items.length);
  return payload;
}

/** A copy of a group payload whose first_revision is `firstRevision`, every other byte as it was. */
export function withFirstRevision(payload: Uint8Array, firstRevision: number): Uint8Array {
  const copy = payload.slice();
  const group = decodeGroup(copy);
  const field = group.bb!.__offset(group.bb_pos, 4);
  // The writer never writes a group at revision 0 (the default, which FlatBuffers leaves out), so the field is
  // there; re-encode in the unexpected case that it is not.
  if (field === 0) {
    const items: GroupItem[] = [];
    for (let e = 0; e < group.entriesLength(); e++) items.push(group.entries(e)!);
    return encodeGroup(group, firstRevision, items);
  }
  new DataView(copy.buffer, copy.byteOffset, copy.byteLength).setBigInt64(group.bb_pos + field, BigInt(firstRevision),
    true);
  assert(Number(decodeGroup(copy).firstRevision()) === firstRevision);
  return copy;
}

/** The offset after the last nonzero byte of `bytes` (at least `from`), rounded up to a multiple of 8. */
export function dataEnd(bytes: Uint8Array, from: number): number {
  let end = bytes.length;
  while (end > from && bytes[end - 1] === 0) end--;
  return end <= from ? from : Math.min(bytes.length, (end + 7) & ~7);
}
