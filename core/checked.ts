/**
 * A bounds-checked FlatBuffers ByteBuffer for client bytes. Owner: any thread.
 * The FlatBuffers JS runtime has no verifier, and its reads past the end return garbage (undefined -> 0)
 * instead of failing; this subclass throws MalformedError on any read outside the buffer, so a malformed or
 * truncated message fails where it is first read and never turns into a huge loop or allocation.
 * FlatBuffers offsets may also be shared, so a small message can name one table thousands of times (a vector of
 * the same offset, nested): every read is charged to a budget of `readBytesPerByteMax` times the message's size
 * (plus a floor), and a message that reads more than that is malformed. Honest messages read each byte a few
 * times (vtable lookups included).
 */
export const readBytesPerByteMax = 64;
export const readBytesFloor = 1 << 20;
import * as flatbuffers from 'flatbuffers';

export class MalformedError extends Error {
  constructor(offset: number, bytes: number, reason = 'outside the message') {
    super(`read at ${offset} ${reason} (${bytes} bytes)`);
    this.name = 'MalformedError';
  }
}

export class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  private readonly length: number;
  private budget: number;

  constructor(bytes: Uint8Array) {
    super(bytes);
    this.length = bytes.length;
    this.budget = readBytesFloor + bytes.length * readBytesPerByteMax;
  }

  private check(offset: number, size: number): void {
    if (!(offset >= 0 && offset + size <= this.length)) throw new MalformedError(offset, this.length);
    this.budget -= size;
    if (this.budget < 0) throw new MalformedError(offset, this.length, 'reads more than 64 times its size (shared offsets)');
  }

  override readInt8(offset: number): number { this.check(offset, 1); return super.readInt8(offset); }
  override readUint8(offset: number): number { this.check(offset, 1); return super.readUint8(offset); }
  override readInt16(offset: number): number { this.check(offset, 2); return super.readInt16(offset); }
  override readUint16(offset: number): number { this.check(offset, 2); return super.readUint16(offset); }
  override readInt32(offset: number): number { this.check(offset, 4); return super.readInt32(offset); }
  override readUint32(offset: number): number { this.check(offset, 4); return super.readUint32(offset); }
  override readInt64(offset: number): bigint { this.check(offset, 8); return super.readInt64(offset); }
  override readUint64(offset: number): bigint { this.check(offset, 8); return super.readUint64(offset); }
  override readFloat32(offset: number): number { this.check(offset, 4); return super.readFloat32(offset); }
  override readFloat64(offset: number): number { this.check(offset, 8); return super.readFloat64(offset); }

  override __string(offset: number, encoding?: flatbuffers.Encoding): string | Uint8Array {
    const start = offset + this.readInt32(offset);
    const length = this.readInt32(start);
    this.check(start + 4, length);
    return super.__string(offset, encoding);
  }

  override __vector_len(offset: number): number {
    const length = super.__vector_len(offset);
    if (length < 0 || length > this.length) throw new MalformedError(offset, this.length);
    return length;
  }
}

/** A checked buffer over a whole message, whose root offset must lie inside it. */
export function checkedBuffer(bytes: Uint8Array): CheckedByteBuffer {
  if (bytes.length < 8) throw new MalformedError(0, bytes.length);
  return new CheckedByteBuffer(bytes);
}
