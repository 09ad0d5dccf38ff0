/**
 * The tasks a transaction being generated can count on: those the model stores, as the operations generated so
 * far in the transaction leave them (created, replaced with a new status, transitioned, deleted). Owner: tests
 * only.
 * Invariants: reads the model, never changes it; what it says holds exactly if every operation noted so far
 * succeeds (a failing one fails the whole transaction anyway); `begin()` forgets the transaction's changes.
 */
import type { Prng } from '../../core/prng.js';
import type { ScheduleStatus } from '../../core/fbs/strata.js';
import type { ReferenceModel } from './reference.js';

const pickTries = 8;   // enough to find a free id while at most 3 of 5 pool ids are stored

export class TaskTracker {
  private storedIds: string[] = [];
  private storedRevision = -1;
  /** This transaction's changes by task id: the status it leaves, or null for a deleted task. */
  private readonly changes = new Map<string, ScheduleStatus | null>();
  private countDelta = 0;

  constructor(private readonly model: ReferenceModel) {}

  begin(): void {
    this.changes.clear();
    this.countDelta = 0;
  }

  /** The number of tasks stored once the operations noted so far apply. */
  count(): number {
    return this.model.taskCount() + this.countDelta;
  }

  storedCount(): number {
    return this.stored().length;
  }

  /** A task id stored before the transaction, one it has not deleted if a few tries find one; null if none. */
  storedId(prng: Prng): string | null {
    const stored = this.stored();
    if (stored.length === 0) return null;
    let taskId = prng.pick(stored);
    for (let tries = 1; tries < pickTries && this.changes.get(taskId) === null; tries += 1) taskId = prng.pick(stored);
    return taskId;
  }

  /** An id of the pool that is not stored, if a few tries find one (else a stored one: a replacement). */
  freshId(prng: Prng, pool: readonly string[]): string {
    let taskId = prng.pick(pool);
    for (let tries = 1; tries < pickTries && this.status(taskId) !== null; tries += 1) taskId = prng.pick(pool);
    return taskId;
  }

  status(taskId: string): ScheduleStatus | null {
    const changed = this.changes.get(taskId);
    return changed === undefined ? this.model.taskStatus(taskId) : changed;
  }

  /** An operation of the transaction leaves the task in `status` (null: deleted). */
  note(taskId: string, status: ScheduleStatus | null): void {
    const before = this.status(taskId) !== null;
    const after = status !== null;
    this.countDelta += (after ? 1 : 0) - (before ? 1 : 0);
    this.changes.set(taskId, status);
  }

  /** The model's task ids, read again only when its revision moved (tasks change only with a new revision). */
  private stored(): readonly string[] {
    if (this.storedRevision !== this.model.revision) {
      this.storedIds = this.model.taskIds();
      this.storedRevision = this.model.revision;
    }
    return this.storedIds;
  }
}
