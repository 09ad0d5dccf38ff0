/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as etcd's WAL and iSCSI use. Owner: any thread.
 * Slicing-by-8 over a 8 x 256 table: about 1 GB/s in V8, no allocation per call.
 * crc32c(bytes, seed) continues a CRC: crc32c(b, crc32c(a)) === crc32c(a ++ b). That is what chains records.
 */
const table = new Uint32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  table[n] = c >>> 0;
}
for (let n = 0; n < 256; n++) {
  let c = table[n]!;
  for (let k = 1; k < 8; k++) {
    c = table[c & 0xff]! ^ (c >>> 8);
    table[k * 256 + n] = c >>> 0;
  }
}

export function crc32c(bytes: Uint8Array, seed = 0, start = 0, end = bytes.length): number {
  let crc = ~seed >>> 0;
  let i = start;
  const t = table;
  for (; i + 8 <= end; i += 8) {
    const a = (crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0;
    crc = t[1792 + (a & 0xff)]! ^ t[1536 + ((a >>> 8) & 0xff)]! ^ t[1280 + ((a >>> 16) & 0xff)]! ^ t[1024 + (a >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^ t[512 + bytes[i + 5]!]! ^ t[256 + bytes[i + 6]!]! ^ t[bytes[i + 7]!]!;
  }
  for (; i < end; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
