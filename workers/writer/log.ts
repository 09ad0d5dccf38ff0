/**
 * The write-ahead log's append path: segment files in <dataDir>/log, one write and one fdatasync per group.
 * Owner: the writer thread (recovery opens it, then every group appends through it).
 *
 * - append(payload) frames one GROUP record (core/wal.ts), writes it with one pwrite at the end of the current
 *   segment and fdatasyncs; only then may the caller publish and acknowledge the group. Any error (EIO,
 *   ENOSPC, ...) is thrown and must end the writer: fail-stop, nothing of the group acknowledged.
 * - Segments are preallocated (segmentBytes of zeros, written ahead of need by prepareNext() on the libuv pool,
 *   while the writer goes on). A cut writes the new segment's header (with the CRC seed that chains it to the
 *   previous one), fdatasyncs it, renames it into place and fsyncs the directory, before the first record.
 * - open() repairs a torn tail found by recovery: the bytes after the last valid record are copied to
 *   `<segment>.torn-<offset>` (up to the last non-zero byte; none when all zero) and zeroed to the end of the file, then synced, so that later
 *   appends never splice onto stale bytes.
 * Invariants: records go only to the newest segment, at validEnd; the chain seed of the next record is lastCrc;
 * a group bigger than a segment makes the segment grow (it is never split).
 */
import {
  closeSync, fdatasyncSync, fstatSync, openSync, readSync, renameSync, rmSync, unlinkSync, writeFileSync,
  writeSync,
} from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { crashNow, failpoint } from '../../core/failpoints.js';
import { encodeHeader, fsyncDirectory, headerBytes, magicLog, mkdirDurable } from '../../core/files.js';
import { assert } from '../../core/assert.js';
import { frameRecord, recordBytes, recordBytesMax, recordGroup, segmentBytesDefault, segmentName, listSegments } from '../../core/wal.js';

export interface LogOptions {
  dir: string;                   // <dataDir>/log
  segmentBytes?: number;         // default 64 MiB
  term?: number;
  /** Called after every sync with its duration in ms (metrics; slow-fsync logging). */
  onSync?: (ms: number) => void;
}

export interface LogTail {
  /** The newest segment, or null when the log is empty. */
  segment: { name: string; seq: number; firstRevision: number; validEnd: number } | null;
  lastCrc: number;
  lastRevision: number;
  torn: { offset: number } | null;
}

const nextName = 'next.tmp';
const zeros = Buffer.alloc(1024 * 1024);

export class WriteAheadLog {
  readonly dir: string;
  readonly segmentBytes: number;
  private readonly term: number;
  private readonly onSync: ((ms: number) => void) | undefined;
  private fd = -1;
  private seq = -1;
  private position = 0;       // where the next record goes in the current segment
  private capacity = 0;       // preallocated bytes of the current segment
  private lastCrc = 0;
  private lastRevision = 0;
  private buffer = Buffer.alloc(1024 * 1024);
  private next: Promise<void> | null = null; // preallocation of next.tmp in flight
  private nextReady = false;
  private nextError: unknown = null;
  bytesWritten = 0;
  syncs = 0;
  segmentsCreated = 0;

  constructor(options: LogOptions) {
    this.dir = options.dir;
    this.segmentBytes = options.segmentBytes ?? segmentBytesDefault;
    this.term = options.term ?? 0;
    this.onSync = options.onSync;
    mkdirDurable(this.dir);
  }

  /** Positions the log after recovery's scan (repairing a torn tail), or starts it after `revision`. */
  open(tail: LogTail, revision: number): void {
    rmSync(join(this.dir, nextName), { force: true });
    rmSync(join(this.dir, 'cut.tmp'), { force: true });
    this.lastRevision = revision;
    if (tail.segment === null) {
      this.cut(revision + 1, 0, 0);
      return;
    }
    const path = join(this.dir, tail.segment.name);
    this.fd = openSync(path, 'r+');
    this.seq = tail.segment.seq;
    this.lastCrc = tail.lastCrc;
    this.position = tail.segment.validEnd;
    this.capacity = fstatSync(this.fd).size;
    if (tail.torn !== null) this.repair(path);
    this.prepareNext();
  }

  private repair(path: string): void {
    const length = this.capacity - this.position;
    const cut = Buffer.alloc(Math.min(length, 64 * 1024 * 1024));
    readSync(this.fd, cut, 0, cut.length, this.position);
    // Up to the last non-zero byte only: the rest of a preallocated segment is zeros, and a crash loop must not
    // leave a 64 MiB file per recovery.
    let end = cut.length;
    while (end > 0 && cut[end - 1] === 0) end--;
    if (end > 0) writeFileSync(`${path}.torn-${this.position}`, cut.subarray(0, end));
    for (let at = this.position; at < this.capacity; at += zeros.length) {
      writeSync(this.fd, zeros, 0, Math.min(zeros.length, this.capacity - at), at);
    }
    fdatasyncSync(this.fd);
  }

