/**
 * The arena: one growable SharedArrayBuffer holding every table's nodes and records.
 * Owner: ArenaView is used by every thread (read-only outside the writer); ArenaAllocator by the writer only.
 *
 * Invariants:
 * - Offsets are u32 byte offsets, 8-byte aligned; offset 0 is never allocated and means "none".
 * - A block is immutable once a published root reaches it. The writer retires a block at the epoch of the
 *   publish that stops reaching it, and reuses it only when no reader pins an older epoch (reclaim()).
 * - Views are fixed-length (length-tracking views over a growable SAB are ~10x slower on Node 20); a thread
 *   re-creates them when it sees the SAB has grown (refresh()).
 */
import { assert } from './assert.js';
import { arenaGrowBytesMin } from './limits.js';

export class ArenaView {
  readonly sab: SharedArrayBuffer;
  u8: Uint8Array;
  u32: Uint32Array;
  i32: Int32Array;
  f64: Float64Array;
  buffer: Buffer;
  bytes: number;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.bytes = 0;
    this.u8 = new Uint8Array(0);
    this.u32 = new Uint32Array(0);
    this.i32 = new Int32Array(0);
    this.f64 = new Float64Array(0);
    this.buffer = Buffer.alloc(0);
    this.refresh();
  }

  /** Re-creates the views if the SAB grew. Call once per query or group; cheap when nothing changed. */
  refresh(): void {
    const bytes = this.sab.byteLength;
    if (bytes === this.bytes) return;
    this.bytes = bytes;
    this.u8 = new Uint8Array(this.sab, 0, bytes);
    this.u32 = new Uint32Array(this.sab, 0, bytes >>> 2);
    this.i32 = new Int32Array(this.sab, 0, bytes >>> 2);
    this.f64 = new Float64Array(this.sab, 0, bytes >>> 3);
    this.buffer = Buffer.from(this.sab, 0, bytes);
  }

  /** A string blob is [u32 byteLength][utf8 bytes]. */
  stringBytes(blob: number): number {
    return this.u32[blob >>> 2]!;
  }

  readString(blob: number): string {
    if (blob === 0) return '';
    const length = this.u32[blob >>> 2]!;
    return this.buffer.toString('utf8', blob + 4, blob + 4 + length);
  }

  /**
   * Compares two string blobs (UTF-8 byte order). A JS loop: for ids of tens of bytes it is several times
   * cheaper than a native Buffer.compare call. `from`: a count of leading bytes the caller knows to be equal
   * (task id keys whose first 8 bytes, zero-padded, are equal), not compared again.
   */
  compareBlobs(a: number, b: number, from = 0): number {
    if (a === b) return 0;
    const u8 = this.u8;
    const la = Math.min(this.u32[a >>> 2]!, stringCompareBytesMax);
    const lb = Math.min(this.u32[b >>> 2]!, stringCompareBytesMax);
    const length = la < lb ? la : lb;
    for (let i = 4 + from; i < length + 4; i++) {
      const x = u8[a + i]!;
      const y = u8[b + i]!;
      if (x !== y) return x - y;
    }
    return la - lb;
  }
}

/** Compared strings are names (at most 256 bytes): a bound on the loop even if a reader reads reused memory. */
const stringCompareBytesMax = 4096;

export function stringBlobBytes(utf8Bytes: number): number {
  return 4 + utf8Bytes;
}

/** Rounds a request to its size class: 8-byte steps to 256, 64 to 4 KiB, then 4 KiB. */
export function sizeClassBytes(bytes: number): number {
  assert(bytes > 0);
  if (bytes <= 256) return (bytes + 7) & ~7;
  if (bytes <= 4096) return (bytes + 63) & ~63;
  return (bytes + 4095) & ~4095;
}

