/**
 * The writer thread's entry. Owner: the writer thread.
 * Drains the commit port into a group (at most writerGroupTransactionsMax transactions), commits each, publishes
 * once, then answers the whole group. A bug (assertion) or a full arena mid-apply throws: the thread dies, and
 * the main thread treats that as fatal.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { writerGroupTransactionsMax } from '../../core/limits.js';
import { pinClockMs } from '../reader/pin.js';
import { WriterCore } from './writer.js';

export interface WriterData {
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
  arenaBytesMax: number;
  pinMsMax: number;
  port: MessagePort;
}

export interface CommitMessage { kind: 'commit'; ids: number[]; transactions: Uint8Array[] }
export interface StatsMessage { kind: 'stats'; id: number }
export type WriterRequest = CommitMessage | StatsMessage;
export interface ResultsMessage { kind: 'results'; ids: number[]; results: Uint8Array[] }

const data = workerData as WriterData;
const writer = new WriterCore({
  arena: data.arena, control: data.control, arenaBytesMax: data.arenaBytesMax, pinMsMax: data.pinMsMax,
  now: pinClockMs,
});
const port = data.port;

function group(first: CommitMessage): void {
  const ids: number[] = [];
  const results: Uint8Array[] = [];
  let message: WriterRequest | undefined = first;
  while (message !== undefined) {
    if (message.kind === 'commit') {
      for (let i = 0; i < message.transactions.length; i++) {
        ids.push(message.ids[i]!);
        results.push(writer.commit(message.transactions[i]!));
      }
    } else {
      port.postMessage({ kind: 'stats', id: message.id, stats: writer.stats() });
    }
    if (ids.length >= writerGroupTransactionsMax) break;
    message = receiveMessageOnPort(port)?.message as WriterRequest | undefined;
  }
  // The durability issue appends the group's log records and fdatasyncs here, before publish.
  writer.publish();
  port.postMessage({ kind: 'results', ids, results } satisfies ResultsMessage);
}

port.on('message', (message: WriterRequest) => {
  if (message.kind === 'commit') group(message);
  else port.postMessage({ kind: 'stats', id: message.id, stats: writer.stats() });
});
port.postMessage({ kind: 'ready' });
