/**
 * The next message of a given type on a worker's port (the load generator's and the network benchmark's worker
 * threads wait for their coordinator's 'start', 'stop', ... this way). Owner: a worker thread.
 */
import type { MessagePort } from 'node:worker_threads';

export function nextMessage<T extends { type: string }>(port: MessagePort, types: string | string[]): Promise<T> {
  const wanted = typeof types === 'string' ? [types] : types;
  return new Promise((resolve) => {
    const listener = (message: { type: string }) => {
      if (!wanted.includes(message.type)) return;
      port.off('message', listener);
      resolve(message as T);
    };
    port.on('message', listener);
  });
}
