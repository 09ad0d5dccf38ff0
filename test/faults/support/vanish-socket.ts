/**
 * A WebSocket client made by hand on a TCP socket, for clients that vanish at the worst moment: mid-handshake,
 * between frames, or in the middle of one frame (a header that declares more bytes than ever come). Owner: tests
 * only. Invariants: every frame it sends is masked (RFC 6455 5.3: a server must close on an unmasked client
 * frame); nothing here reads or answers the server's frames: a vanishing client does not care.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const handshakeBytesMax = 16 * 1024; // a 101 answer is a few hundred bytes

export class RawSocket {
  private constructor(readonly socket: Socket) {}

  /** Opens TCP to 127.0.0.1:port; with `upgrade`, completes the WebSocket handshake on /v1 first. */
  static async connect(port: number, upgrade = true): Promise<RawSocket> {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    const raw = new RawSocket(socket);
    if (upgrade) await raw.upgrade();
    return raw;
  }

  private upgrade(): Promise<void> {
    const key = randomBytes(16).toString('base64');
    this.socket.write(`GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    return new Promise((resolve, reject) => {
      let head = '';
      const onData = (data: Buffer) => {
        head += data.toString('latin1');
        if (head.length > handshakeBytesMax) return done(new Error('no end of the handshake answer'));
        if (!head.includes('\r\n\r\n')) return;
        done(head.startsWith('HTTP/1.1 101') ? null : new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      };
      const done = (error: Error | null) => {
        this.socket.off('data', onData);
        if (error === null) resolve(); else reject(error);
      };
      this.socket.on('data', onData);
    });
  }

  /** Writes a binary frame with `payload`; with `sendBytes` below its length, only that much of it (a torn frame). */
  sendFrame(payload: Uint8Array, sendBytes = payload.length): void {
    this.socket.write(frame(payload, 2).subarray(0, headerBytes(payload.length) + sendBytes));
  }

  /** Writes bytes as they are (a torn handshake, noise before the upgrade). */
  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  /** Stops reading: the server's frames pile up in its send buffer (a consumer that stalled). */
  stall(): void {
    this.socket.pause();
  }

  /** Ends the connection as a crashed process would: no close frame; RST if unread bytes remain. */
  vanish(): void {
    this.socket.resetAndDestroy();
  }
}

function headerBytes(length: number): number {
  return 2 + (length < 126 ? 0 : length < 65536 ? 2 : 8) + 4;
}

/** A masked client frame (FIN set) of `opcode` carrying `payload`. */
export function frame(payload: Uint8Array, opcode: number): Buffer {
  const out = Buffer.alloc(headerBytes(payload.length) + payload.length);
  out[0] = 0x80 | opcode;
  let at = 2;
  if (payload.length < 126) out[1] = 0x80 | payload.length;
  else if (payload.length < 65536) { out[1] = 0x80 | 126; out.writeUInt16BE(payload.length, 2); at = 4; }
  else { out[1] = 0x80 | 127; out.writeBigUInt64BE(BigInt(payload.length), 2); at = 10; }
  const mask = randomBytes(4);
  mask.copy(out, at);
  at += 4;
  for (let i = 0; i < payload.length; i++) out[at + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}
