/**
 * Commits that change many tasks at once, for load generators (bench-network's committer, loadtest's transitions):
 * every stored task's current id and status read in pages, then transactions of `batch` TransitionTask ops that
 * move distinct tasks between RUNNING and KILLING. Owner: a load generator worker thread.
 * Invariants: a BatchTransitions owns its ids (no other connection changes them), so its compare-and-set on the
 * status it set last holds as long as every transaction it built committed.
 */
import * as flatbuffers from 'flatbuffers';
import * as f from '../core/fbs/strata.js';
import { Connection, QueryReader } from './network-client.js';
import { pageTasksMax, ResultReader, taskPageQuery } from './network-queries.js';
import { eventMessage, schedulerHost } from './workload.js';

/** Every stored task's id and status, read in pages (configs by hash only). */
export async function currentTasks(connection: Connection): Promise<{ ids: string[]; statuses: Uint8Array }> {
  const ids: string[] = [];
  const statuses: number[] = [];
  const queries = new QueryReader();
  const results = new ResultReader();
  const task = new f.ScheduledTask();
  const assigned = new f.AssignedTask();
  for (let offset = 0; ; offset += pageTasksMax) {
    const count = await new Promise<number>((resolve, reject) => {
      connection.onFrame = (envelope) => {
        const response = queries.read(envelope);
        if (response === null) return reject(new Error(`committer: a task page failed: ${queries.error}`));
        const result = results.tasks(response);
        for (let i = 0; i < result.tasksLength(); i++) {
          result.tasks(i, task);
          ids.push(task.assignedTask(assigned)!.taskId()!);
          statuses.push(task.status());
        }
        resolve(result.tasksLength());
      };
      connection.query(taskPageQuery(offset, pageTasksMax));
    });
    if (count < pageTasksMax) break;
  }
  return { ids, statuses: Uint8Array.from(statuses) };
}

/**
 * Transactions of `batch` TransitionTask ops on consecutive tasks (cycling through all of them), each moving
 * its task between RUNNING and KILLING with a compare-and-set on the status set last: every op changes its task.
 */
export class BatchTransitions {
  private readonly builder = new flatbuffers.Builder(16 * 1024);
  private readonly offsets: number[] = [];
  private next = 0;

  constructor(private readonly ids: string[], private readonly statuses: Uint8Array, private readonly batch: number) {}

  bytes(): Uint8Array {
    const b = this.builder;
    b.clear();
    const scheduler = b.createString(schedulerHost);
    const messages = new Map<number, number>();
    const timestamp = BigInt(Date.now());
    this.offsets.length = 0;
    for (let op = 0; op < this.batch; op++) {
      const index = this.next;
      this.next = (index + 1) % this.ids.length;
      const from = this.statuses[index] as f.ScheduleStatus;
      const to = from === f.ScheduleStatus.RUNNING ? f.ScheduleStatus.KILLING : f.ScheduleStatus.RUNNING;
      this.statuses[index] = to;
      let message = messages.get(to);
      if (message === undefined) {
        message = b.createString(eventMessage(to, -1));
        messages.set(to, message);
      }
      const id = b.createString(this.ids[index]!);
      const transition = f.TransitionTask.createTransitionTask(b, id, to, true, from, false, timestamp, message,
        scheduler, 0, 0, 0, -1, -1);
      this.offsets.push(f.Operation.createOperation(b, f.Op.TransitionTask, transition));
    }
    const ops = f.Transaction.createOpsVector(b, this.offsets);
    const none = f.Transaction.createPreconditionsVector(b, []);
    const configs = f.Transaction.createConfigsVector(b, []);
    b.finish(f.Transaction.createTransaction(b, 0, none, configs, ops));
    return b.asUint8Array();
  }
}

