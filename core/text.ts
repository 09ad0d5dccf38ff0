/**
 * Validation of identifiers and text, and the string hash used by the intern dictionary. Owner: any thread.
 * Works on UTF-8 bytes so that the writer never decodes a string it only stores.
 */
import { isUtf8 } from 'node:buffer';
import { identifierBytesMax, textBytesMax } from './limits.js';

/** ^[\w\-\.]+$ and at most identifierBytesMax bytes (Aurora's GOOD_IDENTIFIER_PATTERN). */
export function isIdentifier(bytes: Uint8Array | null): boolean {
  if (bytes === null || bytes.length === 0 || bytes.length > identifierBytesMax) return false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
      c === 0x5f || c === 0x2d || c === 0x2e;
    if (!ok) return false;
  }
  return true;
}

/** Non-empty, at most `bytesMax` bytes, valid UTF-8, no control characters. */
export function isText(bytes: Uint8Array | null, bytesMax = textBytesMax): boolean {
  if (bytes === null || bytes.length === 0 || bytes.length > bytesMax) return false;
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c < 0x20 || c === 0x7f) return false;
    if (c >= 0x80) ascii = false;
  }
  return ascii || isUtf8(bytes);
}

export function isIdentifierString(value: string | null): boolean {
  return value !== null && isIdentifier(Buffer.from(value, 'utf8'));
}

/** FNV-1a over the UTF-16 code units: the same in every thread, used only to find interned strings. */
export function hashString(value: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/**
 * Decodes UTF-8. Names are short and nearly always ASCII: for those a loop of String.fromCharCode is several
 * times cheaper than TextDecoder on Node 20 (~0.5 µs a call); anything else goes to TextDecoder.
 */
export function utf8(bytes: Uint8Array): string {
  const length = bytes.length;
  if (length > 64) return decoder.decode(bytes);
  let out = '';
  for (let i = 0; i < length; i++) {
    const c = bytes[i]!;
    if (c >= 0x80) return decoder.decode(bytes);
    out += String.fromCharCode(c);
  }
  return out;
}

/**
 * Compares strings in UTF-8 byte order (= code point order) without encoding them: UTF-16 code units compare
 * the same except that surrogates (U+D800..DFFF, which encode code points above U+FFFF) must sort after
 * U+E000..FFFF; shifting the two ranges fixes that.
 */
export function compareUtf8(a: string, b: string): number {
  const length = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x += x < 0xe000 ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y < 0xe000 ? 0x2000 : -0x800;
    return x - y;
  }
  return a.length - b.length;
}

/** The object API types strings as `string | Uint8Array | null`; empty and absent both give ''. */
export type Text = string | Uint8Array | null | undefined;

export function text(value: Text): string {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : utf8(value);
}
