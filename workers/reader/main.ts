/**
 * Piscina task handler of the reader pool. Owner: each reader thread runs its own copy.
 * A task is a batch of QueryRequest bytes, answered on one pinned revision; the answer is one transferred buffer:
 *
 *   [u32 count][u32 length x count][response bytes, one after the other]
 *
 * Invariants: the pin is released before returning, whatever happens; if the writer expired the pin meanwhile,
 * every answer of the batch is replaced by DEADLINE_EXCEEDED (reads under an expired pin may be wrong).
 */
import * as flatbuffers from 'flatbuffers';
import { move, workerData } from 'piscina';
import { threadId } from 'node:worker_threads';
import { ArenaView } from '../../core/arena.js';
import { failpoint } from '../../core/failpoints.js';
import { ErrorCode, ErrorT, QueryResponseT } from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import { StoreReader } from '../../core/store.js';
import { DeadlineError, pinClockMs, ReaderSlot } from './pin.js';
import { QueryRunner } from './queries.js';

export interface ReaderData { arena: SharedArrayBuffer; control: SharedArrayBuffer }

const data = workerData as ReaderData;
const view = new ArenaView(data.arena);
const store = new StoreReader(view, new Uint32Array(layout.rootWords));
const slot = new ReaderSlot(data.control, threadId + 1);
const runner = new QueryRunner(view, store, () => slot.expired());
process.on('exit', () => slot.close());

function loadRoots(root: number): void {
  view.refresh();
  store.roots.set(view.u32.subarray(root >>> 2, (root >>> 2) + layout.rootWords));
  store.revision = view.f64[(root >>> 3) + layout.rootRevisionF64]!;
}

function deadline(revision: number): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const response = new QueryResponseT(BigInt(revision));
  response.error = new ErrorT(ErrorCode.DEADLINE_EXCEEDED, 'the read held its revision longer than pinMsMax', -1, -1,
    BigInt(revision));
  b.finish(response.pack(b));
  return b.asUint8Array().slice();
}

export function answer(requests: Uint8Array[]): Uint8Array[] {
  loadRoots(slot.pin(pinClockMs()));
  const responses: Uint8Array[] = [];
  let expired = false;
  try {
    failpoint('reader.query'); // while pinned: the worst moment for a reader to crash or hang
    for (const request of requests) responses.push(runner.run(request));
  } catch (error) {
    if (!(error instanceof DeadlineError) && !slot.expired()) {
      slot.release();
      throw error;
    }
    expired = true;
  }
  if (!slot.release() || expired) return requests.map(() => deadline(store.revision));
  return responses;
}

export function pack(responses: Uint8Array[]): Uint8Array {
  let bytes = 4 + 4 * responses.length;
  for (const response of responses) bytes += response.length;
  const out = new Uint8Array(bytes);
  const header = new DataView(out.buffer);
  header.setUint32(0, responses.length, true);
  let at = 4 + 4 * responses.length;
  responses.forEach((response, i) => {
    header.setUint32(4 + 4 * i, response.length, true);
    out.set(response, at);
    at += response.length;
  });
  return out;
}

export default function query(task: { requests: Uint8Array[] }): unknown {
  return move(pack(answer(task.requests)));
}
