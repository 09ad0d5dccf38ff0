/**
 * The snapshot worker's entry: writes one snapshot (write.ts) from workerData and posts the outcome back, so that
 * the writer thread spawns it (spawn.ts) and goes on committing. Owner: one short-lived worker per snapshot.
 * Invariants: exactly one message is posted, {kind: 'done', result} or {kind: 'failed', error}; the slot it was
 * handed is closed in every case (writeSnapshot closes it), so the writer stops honouring the pin.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { writeSnapshot, type SnapshotWriteOptions, type SnapshotWriteResult } from './write.js';

/** What the spawner passes: the options of writeSnapshot without the test hooks. */
export type SnapshotWorkerData = Omit<SnapshotWriteOptions, 'chunkWritten'>;

export type SnapshotWorkerMessage =
  | { kind: 'done'; result: SnapshotWriteResult }
  | { kind: 'failed'; error: Error };

const port = parentPort;
if (port === null) throw new Error('workers/snapshot/main.js runs as a worker thread');
let message: SnapshotWorkerMessage;
try {
  message = { kind: 'done', result: writeSnapshot(workerData as SnapshotWorkerData) };
} catch (error) {
  message = { kind: 'failed', error: error instanceof Error ? error : new Error(String(error)) };
}
port.postMessage(message);
