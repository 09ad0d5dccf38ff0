/**
 * A TCP proxy in front of a daemon, so that a restarted daemon (the tests start every daemon on port 0, so
 * it comes back on another port) is reached at the same URL. Closed in the test's teardown.
 */
import { connect, createServer, type Socket } from 'node:net';

/** Listens on 127.0.0.1 (a free port, returned) and forwards every connection to 127.0.0.1:target(). */
export async function proxy(t: { teardown(fn: () => unknown): void }, target: () => number): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const upstream = connect(target(), '127.0.0.1');
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on('error', () => { socket.destroy(); upstream.destroy(); });
      s.on('close', () => { sockets.delete(s); socket.destroy(); upstream.destroy(); });
    }
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}