  /** Appends one group's payload (revisions up to `lastRevision`) durably. Throws on any I/O error. */
  append(payload: Uint8Array, lastRevision: number): void {
    // A record recovery would refuse must never be acknowledged (the writer ends groups at groupBytesMax).
    assert(payload.length <= recordBytesMax, 'a log record over recordBytesMax');
    const bytes = recordBytes(payload.length);
    if (this.position + bytes > this.capacity && this.position > headerBytes) this.cut(this.lastRevision + 1, this.lastCrc, this.seq + 1);
    if (this.buffer.length < bytes) this.buffer = Buffer.alloc(Math.max(bytes, this.buffer.length * 2));
    const crc = frameRecord(this.buffer, 0, payload, recordGroup, this.lastCrc);
    if (failpoint('log.before-write') === null && failpoint('log.partial-write') === 'partial') {
      // A torn write as a crash or power loss leaves it: the record's first sectors reached the disk, the rest
      // did not (cut at a 512-byte boundary of the file, as the kernel and the disk write whole sectors).
      const cut = Math.floor((this.position + (bytes >>> 1)) / 512) * 512 - this.position;
      if (cut > 0) writeSync(this.fd, this.buffer, 0, cut, this.position);
      crashNow();
    }
    const written = writeSync(this.fd, this.buffer, 0, bytes, this.position);
    if (written !== bytes) throw Object.assign(new Error(`short write: ${written} of ${bytes} bytes`), { code: 'EIO' });
    failpoint('log.after-write');
    const start = performance.now();
    fdatasyncSync(this.fd);
    failpoint('log.after-sync');
    this.onSync?.(performance.now() - start);
    this.syncs++;
    this.bytesWritten += bytes;
    this.position += bytes;
    if (this.position > this.capacity) this.capacity = this.position;
    this.lastCrc = crc;
    this.lastRevision = lastRevision;
    if (this.position + (this.segmentBytes >>> 2) > this.capacity) this.prepareNext();
  }

  /**
   * Starts a new segment whose first record is revision `firstRevision`, chained with `seed`: the header goes
   * into the preallocated next.tmp (or a new file), which is synced, renamed into place, and the directory synced.
   */
  private cut(firstRevision: number, seed: number, seq: number): void {
    failpoint('log.segment-create');
    let tmp = join(this.dir, nextName);
    let fd: number;
    if (this.nextReady) {
      fd = openSync(tmp, 'r+');
    } else {
      // No preallocated file yet (the first segment, or a cut that came before the background was done): a new
      // file, preallocated here only when nothing is committing yet; otherwise it grows with each append.
      if (this.nextError !== null) throw this.nextError;
      tmp = join(this.dir, 'cut.tmp');
      fd = openSync(tmp, 'w+');
      if (this.fd < 0) {
        for (let at = 0; at < this.segmentBytes; at += zeros.length) {
          writeSync(fd, zeros, 0, Math.min(zeros.length, this.segmentBytes - at), at);
        }
      }
    }
    this.nextReady = false;
    writeSync(fd, encodeHeader(magicLog, BigInt(seq), BigInt(firstRevision), seed, this.term), 0, headerBytes, 0);
    fdatasyncSync(fd);
    const name = segmentName(seq, firstRevision);
    renameSync(tmp, join(this.dir, name));
    fsyncDirectory(this.dir);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = fd;
    this.seq = seq;
    this.position = headerBytes;
    // A file that was not preallocated grows with each append, up to segmentBytes, like a preallocated one.
    this.capacity = Math.max(fstatSync(fd).size, this.segmentBytes);
    this.lastCrc = seed;
    this.segmentsCreated++;
    this.prepareNext();
  }

  /** Preallocates next.tmp with zeros in the background (libuv pool); the writer never waits for it. */
  private prepareNext(): void {
    if (this.next !== null || this.nextReady) return;
    const path = join(this.dir, nextName);
    const size = this.segmentBytes;
    this.next = (async () => {
      const handle = await openAsync(path, 'w');
      try {
        for (let at = 0; at < size; at += zeros.length) await handle.write(zeros, 0, Math.min(zeros.length, size - at), at);
        await handle.datasync();
      } finally {
        await handle.close();
      }
    })().then(() => {
      this.nextReady = true;
      this.next = null;
    }, (error: unknown) => {
      this.nextError = error;
      this.next = null;
    });
  }

  /** Waits for the background preallocation (tests and close). */
  async settle(): Promise<void> {
    await this.next;
  }

  /** Deletes segments whose entries are all at or below `revision`, keeping the newest `keep` of those. */
  removeBefore(revision: number, keep: number): string[] {
    const segments = listSegments(this.dir);
    const removable: string[] = [];
    for (let i = 0; i + 1 < segments.length; i++) {
      if (segments[i]!.seq === this.seq) break;
      // Wholly before: the next segment starts at or before `revision` (one starting at revision + 1 may follow
      // noop entries logged at `revision` after the snapshot).
      if (segments[i + 1]!.firstRevision <= revision) removable.push(segments[i]!.name);
    }
    const removed = removable.slice(0, Math.max(0, removable.length - keep));
    for (const name of removed) unlinkSync(join(this.dir, name));
    if (removed.length > 0) fsyncDirectory(this.dir);
    return removed;
  }

  stats(): { segment: number; position: number; bytesWritten: number; syncs: number; segmentsCreated: number } {
    return { segment: this.seq, position: this.position, bytesWritten: this.bytesWritten, syncs: this.syncs,
      segmentsCreated: this.segmentsCreated };
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
