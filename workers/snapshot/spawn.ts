/**
 * Starts a snapshot of the revision just published, in its own worker, from the writer thread. Owner: the writer
 * thread (tests may call it from theirs, with a WriterCore of their own).
 * Invariants: the pin is taken here, synchronously, between two groups (right after publish), so the revision, its
 * root block and the idempotency window handed over agree; the worker closes the slot when it ends, and if the
 * worker dies without a word the slot is closed here; the writer never waits for the snapshot.
 * Failpoints: a worker counts its own hits from zero, so `snapshot.write=eio@2` would fail every snapshot alike;
 * the worker's points (`snapshot.*`, `backup.*`) are therefore armed only in the first snapshot worker and the
 * first backup worker this thread starts. Later ones run without them: a fault test sees the next one succeed.
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { magicBackup, type Magic } from '../../core/files.js';
import * as layout from '../../core/layout.js';
import { pinClockMs, pinPublishedLong, ReaderSlot, snapshotSlotOwner } from '../reader/pin.js';
import type { SnapshotWorkerData, SnapshotWorkerMessage } from './main.js';
import type { IdempotencyRecord, SnapshotWriteResult } from './write.js';

const workerFile = fileURLToPath(new URL('./main.js', import.meta.url));

/** Workers started by this thread, by kind: the failpoints of a worker are armed in the first of each kind. */
const workersStarted = { snapshot: 0, backup: 0 };

/** The environment of the next worker of this kind: STRATA_FAILPOINTS without its points after the first one. */
function workerEnvironment(kind: 'snapshot' | 'backup'): NodeJS.ProcessEnv {
  const spec = process.env.STRATA_FAILPOINTS ?? '';
  if (workersStarted[kind]++ === 0 || spec === '') return process.env;
  const kept = spec.split(',').filter((entry) => !/^\s*(snapshot|backup)\./.test(entry));
  return { ...process.env, STRATA_FAILPOINTS: kept.join(',') };
}

export interface SnapshotStart {
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
  directory: string;
  revision: number;            // the published revision (WriterCore.revision right after publish)
  term: number;
  idempotency: IdempotencyRecord[];
  /** Backups: the file name and magic (see SnapshotWriteOptions). */
  fileName?: string;
  magic?: Magic;
  /** Pacing of the worker (SnapshotWriteOptions.idleRatio); default 1: at most half a core. */
  idleRatio?: number;
}

/** Pins the published revision and starts its snapshot; the promise settles when the file is installed. */
export function spawnSnapshot(start: SnapshotStart): Promise<SnapshotWriteResult> {
  const { slot, root } = pinPublishedLong(start.control, pinClockMs());
  const data: SnapshotWorkerData = {
    arena: start.arena, control: start.control, slotIndex: slot.slot, root, directory: start.directory,
    revision: start.revision, term: start.term, idempotency: start.idempotency, fileName: start.fileName,
    magic: start.magic, idleRatio: start.idleRatio ?? 1,
  };
  let worker: Worker;
  try {
    worker = new Worker(workerFile, { workerData: data,
      env: workerEnvironment(start.magic === magicBackup ? 'backup' : 'snapshot') });
  } catch (error) {
    slot.close();
    throw error;
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.once('message', (message: SnapshotWorkerMessage) => {
      settled = true;
      if (message.kind === 'done') resolve(message.result);
      else reject(message.error);
    });
    worker.once('error', (error) => {
      if (settled) return;
      settled = true;
      closeIfOwned(start.control, slot.slot);
      reject(error);
    });
    worker.once('exit', (code) => {
      if (settled) return;
      settled = true;
      closeIfOwned(start.control, slot.slot);
      reject(new Error(`the snapshot worker exited with code ${code} before it answered`));
    });
  });
}

/** Closes the slot of a worker that died without answering (if it died after closing it, nothing to do). */
function closeIfOwned(control: SharedArrayBuffer, slotIndex: number): void {
  const owner = Atomics.load(new Int32Array(control), layout.slotWord(slotIndex, layout.slotOwnerWord));
  if (owner === snapshotSlotOwner) ReaderSlot.adopt(control, slotIndex).close();
}
