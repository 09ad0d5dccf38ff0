/**
 * The header every strata data file starts with (log segments, snapshots, backups), and small file helpers
 * shared by the writer, the snapshot worker and the offline tools. Owner: any thread.
 *
 * Header (128 bytes, little-endian; docs/formats.md):
 *   0  magic, 8 ASCII bytes: "STRATLOG" (log segment), "STRATSNP" (snapshot), "STRATBAK" (backup)
 *   8  u32 format version (formatVersion below; readers accept every version up to theirs)
 *  12  u32 header bytes (128)
 *  16  32 bytes: SHA-256 of the schema.fbs that wrote the file (informational: FlatBuffers keeps old fields
 *      readable; a reader logs a difference, it does not refuse)
 *  48  u64 a: log segment: its sequence number; snapshot/backup: its revision
 *  56  u64 b: log segment: the revision of its first entry (the previous revision + 1); snapshot: created, ms
 *  64  u32 c: log segment: the chained CRC seed (the last record CRC of the previous segment); snapshot: 0
 *  68  u32 d: log segment: the term (leader epoch, 0 until replication); snapshot: 0
 *  72  52 bytes reserved, zero
 * 124  u32 CRC-32C of bytes 0..124
 * Invariant: a header that does not check is never trusted: the file is refused (or, for the newest log segment
 * whose header was torn while it was created, removed; see workers/writer/log.ts).
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32c } from './crc32c.js';
import { schemaHashHex } from './fbs/schema-hash.js';

export const headerBytes = 128;
export const formatVersion = 1;
export const magicLog = 'STRATLOG';
export const magicSnapshot = 'STRATSNP';
export const magicBackup = 'STRATBAK';
export type Magic = typeof magicLog | typeof magicSnapshot | typeof magicBackup;

export const schemaHash = Buffer.from(schemaHashHex, 'hex');

export interface FileHeader {
  magic: Magic;
  version: number;
  schemaHashHex: string;
  a: bigint;
  b: bigint;
  c: number;
  d: number;
}

/** A file that is not what it should be: names the file and the offset, for the error an operator reads. */
export class FormatError extends Error {
  /** What is wrong, without the file and offset the message starts with (for callers that add context). */
  readonly reason: string;
  constructor(readonly file: string, readonly offset: number, message: string) {
    super(`${file} at offset ${offset}: ${message}`);
    this.reason = message;
    this.name = 'FormatError';
  }
}

export function encodeHeader(magic: Magic, a: bigint, b: bigint, c = 0, d = 0): Buffer {
  const bytes = Buffer.alloc(headerBytes);
  bytes.write(magic, 0, 'latin1');
  bytes.writeUInt32LE(formatVersion, 8);
  bytes.writeUInt32LE(headerBytes, 12);
  schemaHash.copy(bytes, 16);
  bytes.writeBigUInt64LE(a, 48);
  bytes.writeBigUInt64LE(b, 56);
  bytes.writeUInt32LE(c >>> 0, 64);
  bytes.writeUInt32LE(d >>> 0, 68);
  bytes.writeUInt32LE(crc32c(bytes, 0, 0, 124), 124);
  return bytes;
}

/** Reads and checks a header; throws FormatError naming `file` when it is not one of `magic`. */
export function decodeHeader(bytes: Uint8Array, magic: Magic, file: string): FileHeader {
  if (bytes.length < headerBytes) throw new FormatError(file, 0, `shorter than its ${headerBytes}-byte header`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, headerBytes);
  const found = b.toString('latin1', 0, 8);
  if (found !== magic) throw new FormatError(file, 0, `magic is ${JSON.stringify(found)}, not ${magic}`);
  if (b.readUInt32LE(124) !== crc32c(b, 0, 0, 124)) throw new FormatError(file, 124, 'header checksum mismatch');
  const version = b.readUInt32LE(8);
  if (version < 1 || version > formatVersion) {
    throw new FormatError(file, 8, `format version ${version}; this build reads versions 1 to ${formatVersion}`);
  }
  if (b.readUInt32LE(12) !== headerBytes) throw new FormatError(file, 12, `header bytes ${b.readUInt32LE(12)}`);
  return {
    magic, version, schemaHashHex: b.toString('hex', 16, 48), a: b.readBigUInt64LE(48), b: b.readBigUInt64LE(56),
    c: b.readUInt32LE(64), d: b.readUInt32LE(68),
  };
}

/** fsync of a directory: makes a create, rename or unlink in it durable. */
export function fsyncDirectory(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** SHA-256 of a file, read in 4 MiB pieces (a backup may be gigabytes). */
export function sha256File(path: string): Buffer {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(4 * 1024 * 1024);
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) break;
      hash.update(buffer.subarray(0, read));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest();
}

/** mkdir -p that makes each directory it creates durable (an fsync of its parent), as a create needs. */
export function mkdirDurable(path: string): void {
  const first = mkdirSync(path, { recursive: true });
  if (first === undefined) return;
  for (let dir = path; ; dir = dirname(dir)) {
    fsyncDirectory(dirname(dir));
    if (dir === first || dirname(dir) === dir) break;
  }
}
