/**
 * Lookups straight from a snapshot chunk's bytes, for the bulk load of tasks (restore-tasks.ts). Owner: the writer
 * thread, at startup.
 * Invariants: no object and no string is made per lookup; a cache miss is always safe (the caller then takes the
 * slower path that decides), a hit only ever returns what was stored for exactly the same key.
 */
import { assert } from '../../core/assert.js';

// Small enough to stay in the L2 cache (3 words an entry): a bigger direct-mapped table, one entry per position
// of a 1 MiB chunk, missed the cache on most lookups and cost more than it saved (measured at 1M tasks).
const positionCacheEntries = 4096;

/**
 * What was found at a position of the current chunk (a shared string's interned id, a shared hash vector's
 * config), direct-mapped by position and checked against it: a collision only costs a miss. Entries of earlier
 * chunks are told apart by the chunk's generation, so nothing is cleared between chunks.
 */
export class PositionCache {
  private readonly entries = new Int32Array(positionCacheEntries * 3); // position, generation, value
  private generation = 0;

  nextChunk(): void {
    this.generation++;
  }

  /** The value cached for the position in this chunk, or -1. */
  get(position: number): number {
    const at = ((position >>> 2) & (positionCacheEntries - 1)) * 3;
    const entries = this.entries;
    return entries[at] === position && entries[at + 1] === this.generation ? entries[at + 2]! : -1;
  }

  set(position: number, value: number): void {
    assert(value >= 0);
    const at = ((position >>> 2) & (positionCacheEntries - 1)) * 3;
    this.entries[at] = position;
    this.entries[at + 1] = this.generation;
    this.entries[at + 2] = value;
  }
}

/** FNV-1a over bytes [start, start + length). */
export function hashBytes(bytes: Uint8Array, start: number, length: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < start + length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash >>> 0;
}

/**
 * Byte strings -> values >= 0: open addressing over their FNV-1a hash, keys copied into one pool and compared
 * byte by byte. Keys are unique: add() asserts the key is not there.
 */
export class BytesTable {
  private slots = new Int32Array(1024);   // entry index + 1; 0 is empty
  private hashes = new Uint32Array(512);
  private starts = new Uint32Array(512);
  private lengths = new Uint32Array(512);
  private values = new Int32Array(512);
  private pool = new Uint8Array(16 * 1024);
  private poolBytes = 0;
  count = 0;

  /** The value of the key at bytes [start, start + length) whose hash is `hash`, or -1. */
  find(bytes: Uint8Array, start: number, length: number, hash: number): number {
    const mask = this.slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]! - 1;
      if (entry < 0) return -1;
      if (this.hashes[entry] === hash && this.same(entry, bytes, start, length)) return this.values[entry]!;
    }
  }

  add(bytes: Uint8Array, start: number, length: number, hash: number, value: number): void {
    assert(value >= 0 && this.find(bytes, start, length, hash) < 0, 'a key is added once');
    if ((this.count + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    const entry = this.count++;
    if (entry === this.hashes.length) this.growEntries();
    if (this.poolBytes + length > this.pool.length) {
      const pool = new Uint8Array(Math.max(this.pool.length * 2, this.poolBytes + length));
      pool.set(this.pool.subarray(0, this.poolBytes));
      this.pool = pool;
    }
    this.pool.set(bytes.subarray(start, start + length), this.poolBytes);
    this.hashes[entry] = hash;
    this.starts[entry] = this.poolBytes;
    this.lengths[entry] = length;
    this.values[entry] = value;
    this.poolBytes += length;
    this.place(entry);
  }

  private same(entry: number, bytes: Uint8Array, start: number, length: number): boolean {
    if (this.lengths[entry] !== length) return false;
    const pool = this.pool;
    const from = this.starts[entry]! - start;
    for (let i = start; i < start + length; i++) if (pool[from + i] !== bytes[i]) return false;
    return true;
  }

  private place(entry: number): void {
    const mask = this.slots.length - 1;
    let slot = this.hashes[entry]! & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = entry + 1;
  }

  private rehash(slotCount: number): void {
    this.slots = new Int32Array(slotCount);
    for (let entry = 0; entry < this.count; entry++) this.place(entry);
  }

  private growEntries(): void {
    const grow = <T extends Uint32Array | Int32Array>(array: T, make: (length: number) => T): T => {
      const next = make(array.length * 2);
      next.set(array);
      return next;
    };
    this.hashes = grow(this.hashes, (length) => new Uint32Array(length));
    this.starts = grow(this.starts, (length) => new Uint32Array(length));
    this.lengths = grow(this.lengths, (length) => new Uint32Array(length));
    this.values = grow(this.values, (length) => new Int32Array(length));
  }
}

/**
 * Keys of 4 u32 words -> values >= 0 (config hashes, as their 16 bytes; job keys, as ids padded with 0). Open
 * addressing with each entry's key words and value side by side: a lookup reads one cache line, which matters at
 * one lookup per task over 20,000 configs.
 */
export class WordKeyTable {
  private entries = new Int32Array(1024 * 5);  // per slot: 4 key words, value + 1 (0: empty)
  count = 0;

  /** The value of the key, or -1. */
  find(w0: number, w1: number, w2: number, w3: number): number {
    const entries = this.entries;
    const mask = entries.length / 5 - 1;
    for (let slot = mixWords(w0, w1, w2, w3) & mask; ; slot = (slot + 1) & mask) {
      const at = slot * 5;
      const value = entries[at + 4]! - 1;
      if (value < 0) return -1;
      if (entries[at] === (w0 | 0) && entries[at + 1] === (w1 | 0) && entries[at + 2] === (w2 | 0) &&
        entries[at + 3] === (w3 | 0)) return value;
    }
  }

  /** The value of the 16-byte key at bytes [start, start + 16), or -1. */
  findBytes(bytes: Uint8Array, start: number): number {
    return this.find(word(bytes, start), word(bytes, start + 4), word(bytes, start + 8), word(bytes, start + 12));
  }

  add(w0: number, w1: number, w2: number, w3: number, value: number): void {
    assert(value >= 0 && this.find(w0, w1, w2, w3) < 0, 'a key is added once');
    if ((this.count + 1) * 2 > this.entries.length / 5) this.rehash();
    this.count++;
    this.place(w0 | 0, w1 | 0, w2 | 0, w3 | 0, value + 1);
  }

  addBytes(bytes: Uint8Array, start: number, value: number): void {
    this.add(word(bytes, start), word(bytes, start + 4), word(bytes, start + 8), word(bytes, start + 12), value);
  }

  private place(w0: number, w1: number, w2: number, w3: number, valuePlusOne: number): void {
    const entries = this.entries;
    const mask = entries.length / 5 - 1;
    let slot = mixWords(w0, w1, w2, w3) & mask;
    while (entries[slot * 5 + 4] !== 0) slot = (slot + 1) & mask;
    const at = slot * 5;
    entries[at] = w0;
    entries[at + 1] = w1;
    entries[at + 2] = w2;
    entries[at + 3] = w3;
    entries[at + 4] = valuePlusOne;
  }

  private rehash(): void {
    const old = this.entries;
    this.entries = new Int32Array(old.length * 2);
    for (let at = 0; at < old.length; at += 5) {
      if (old[at + 4] !== 0) this.place(old[at]!, old[at + 1]!, old[at + 2]!, old[at + 3]!, old[at + 4]!);
    }
  }
}

function mixWords(w0: number, w1: number, w2: number, w3: number): number {
  const hash = Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ Math.imul(w3, 0xc2b2ae35),
    0x27d4eb2f);
  return hash ^ (hash >>> 15);
}

function word(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24);
}
