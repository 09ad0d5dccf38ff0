/**
 * Reads snapshot files (docs/formats.md, "Snapshot file"): every frame checked (length, type, CRC chain, padding,
 * index), the end frame's counts against what the chunks held. Owner: any thread that reads a snapshot: the
 * writer at recovery (workers/writer/restore.ts), the offline tools (cli/snapshot-tools.ts).
 * Invariants: a chunk is handed out only after its CRC checked; a file that is not a whole, intact snapshot
 * throws FormatError naming the file and an offset: of the bad header field, of the first frame that is damaged or
 * not whole (a truncated file: the frame it ends in), or of bytes after the end frame; memory is one chunk.
 */
import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import * as flatbuffers from 'flatbuffers';
import { SnapshotChunk, SnapshotEnd } from '../../core/fbs/strata.js';
import {
  decodeHeader, FormatError, headerBytes, magicBackup, magicSnapshot, type FileHeader,
} from '../../core/files.js';
import { snapshotChunkBytesMax } from '../../core/limits.js';
import {
  frameBytes, frameCrc, frameCrcOffset, frameHeaderBytes, frameIndexOffset, frameLengthOffset, framePaddingBytes,
  frameTypeChunk, frameTypeEnd, frameTypeOffset, snapshotFileRevision,
} from '../../core/snapshot-format.js';

export interface SnapshotCounts {
  configs: number;
  tasks: number;
  cronJobs: number;
  jobUpdates: number;
  quotas: number;
  hosts: number;
  maintenance: number;
  idempotency: number;
}

export interface SnapshotInfo {
  path: string;
  revision: number;
  term: number;
  createdMs: number;
  version: number;
  schemaHashHex: string;
  counts: SnapshotCounts;
  bytes: number;            // the file's size
  chunks: number;           // chunk frames (the end frame not counted)
  endOffset: number;        // the end frame's offset
}

/** Where a chunk is in its file, for messages and tools. */
export interface ChunkPlace {
  path: string;
  index: number;
  offset: number;           // the frame's offset
  bytes: number;            // its payload's length
  revision: number;         // the snapshot's revision (from the header)
}

function emptyCounts(): SnapshotCounts {
  return { configs: 0, tasks: 0, cronJobs: 0, jobUpdates: 0, quotas: 0, hosts: 0, maintenance: 0, idempotency: 0 };
}

