/**
 * A client process for the vanishing-client suite, killed with SIGKILL by the test: it says Hello, sends its keyed
 * commits (vanish-commits.ts) without waiting for answers, subscribes to the whole history and to a list, stops
 * reading, prints `sent`, and waits to be killed. Owner: tests only (run as `node vanish-child.js URL ROLE ID N`).
 * Invariants: it never exits by itself (a ten-minute bound ends an orphan); its transactions are exactly those the
 * test resends.
 */
import { f, make, RawClient } from '../../support/raw-client.js';
import { vanishTransaction } from './vanish-commits.js';

const orphanMsMax = 10 * 60_000;

async function main(): Promise<void> {
  const [url, role, clientId, countText, listRole] = process.argv.slice(2);
  const count = Number(countText);
  if (url === undefined || role === undefined || clientId === undefined || !(count >= 0) || listRole === undefined) {
    throw new Error('usage: vanish-child URL ROLE CLIENT_ID COUNT LIST_ROLE');
  }
  const client = await RawClient.open(url);
  for (let sequence = 0; sequence < count; sequence++) {
    void client.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...vanishTransaction(role, clientId, sequence)] }));
  }
  void client.request(f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: 0n }));
  void client.request(f.Body.WatchRequest, make(f.WatchRequestT, { list: true, filter: make(f.WatchFilterT, { role: listRole }) }));
  (client.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  process.stdout.write('sent\n');
  setTimeout(() => process.exit(3), orphanMsMax);
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(2);
});
