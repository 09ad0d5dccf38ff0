/**
 * The snapshot file's framing (docs/formats.md, "Snapshot file"): pure functions shared by the snapshot writer
 * (workers/snapshot/write.ts), its reader (workers/snapshot/read.ts) and the offline tools. Owner: any thread.
 *
 *   file   = header (128 bytes, core/files.ts, magic STRATSNP, a = revision, b = created ms)
 *            frame* (type CHUNK, payload SnapshotChunk) then exactly one frame of type END (payload SnapshotEnd)
 *   frame  = 0  u32 payload bytes (at most snapshotChunkBytesMax)
 *            4  u8 type: 1 CHUNK, 2 END
 *            5  3 bytes zero
 *            8  u32 CRC-32C (below)
 *           12  u32 frame index (0, 1, 2, ... in file order)
 *           16  payload (FlatBuffers), then zero bytes up to the next multiple of 8 (from the start of the file)
 *   CRC    = CRC-32C seeded with the previous frame's CRC (the first frame: the header's CRC, bytes 124..128),
 *            over frame bytes 0..8, then 12..16, then the payload. The chain makes a reordered, dropped or
 *            duplicated frame fail like a flipped bit.
 * Invariants: every frame starts at a multiple of 8; nothing follows the END frame; a reader trusts no byte of a
 * frame before its CRC checked.
 */
import { crc32c } from './crc32c.js';

export const frameHeaderBytes = 16;
export const frameTypeChunk = 1;
export const frameTypeEnd = 2;
export const frameLengthOffset = 0;
export const frameTypeOffset = 4;
export const frameCrcOffset = 8;
export const frameIndexOffset = 12;

/** Zero bytes after a payload of `length`, so that the next frame starts at a multiple of 8. */
export function framePaddingBytes(length: number): number {
  return (8 - ((frameHeaderBytes + length) & 7)) & 7;
}

export function frameBytes(length: number): number {
  return frameHeaderBytes + length + framePaddingBytes(length);
}

/** The CRC of a frame: `header` holds its 16 header bytes at `at` (the CRC field is not covered). */
export function frameCrc(header: Uint8Array, at: number, payload: Uint8Array, payloadStart: number, payloadEnd: number,
  previousCrc: number): number {
  const crc = crc32c(header, crc32c(header, previousCrc, at, at + frameCrcOffset), at + frameIndexOffset,
    at + frameHeaderBytes);
  return crc32c(payload, crc, payloadStart, payloadEnd);
}

/** Writes a frame header at `at` of `out`, CRC included; returns the CRC (the next frame's seed). */
export function writeFrameHeader(out: Uint8Array, at: number, type: number, index: number, payload: Uint8Array,
  payloadStart: number, payloadEnd: number, previousCrc: number): number {
  const view = new DataView(out.buffer, out.byteOffset + at, frameHeaderBytes);
  view.setUint32(frameLengthOffset, payloadEnd - payloadStart, true);
  view.setUint32(frameTypeOffset, type, true); // type, then the 3 zero bytes
  view.setUint32(frameCrcOffset, 0, true);
  view.setUint32(frameIndexOffset, index, true);
  const crc = frameCrc(out, at, payload, payloadStart, payloadEnd, previousCrc);
  view.setUint32(frameCrcOffset, crc, true);
  return crc;
}

const fileNamePattern = /^snapshot-([0-9a-f]{16})\.snap$/;

/** The final name of the snapshot of `revision`: its revision as 16 hex digits, so names sort by revision. */
export function snapshotFileName(revision: number): string {
  return `snapshot-${revision.toString(16).padStart(16, '0')}.snap`;
}

/** The revision a snapshot file name holds, or -1 for any other name (temporary files included). */
export function snapshotFileRevision(name: string): number {
  const match = fileNamePattern.exec(name);
  return match === null ? -1 : Number.parseInt(match[1]!, 16);
}
