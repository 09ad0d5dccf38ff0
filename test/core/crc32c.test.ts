/**
 * CRC-32C against a bitwise reference: the known check value, random lengths, offsets, alignments and seeds, on
 * plain, Buffer-pooled and shared memory, and the chaining property the log and snapshot frames rely on.
 */
import test from 'ava';
import { crc32c } from '../../core/crc32c.js';
import { Prng } from '../../core/prng.js';

function reference(bytes: Uint8Array, seed: number, start: number, end: number): number {
  let crc = ~seed >>> 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]!;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

test('crc32c: the check value of "123456789" is 0xe3069283', (t) => {
  t.is(crc32c(Buffer.from('123456789', 'latin1')), 0xe3069283);
  t.is(crc32c(new Uint8Array(0)), 0);
});

test('crc32c equals the bitwise reference at any length, offset, alignment and seed', (t) => {
  const prng = new Prng(7);
  const random = (): number => prng.float();
  const plain = new Uint8Array(8192 + 16);
  const shared = new Uint8Array(new SharedArrayBuffer(8192 + 16));
  for (let i = 0; i < plain.length; i++) plain[i] = shared[i] = Math.floor(random() * 256);
  const pooled = Buffer.from(plain.subarray(3)); // a pooled Buffer: any byteOffset
  for (let trial = 0; trial < 600; trial++) {
    const bytes = [plain, shared, pooled, plain.subarray(1 + (trial % 7))][trial % 4]!;
    const length = trial < 300 ? trial : Math.floor(random() * 4000);
    const start = Math.floor(random() * 17);
    const end = Math.min(bytes.length, start + length);
    const seed = trial % 3 === 0 ? 0 : Math.floor(random() * 0x100000000);
    t.is(crc32c(bytes, seed, start, end), reference(bytes, seed, start, end), `trial ${trial}`);
  }
});

test('crc32c chains: crc(b, crc(a)) is crc(a ++ b)', (t) => {
  const prng = new Prng(9);
  const random = (): number => prng.float();
  const bytes = Uint8Array.from({ length: 5000 }, () => Math.floor(random() * 256));
  for (const cut of [0, 1, 7, 255, 256, 257, 1000, 4999, 5000]) {
    t.is(crc32c(bytes, crc32c(bytes, 0, 0, cut), cut, bytes.length), crc32c(bytes));
  }
});