export class ArenaAllocator {
  readonly view: ArenaView;
  private readonly bytesMax: number;
  private top: number;                                // bump pointer
  private readonly free = new Map<number, number[]>(); // size class -> offsets
  // Retired blocks, in epoch order: a FIFO of (epoch, offset, bytes) triples in one Float64Array (no objects).
  private retired = new Float64Array(3 * 4096);
  private retiredHead = 0;                            // triple index of the oldest
  private retiredTail = 0;                            // triple index past the newest
  bytesAllocated = 0;                                 // live bytes (allocated, not yet reusable)
  bytesFree = 0;                                      // bytes on free lists

  constructor(view: ArenaView, bytesMax: number) {
    this.view = view;
    this.bytesMax = bytesMax;
    this.top = 64; // offset 0 means none; the first 64 bytes stay unused
  }

  get bytesTop(): number {
    return this.top;
  }

  /**
   * Bytes that can surely still be had: the untouched end of the arena. Free blocks are left out, since a block of
   * one size class cannot serve another.
   */
  bumpBytesLeft(): number {
    return this.bytesMax - this.top;
  }

  alloc(bytes: number): number {
    const size = sizeClassBytes(bytes);
    // bytesFree is the sum of the free lists: at 0 they are all empty, and the lookup is skipped (a bulk load).
    const list = this.bytesFree === 0 ? undefined : this.free.get(size);
    let offset: number;
    if (list !== undefined && list.length > 0) {
      offset = list.pop()!;
      this.bytesFree -= size;
    } else {
      offset = this.top;
      if (offset + size > this.view.bytes) this.grow(offset + size);
      this.top = offset + size;
    }
    this.bytesAllocated += size;
    assert(offset > 0 && (offset & 7) === 0);
    return offset;
  }

  /** Frees a block that no published root ever reached (an aborted or in-group block). */
  freeNow(offset: number, bytes: number): void {
    const size = sizeClassBytes(bytes);
    let list = this.free.get(size);
    if (list === undefined) {
      list = [];
      this.free.set(size, list);
    }
    list.push(offset);
    this.bytesAllocated -= size;
    this.bytesFree += size;
  }

  /** Frees a block once no reader pins an epoch before `epoch` (the publish that stops reaching it). */
  retire(offset: number, bytes: number, epoch: number): void {
    assert(offset > 0);
    if (this.retiredTail * 3 === this.retired.length) {
      const live = this.retired.subarray(this.retiredHead * 3, this.retiredTail * 3);
      const next = new Float64Array(Math.max(this.retired.length, live.length * 2));
      next.set(live);
      this.retired = next;
      this.retiredTail -= this.retiredHead;
      this.retiredHead = 0;
    }
    const at = this.retiredTail * 3;
    this.retired[at] = epoch;
    this.retired[at + 1] = offset;
    this.retired[at + 2] = bytes;
    this.retiredTail++;
  }

  /** Moves the blocks retired at or before `epochSafe` to the free lists. Epochs never wrap (f64 counters). */
  reclaim(epochSafe: number): number {
    let count = 0;
    const retired = this.retired;
    while (this.retiredHead < this.retiredTail) {
      const at = this.retiredHead * 3;
      if (retired[at]! > epochSafe) break;
      this.freeNow(retired[at + 1]!, retired[at + 2]!);
      this.retiredHead++;
      count++;
    }
    return count;
  }

  retiredCount(): number {
    return this.retiredTail - this.retiredHead;
  }

  private grow(bytesNeeded: number): void {
    if (bytesNeeded > this.bytesMax) throw new ArenaFullError(bytesNeeded, this.bytesMax);
    const target = Math.min(this.bytesMax,
      Math.max(bytesNeeded, this.view.bytes + Math.max(arenaGrowBytesMin, this.view.bytes >>> 2)));
    this.view.sab.grow(Math.min(this.bytesMax, Math.ceil(target / 65536) * 65536));
    this.view.refresh();
  }
}

export class ArenaFullError extends Error {
  constructor(bytesNeeded: number, bytesMax: number) {
    super(`arena full: ${bytesNeeded} bytes needed, maximum ${bytesMax}`);
    this.name = 'ArenaFullError';
  }
}
