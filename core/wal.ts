/**
 * The write-ahead log's on-disk format: segment files of framed, chained, checksummed records. Owner: any thread
 * (the writer appends with workers/writer/log.ts; recovery and the offline tools read with scanLog below).
 *
 * Segment file `<seq %016x>-<first revision %016x>.log`: a 128-byte header (core/files.ts, magic STRATLOG,
 * a = seq, b = first revision, c = CRC seed, d = term), then records from offset 128, then zeros (preallocated).
 * Record (8-byte aligned, so that a length field never straddles a sector):
 *   0  u32 payload length (1 .. recordBytesMax)
 *   4  u8  type (recordGroup = 1)
 *   5  u8  padding bytes after the payload (0..7)
 *   6  u16 zero
 *   8  u32 CRC-32C of bytes 0..8 and the payload, seeded with the previous record's CRC (the segment's first
 *      record: the header's seed, which is the last CRC of the previous segment). The chain makes stale or
 *      misplaced bytes fail the check even when they are a well-formed record of their own.
 *  12  payload (a LogGroup FlatBuffer), then zero padding to a multiple of 8
 * End of data: a zero length and type. Torn tail (only in the newest segment): a record that runs past the end
 * of the file, or fails its check while some 512-byte sector of it (clipped to the record) is all zeros, which is
 * what a write that never reached the disk leaves in a preallocated segment (tornReason); or a zero header with
 * data after it. Anything else that fails is corruption, and recovery stops.
 * Invariants: revisions are consecutive across records and segments (noop entries take none); segment sequence
 * numbers are consecutive; a reader never trusts a byte a CRC has not covered.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as flatbuffers from 'flatbuffers';
import { checkedBuffer } from './checked.js';
import { crc32c } from './crc32c.js';
import { LogGroup } from './fbs/strata.js';
import { decodeHeader, FormatError, headerBytes, magicLog, type FileHeader } from './files.js';

export const recordHeaderBytes = 12;
export const recordGroup = 1;
export const recordBytesMax = 1024 * 1024 * 1024; // > groupBytesMax + one transactionBytesMax: a group record always fits
export const sectorBytes = 512;
export const segmentBytesDefault = 64 * 1024 * 1024;

const hex16 = (value: number | bigint): string => value.toString(16).padStart(16, '0');

export function segmentName(seq: number, firstRevision: number): string {
  return `${hex16(seq)}-${hex16(firstRevision)}.log`;
}

export interface SegmentFile { name: string; seq: number; firstRevision: number }

/** The log segments of `dir`, oldest first (files that do not match the name pattern are ignored). */
export function listSegments(dir: string): SegmentFile[] {
  const segments: SegmentFile[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  for (const name of names) {
    const match = /^([0-9a-f]{16})-([0-9a-f]{16})\.log$/.exec(name);
    if (match === null) continue;
    segments.push({ name, seq: parseInt(match[1]!, 16), firstRevision: parseInt(match[2]!, 16) });
  }
  return segments.sort((a, b) => a.seq - b.seq);
}

/** Bytes a record of `payloadBytes` takes, padding included. */
export function recordBytes(payloadBytes: number): number {
  return (recordHeaderBytes + payloadBytes + 7) & ~7;
}

/**
 * Frames `payload` at `offset` of `target` (which must have recordBytes(payload.length) bytes there, zeroed
 * padding is written too) and returns the record's CRC, the seed of the next one.
 */
export function frameRecord(target: Uint8Array, offset: number, payload: Uint8Array, type: number, seed: number): number {
  const total = recordBytes(payload.length);
  const pad = total - recordHeaderBytes - payload.length;
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  view.setUint32(offset, payload.length, true);
  target[offset + 4] = type;
  target[offset + 5] = pad;
  target[offset + 6] = 0;
  target[offset + 7] = 0;
  target.set(payload, offset + recordHeaderBytes);
  target.fill(0, offset + recordHeaderBytes + payload.length, offset + total);
  const crc = crc32c(payload, crc32c(target, seed, offset, offset + 8));
  view.setUint32(offset + 8, crc, true);
  return crc;
}

export interface LogRecord {
  file: string;
  offset: number;     // of the record header in the file
  end: number;        // offset after the record (padding included)
  type: number;
  payload: Uint8Array;
  crc: number;
}

export interface SegmentScan {
  header: FileHeader;
  validEnd: number;   // offset after the last valid record
  lastCrc: number;
  torn: { offset: number; reason: string } | null;
}

function allZero(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Offset after the last nonzero byte of `bytes` (0 when all are zero), read from the end. */
function dataEnd(bytes: Uint8Array): number {
  let end = bytes.length;
  // A preallocated segment ends in up to 64 MiB of zeros: skip them 4 bytes at a time where aligned.
  const base = bytes.byteOffset;
  while (end > 0 && ((base + end) & 3) !== 0 && bytes[end - 1] === 0) end--;
  if (((base + end) & 3) === 0) {
    const first = (base + 3) & ~3; // the first aligned byte of the view, as an offset into the buffer
    const words = new Uint32Array(bytes.buffer, first, (base + end - first) >>> 2);
    let w = words.length;
    while (w > 0 && words[w - 1] === 0) w--;
    end = first - base + 4 * w;
  }
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end;
}

/**
 * Why a bad record at `offset` is a torn write rather than corruption, or null when it is corruption. A torn
 * write is the last write the log made: nothing after the record holds data (preallocated zeros to the end of the
 * file), and the record itself runs past the end of the file, or some 512-byte sector of it (clipped to the
 * record) is still zero: a write that did not reach the disk. A flipped bit in a record that has data after it is
 * corruption, whatever it looks like.
 */
function tornReason(bytes: Uint8Array, offset: number, end: number): string | null {
  if (dataEnd(bytes) > Math.min(end, bytes.length)) return null;
  if (end > bytes.length) return 'the record runs past the end of the file';
  const firstSector = Math.ceil(offset / sectorBytes) * sectorBytes;
  for (let s = firstSector; s < end; s += sectorBytes) {
    if (allZero(bytes, s, Math.min(s + sectorBytes, end))) return `a sector at ${s} of the record is all zeros`;
  }
  return null;
}

/**
 * Reads one segment's records, calling onRecord for each valid one. `newest`: this is the last segment, where a
 * torn record ends the log (reported in the result); anywhere else a bad record throws FormatError.
 */
export function scanSegment(bytes: Uint8Array, file: string, newest: boolean, onRecord: (record: LogRecord) => void):
  SegmentScan {
  const header = decodeHeader(bytes, magicLog, file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = headerBytes;
  let seed = header.c;
  let torn: SegmentScan['torn'] = null;
  while (offset + recordHeaderBytes <= bytes.length) {
    const length = view.getUint32(offset, true);
    const type = bytes[offset + 4]!;
    if (length === 0 && type === 0) {
      // End of data, when only zeros follow. Nonzero bytes after a zero header: a record whose first sectors were
      // lost (torn) when they are within one record's reach and the last data of the newest segment; otherwise
      // corruption.
      const last = dataEnd(bytes);
      if (last > offset) {
        if (!newest || last - offset > recordBytesMax) {
          throw new FormatError(file, offset, 'zero record header followed by data (corruption)');
        }
        torn = { offset, reason: 'a zero record header followed by nonzero bytes' };
      }
      break;
    }
    const end = offset + recordBytes(length);
    const pad = bytes[offset + 5]!;
    let bad: string | null = null;
    if (length > recordBytesMax || type !== recordGroup || pad !== end - offset - recordHeaderBytes - length ||
      bytes[offset + 6] !== 0 || bytes[offset + 7] !== 0) {
      bad = `bad record header (length ${length}, type ${type})`;
    } else if (end > bytes.length) {
      bad = 'the record runs past the end of the file';
    } else {
      const crc = crc32c(bytes, crc32c(bytes, seed, offset, offset + 8), offset + recordHeaderBytes,
        offset + recordHeaderBytes + length);
      if (crc !== view.getUint32(offset + 8, true)) bad = 'CRC mismatch';
      else {
        onRecord({ file, offset, end, type, payload: bytes.subarray(offset + recordHeaderBytes, offset + recordHeaderBytes + length), crc });
        seed = crc;
        offset = end;
        continue;
      }
    }
    const reason = tornReason(bytes, offset, end);
    if (newest && reason !== null) {
      torn = { offset, reason: `${bad}; ${reason}` };
      break;
    }
    throw new FormatError(file, offset, `${bad} (corruption, not a torn write)`);
  }
  return { header, validEnd: offset, lastCrc: seed, torn };
}

export interface LogGroupRecord extends LogRecord {
  group: LogGroup;
  firstRevision: number;
  lastRevision: number;  // the revision after the group (firstRevision - 1 when every entry is a noop)
}

export interface LogScan {
  segments: (SegmentFile & SegmentScan & { bytes: number })[];
  lastRevision: number;  // the revision after the last valid group (or the first segment's first revision - 1)
  lastCrc: number;
  torn: { file: string; offset: number; reason: string } | null;
}

/**
 * Reads the segments of `dir` in order (from the one holding fromRevision + 1), checking CRCs, the chain across
 * segments, consecutive sequence numbers and consecutive revisions; calls onGroup for each group. Throws
 * FormatError at the first corruption.
 */
export function scanLog(dir: string, onGroup: (record: LogGroupRecord) => void, fromRevision = 0): LogScan {
  // Segments wholly at or below fromRevision (the next one starts at or before fromRevision + 1) are not read:
  // recovery after a snapshot needs only the rest, and the first segment read carries its chain seed.
  let files = listSegments(dir);
  let skip = 0;
  // (Strictly below: a segment whose successor starts at fromRevision + 1 may end with noop entries logged at
  // fromRevision after the snapshot was taken.)
  while (skip + 1 < files.length && files[skip + 1]!.firstRevision <= fromRevision) skip++;
  files = files.slice(skip);
  const result: LogScan = { segments: [], lastRevision: 0, lastCrc: 0, torn: null };
  let expectRevision = -1;
  let previous: (SegmentFile & SegmentScan) | null = null;
  for (let i = 0; i < files.length; i++) {
    const segment = files[i]!;
    const file = join(dir, segment.name);
    const bytes = readFileSync(file);
    const newest = i === files.length - 1;
    if (previous === null) {
      expectRevision = segment.firstRevision;
      result.lastRevision = segment.firstRevision - 1;
    }
    const scan = scanSegment(bytes, file, newest, (record) => {
      let group: LogGroup;
      let first: number;
      let changes = 0;
      try {
        group = LogGroup.getRootAsLogGroup(checkedBuffer(record.payload));
        first = Number(group.firstRevision());
        if (first !== expectRevision) {
          throw new Error(`the group starts at revision ${first}, expected ${expectRevision}`);
        }
        const count = group.entriesLength();
        for (let e = 0; e < count; e++) if (!group.entries(e)!.noop()) changes++;
      } catch (error) {
        throw new FormatError(file, record.offset, `after revision ${expectRevision - 1}: ${(error as Error).message}`);
      }
      expectRevision = first + changes;
      // What the caller throws (a replay that diverged, a bug, a full arena) keeps its own kind and code.
      onGroup({ ...record, group, firstRevision: first, lastRevision: first + changes - 1 });
    });
    if (Number(scan.header.a) !== segment.seq || Number(scan.header.b) !== segment.firstRevision) {
      throw new FormatError(file, 48, `header says segment ${scan.header.a} from revision ${scan.header.b}; the name disagrees`);
    }
    if (previous !== null) {
      if (segment.seq !== previous.seq + 1) {
        throw new FormatError(file, 0, `segment ${segment.seq} follows segment ${previous.seq}: one is missing`);
      }
      if (scan.header.c !== previous.lastCrc) {
        throw new FormatError(file, 64, `the CRC chain from ${previous.name} is broken (stale or misplaced segment)`);
      }
    }
    if (segment.firstRevision !== (previous === null ? segment.firstRevision : result.lastRevision + 1)) {
      throw new FormatError(file, 56, `starts at revision ${segment.firstRevision}, expected ${result.lastRevision + 1}`);
    }
    result.lastRevision = expectRevision - 1;
    result.lastCrc = scan.lastCrc;
    if (scan.torn !== null) result.torn = { file, ...scan.torn };
    const entry = { ...segment, ...scan, bytes: bytes.length };
    result.segments.push(entry);
    previous = entry;
  }
  return result;
}

/** A LogGroup from a payload (for tools holding a record). */
export function decodeGroup(payload: Uint8Array): LogGroup {
  return LogGroup.getRootAsLogGroup(new flatbuffers.ByteBuffer(payload));
}
