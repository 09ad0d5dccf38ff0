/**
 * Transactions of the large key space: bulk upserts of up to a few hundred tasks, bulk deletes, batches of
 * transitions, and operations of the ordinary mix (generate-ops.ts), one to three parts per transaction.
 * Owner: tests only.
 * Invariants: the number of stored tasks is steered into [storedLow, storedHigh] (fresh ids and big upserts
 * below it, big deletes above it, a balance inside), so task ids and their string blobs are freed and created
 * again all the time while the engine's trees stay several levels deep; a bulk upsert carries a deliberate
 * mistake rarely (then the whole transaction fails after its checks went through a deep tree).
 */
import type { JobKeyT, OperationT } from '../../core/fbs/strata.js';
import type { GeneratorContext } from './generate.js';
import { deleteOf, operationOf, randomTask, taskFaults, transitionOf, upsertOf } from './generate-ops.js';

const storedLow = 1500;
const storedHigh = 3000;
const upsertTasksMax = 300;     // "a few hundred tasks per transaction": Aurora creates a job's instances at once
const deleteIdsMax = 300;
const transitionsMax = 24;      // each may fail (a deliberate mistake), so a batch stays short enough to mostly pass
const jobsPerUpsertMax = 4;     // a bulk upsert fills a few jobs, so the job index gets long runs of one job
const partsMax = 3;

type Part = (g: GeneratorContext) => OperationT[];

/** Fresh ids (creates) and stored ones (replacements), the share of fresh ones steering the stored count. */
const bulkUpsert: Part = (g) => {
  const count = g.tasks.count();
  const filling = count < storedLow;
  const freshShare = filling ? 0.9 : count > storedHigh ? 0.1 : 0.5;
  const size = filling ? g.prng.range(50, upsertTasksMax) : g.prng.range(1, upsertTasksMax * 2 / 3);
  const jobs: JobKeyT[] = Array.from({ length: 1 + g.prng.int(jobsPerUpsertMax) }, () => g.jobKey());
  const faultIndex = g.rare(0.3) ? g.prng.int(size) : -1;
  const tasks = Array.from({ length: size }, (_, index) => {
    const taskId = g.prng.chance(freshShare) ? g.tasks.freshId(g.prng, g.keys.taskIds) : g.existingTaskId(false);
    return randomTask(g, index === faultIndex ? g.prng.pick(taskFaults) : null, taskId, g.prng.pick(jobs));
  });
  return [upsertOf(g, tasks)];
};

/** Stored ids, distinct; with ignore_missing also a few that are not stored. */
const bulkDelete: Part = (g) => {
  const count = g.tasks.count();
  const size = count > storedHigh ? g.prng.range(50, deleteIdsMax) : count < storedLow ? g.prng.range(1, 10) :
    g.prng.range(1, deleteIdsMax / 2);
  const ids = new Set<string>();
  for (let index = 0; index < size; index += 1) {
    const taskId = g.tasks.storedId(g.prng);
    if (taskId !== null && g.tasks.status(taskId) !== null) ids.add(taskId);
  }
  const ignoreMissing = g.prng.chance(0.3);
  if (ignoreMissing) {
    for (let index = g.prng.int(5); index > 0; index -= 1) ids.add(g.tasks.freshId(g.prng, g.keys.taskIds));
  }
  return [deleteOf(g, [...ids], ignoreMissing)];
};

/** Transitions of stored tasks, one operation each; a task may move twice in one transaction. */
const transitions: Part = (g) => {
  const result: OperationT[] = [];
  for (let index = g.prng.range(1, transitionsMax); index > 0; index -= 1) {
    const taskId = g.tasks.storedId(g.prng);
    if (taskId === null) break;
    result.push(transitionOf(g, taskId));
  }
  return result;
};

const parts: [Part, number][] = [
  [bulkUpsert, 3], [bulkDelete, 2], [transitions, 3], [(g) => [operationOf(g)], 2],
];

export function bulkOperations(g: GeneratorContext): OperationT[] {
  const operations: OperationT[] = [];
  for (let index = g.prng.range(1, partsMax); index > 0; index -= 1) operations.push(...g.weighted(parts)(g));
  return operations;
}