/** A file opened for reading frames in order, with the CRC chain. */
class FrameReader {
  readonly path: string;
  readonly fd: number;
  readonly size: number;
  readonly header: FileHeader;
  offset = headerBytes;
  index = 0;
  crc: number;
  private frame = new Uint8Array(frameHeaderBytes);
  payload = new Uint8Array(1024 * 1024 + 64);

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, 'r');
    try {
      this.size = fstatSync(this.fd).size;
      const header = new Uint8Array(headerBytes);
      const read = readSync(this.fd, header, 0, headerBytes, 0);
      // A backup is a snapshot under another magic (so that neither is mistaken for the other by name).
      const magic = Buffer.from(header.buffer, 0, 8).toString('latin1') === magicBackup ? magicBackup : magicSnapshot;
      this.header = decodeHeader(header.subarray(0, read), magic, path);
      this.crc = Buffer.from(header.buffer).readUInt32LE(124);
    } catch (error) {
      closeSync(this.fd);
      throw error;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Reads bytes of the frame at this.offset; a short read is a truncated file (named by the frame's offset). */
  private readExactly(into: Uint8Array, bytes: number, position: number, what: string): void {
    let done = 0;
    while (done < bytes) {
      const read = readSync(this.fd, into, done, bytes - done, position + done);
      if (read === 0) {
        throw new FormatError(this.path, this.offset, `truncated: ${what} ends at ${position + done}, ` +
          `${bytes - done} bytes early`);
      }
      done += read;
    }
  }

  /** The next frame's header, checked for shape; returns its type and leaves its payload unread. */
  nextHeader(): { type: number; length: number; crc: number } {
    const at = this.offset;
    if (at === this.size) throw new FormatError(this.path, at, 'truncated: no end chunk');
    this.readExactly(this.frame, frameHeaderBytes, at, `the header of frame ${this.index}`);
    const view = new DataView(this.frame.buffer);
    const length = view.getUint32(frameLengthOffset, true);
    const type = this.frame[frameTypeOffset]!;
    if (length > snapshotChunkBytesMax) {
      throw new FormatError(this.path, at, `frame ${this.index}: length ${length} over ${snapshotChunkBytesMax}`);
    }
    if (type !== frameTypeChunk && type !== frameTypeEnd) {
      throw new FormatError(this.path, at + frameTypeOffset, `frame ${this.index}: unknown type ${type}`);
    }
    if ((this.frame[5]! | this.frame[6]! | this.frame[7]!) !== 0) {
      throw new FormatError(this.path, at + 5, `frame ${this.index}: reserved bytes are not zero`);
    }
    if (view.getUint32(frameIndexOffset, true) !== this.index) {
      throw new FormatError(this.path, at + frameIndexOffset, `frame ${this.index}: index ` +
        `${view.getUint32(frameIndexOffset, true)} (a frame is missing, repeated or moved)`);
    }
    if (at + frameBytes(length) > this.size) {
      throw new FormatError(this.path, at, `truncated (or a damaged length): frame ${this.index} claims ` +
        `${frameBytes(length)} bytes, the file ends ${this.size - at} bytes after its start`);
    }
    return { type, length, crc: view.getUint32(frameCrcOffset, true) };
  }

  /** Reads and checks the payload of the frame whose header nextHeader() returned; returns it (reused buffer). */
  readPayload(length: number, crc: number): Uint8Array {
    const at = this.offset;
    const padding = framePaddingBytes(length);
    if (this.payload.length < length + padding) this.payload = new Uint8Array(length + padding + 1024 * 1024);
    this.readExactly(this.payload, length + padding, at + frameHeaderBytes, `frame ${this.index}`);
    const computed = frameCrc(this.frame, 0, this.payload, 0, length, this.crc);
    if (computed !== crc) {
      throw new FormatError(this.path, at, `frame ${this.index}: checksum mismatch (stored ${hex(crc)}, ` +
        `computed ${hex(computed)})`);
    }
    for (let i = 0; i < padding; i++) {
      if (this.payload[length + i] !== 0) {
        throw new FormatError(this.path, at + frameHeaderBytes + length + i, `frame ${this.index}: padding is not zero`);
      }
    }
    this.crc = crc;
    this.offset = at + frameBytes(length);
    this.index++;
    return this.payload.subarray(0, length);
  }

  /** Skips the payload (readSnapshotInfo): its CRC is not checked, but it is the next frame's seed. */
  skipPayload(length: number, crc: number): void {
    this.crc = crc;
    this.offset += frameBytes(length);
    this.index++;
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/** The counts of one chunk's records (a job update's continuation entries do not count). */
function addCounts(counts: SnapshotCounts, chunk: SnapshotChunk): void {
  counts.configs += chunk.configsLength();
  counts.tasks += chunk.tasksLength();
  counts.cronJobs += chunk.cronJobsLength();
  for (let i = 0; i < chunk.jobUpdatesLength(); i++) {
    if (chunk.jobUpdates(i)!.update()?.instructions() !== null) counts.jobUpdates++;
  }
  counts.quotas += chunk.quotasLength();
  counts.hosts += chunk.hostsLength();
  counts.maintenance += chunk.maintenanceLength();
  counts.idempotency += chunk.idempotencyLength();
}

/** Checks the end frame against the header and (when given) the counts of the chunks read. */
function endInfo(reader: FrameReader, payload: Uint8Array, endOffset: number, counted: SnapshotCounts | null,
  chunks: number): SnapshotInfo {
  const path = reader.path;
  let end: SnapshotEnd;
  let counts: SnapshotCounts;
  try {
    end = SnapshotEnd.getRootAsSnapshotEnd(new flatbuffers.ByteBuffer(payload));
    counts = {
      configs: Number(end.configs()), tasks: Number(end.tasks()), cronJobs: Number(end.cronJobs()),
      jobUpdates: Number(end.jobUpdates()), quotas: Number(end.quotas()), hosts: Number(end.hosts()),
      maintenance: Number(end.maintenance()), idempotency: Number(end.idempotency()),
    };
  } catch (error) {
    throw new FormatError(path, endOffset, `the end chunk cannot be read: ${(error as Error).message}`);
  }
  const revision = Number(end.revision());
  if (BigInt(revision) !== reader.header.a) {
    throw new FormatError(path, endOffset, `the end chunk's revision ${revision} is not the header's ${reader.header.a}`);
  }
  if (counted !== null) {
    for (const key of Object.keys(counts) as (keyof SnapshotCounts)[]) {
      if (counts[key] !== counted[key]) {
        throw new FormatError(path, endOffset,
          `the end chunk counts ${counts[key]} ${key}, the chunks hold ${counted[key]}`);
      }
    }
  }
  if (reader.offset !== reader.size) {
    throw new FormatError(path, reader.offset, `${reader.size - reader.offset} bytes after the end chunk`);
  }
  return {
    path, revision, term: Number(end.term()), createdMs: Number(end.createdMs()), version: reader.header.version,
    schemaHashHex: reader.header.schemaHashHex, counts, bytes: reader.size, chunks, endOffset,
  };
}

/**
 * Reads a whole snapshot, checking everything, and hands each chunk to `visit` in file order. The chunk is a
 * view of a reused buffer: valid during the call only. Throws FormatError (file and offset) on any damage; an
 * error `visit` throws is passed on as it is.
 */
export function forEachSnapshotChunk(path: string, visit: (chunk: SnapshotChunk, place: ChunkPlace) => void):
  SnapshotInfo {
  const reader = new FrameReader(path);
  try {
    const counted = emptyCounts();
    const chunk = new SnapshotChunk();
    const revision = Number(reader.header.a);
    for (;;) {
      const frameOffset = reader.offset;
      const { type, length, crc } = reader.nextHeader();
      const payload = reader.readPayload(length, crc);
      if (type === frameTypeEnd) return endInfo(reader, payload, frameOffset, counted, reader.index - 1);
      const place: ChunkPlace = { path, index: reader.index - 1, offset: frameOffset, bytes: length, revision };
      try {
        SnapshotChunk.getRootAsSnapshotChunk(new flatbuffers.ByteBuffer(payload), chunk);
        addCounts(counted, chunk);
      } catch (error) {
        throw new FormatError(path, frameOffset, `chunk ${place.index} cannot be read: ${(error as Error).message}`);
      }
      visit(chunk, place);
    }
  } finally {
    reader.close();
  }
}

/**
 * The header and end chunk of a snapshot (revision, term, created, counts), without reading its chunks: their
 * frame headers are walked, the end frame's CRC is checked (seeded by the previous frame's stored CRC). It does
 * not prove the chunks intact: forEachSnapshotChunk does.
 */
export function readSnapshotInfo(path: string): SnapshotInfo {
  const reader = new FrameReader(path);
  try {
    for (;;) {
      const frameOffset = reader.offset;
      const { type, length, crc } = reader.nextHeader();
      if (type === frameTypeEnd) {
        return endInfo(reader, reader.readPayload(length, crc), frameOffset, null, reader.index - 1);
      }
      reader.skipPayload(length, crc);
    }
  } finally {
    reader.close();
  }
}

/** The snapshots of a directory (final names only, not `.tmp`), newest (highest revision) first. */
export function listSnapshots(directory: string): { path: string; revision: number }[] {
  const found: { path: string; revision: number }[] = [];
  for (const name of readdirSync(directory)) {
    const revision = snapshotFileRevision(name);
    if (revision >= 0) found.push({ path: join(directory, name), revision });
  }
  return found.sort((a, b) => b.revision - a.revision);
}
