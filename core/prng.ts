/**
 * Seeded pseudo-random numbers (sfc32, Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state).
 * Owner: any thread (pure). The simulator, the model-based tests and the load generator take one of these as a
 * parameter; nothing in core/ calls Math.random.
 * Invariants: the sequence is a function of the seed words alone (same seed, same numbers, on every platform);
 * the state words are always u32 (`>>> 0`); `next()` is in [0, 2^32), `float()` in [0, 1), `int(n)` in [0, n).
 * Seeds are mixed through a 32-bit finalizer and the first `warmupRounds` outputs are dropped, so adjacent seeds
 * (task 7, task 8) give unrelated sequences: the load generator seeds one generator per task index.
 */
import { assert } from './assert.js';

const warmupRounds = 12; // sfc32's author recommends 12+ rounds to leave the seed's low entropy behind
const twoPow32 = 4294967296;

/** murmur3's fmix32: a bijection on u32 with full avalanche, used to spread seed words before sfc32 starts. */
export function mix32(value: number): number {
  let h = value >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function seedWord(value: number): number {
  assert(Number.isInteger(value), 'seed words are integers');
  // Numbers above 2^32 keep their low 32 bits only; that is documented, not an error.
  return value >>> 0;
}

export class Prng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;

  constructor(seed: number, stream = 0, salt = 0) {
    this.reseed(seed, stream, salt);
  }

  /** Restarts the sequence from (seed, stream, salt) without allocating: the load generator's per-task reseed. */
  reseed(seed: number, stream = 0, salt = 0): void {
    this.a = mix32(seedWord(seed) ^ 0x9e3779b9);
    this.b = mix32(seedWord(stream) ^ 0x243f6a88);
    this.c = mix32(seedWord(salt) ^ 0xb7e15162);
    this.d = 1; // the counter: it guarantees a period of at least 2^32 whatever the seed
    for (let round = 0; round < warmupRounds; round++) this.next();
  }

  /** The next u32. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1) with 32 bits of randomness. */
  float(): number {
    return this.next() / twoPow32;
  }

  /** An integer in [0, n). Multiply-shift: the bias is below n / 2^32, far below anything a test can see. */
  int(n: number): number {
    assert(Number.isInteger(n), 'int(n): n is an integer');
    assert(n > 0, 'int(n): n is positive');
    assert(n <= twoPow32, 'int(n): n is at most 2^32');
    const value = Math.floor((this.next() * n) / twoPow32);
    assert(value < n);
    return value;
  }

  /** An integer in [low, high], both inclusive. */
  range(low: number, high: number): number {
    assert(high >= low, 'range(low, high): high >= low');
    return low + this.int(high - low + 1);
  }

  /** One element of a non-empty array, uniformly. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick from an empty array');
    const item = items[this.int(items.length)];
    assert(item !== undefined);
    return item;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    assert(p >= 0, 'chance(p): p >= 0');
    assert(p <= 1, 'chance(p): p <= 1');
    return this.float() < p;
  }
}
