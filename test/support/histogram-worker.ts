/**
 * A worker thread for test/open-loop.test.ts: records `count` latencies of `ms` each (intended = sent) into an
 * OperationHistogram and posts it encoded, as a load generator's worker does.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OperationHistogram } from '../../loadtest/open-loop.js';

const { count, ms, errors } = workerData as { count: number; ms: number; errors: number };
const h = new OperationHistogram();
for (let i = 0; i < count; i++) h.record(0, 0, ms);
h.errors = errors;
parentPort!.postMessage(h.encode());
