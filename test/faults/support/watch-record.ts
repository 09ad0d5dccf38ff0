/**
 * What the watchers of the kill -9 fault suite saw, and the filter rule they are judged by. Owner: tests only.
 * Invariants:
 * - A WatchRecorder consumes its SDK watch as it arrives and keeps, in arrival order, every changed revision,
 *   its position (the last revision of a change, a bookmark or a list's end) and each completed list state;
 *   an interrupted list (reset -1) drops the pieces of that list. A watch that ends or throws is recorded as
 *   such (a watch in this suite never ends: COMPACTED is not configured to happen, so it is a failure).
 * - `subsetFor(filter, revision)` is written from docs/protocol.md (Watch: filters, what is delivered), not from
 *   daemon/watch.ts: the records a filtered subscriber must get out of the whole revision, or null when none.
 */
import {
  RecordTable, type JobKeyT, type QueryResponseT, type RevisionChangesT,
} from '../../../core/fbs/strata.js';
import type { Watch, WatchFilterFields } from '../../../client/index.js';
import { plain } from '../../model/normalize.js';
import { taskJobs } from './kill-workload.js';

export interface Listing { revision: bigint; responses: QueryResponseT[] }

export class WatchRecorder {
  readonly changes: { revision: bigint; changes: RevisionChangesT }[] = [];
  readonly listings: Listing[] = [];
  position = -1n;
  problem: string | null = null;
  /** Revisions of this watcher already compared (everything <= checkedTo). */
  checkedTo: bigint;
  private pieces: QueryResponseT[] = [];
  readonly done: Promise<void>;

  constructor(readonly name: string, readonly filter: WatchFilterFields, private readonly watch: Watch,
    startAfter: bigint) {
    this.checkedTo = startAfter;
    this.done = this.consume();
  }

  private async consume(): Promise<void> {
    try {
      for await (const message of this.watch) {
        switch (message.type) {
          case 'changes':
            this.changes.push({ revision: message.revision, changes: message.changes });
            this.position = message.revision;
            break;
          case 'progress':
            this.position = message.revision;
            break;
          case 'state':
            this.pieces.push(message.response);
            break;
          case 'stateEnd':
            this.listings.push({ revision: message.revision, responses: this.pieces });
            this.pieces = [];
            this.position = message.revision;
            break;
          case 'reset':
            if (message.revision !== -1n) this.problem ??= `${this.name}: a reset at ${message.revision} (no backup was committed)`;
            this.pieces = [];
            break;
        }
      }
      this.problem ??= `${this.name}: the watch ended`;
    } catch (error) {
      this.problem ??= `${this.name}: the watch failed: ${(error as Error).message}`;
    }
  }

  close(): Promise<void> {
    return this.watch.cancel();
  }
}

const recordFields = ['tasks', 'tasksDeleted', 'cronJobs', 'cronJobsDeleted', 'jobUpdates', 'jobUpdatesDeleted',
  'quotas', 'quotasDeleted', 'hosts', 'maintenance', 'maintenanceDeleted', 'scheduler'] as const;

/** The records of a revision, comparable (timestamp_ms left out: a replayed revision has the replay's time). */
export function recordsOf(changes: Pick<RevisionChangesT, typeof recordFields[number]>): string {
  const out: Record<string, unknown> = {};
  for (const field of recordFields) out[field] = plain(changes[field]);
  return JSON.stringify(out);
}

function jobMatches(filter: WatchFilterFields, job: JobKeyT | null): boolean {
  if ((filter.role ?? '') === '') return true;
  return job !== null && job.role === filter.role &&
    ((filter.environment ?? '') === '' || job.environment === filter.environment) &&
    ((filter.jobName ?? '') === '' || job.name === filter.jobName);
}

function tableMatches(filter: WatchFilterFields, table: RecordTable): boolean {
  return (filter.tables ?? []).length === 0 || filter.tables!.includes(table);
}

/** What a subscriber with `filter` must receive of the whole revision `all`: its records, or null (nothing). */
export function subsetFor(filter: WatchFilterFields, all: RevisionChangesT): typeof all | null {
  const task = tableMatches(filter, RecordTable.TASK);
  const cron = tableMatches(filter, RecordTable.CRON_JOB);
  const update = tableMatches(filter, RecordTable.JOB_UPDATE);
  const quota = tableMatches(filter, RecordTable.QUOTA) && (filter.environment ?? '') === '';
  const roleless = (filter.role ?? '') === '';
  const quotaRole = (role: string | Uint8Array | null) => roleless || role === filter.role;
  const subset = {
    ...all,
    tasks: all.tasks.filter((t) => task && jobMatches(filter, taskJobs.get(String(t.assignedTask?.taskId)) ?? null)),
    tasksDeleted: all.tasksDeleted.filter((t) => task && jobMatches(filter, t.job)),
    cronJobs: all.cronJobs.filter((c) => cron && jobMatches(filter, c.key)),
    cronJobsDeleted: all.cronJobsDeleted.filter((k) => cron && jobMatches(filter, k)),
    jobUpdates: all.jobUpdates.filter((u) => update && jobMatches(filter, u.update?.summary?.key?.job ?? null)),
    jobUpdatesDeleted: all.jobUpdatesDeleted.filter((k) => update && jobMatches(filter, k.job)),
    quotas: all.quotas.filter((q) => quota && quotaRole(q.role)),
    quotasDeleted: all.quotasDeleted.filter((role) => quota && quotaRole(role)),
    hosts: roleless && tableMatches(filter, RecordTable.HOST_ATTRIBUTES) ? all.hosts : [],
    maintenance: roleless && tableMatches(filter, RecordTable.MAINTENANCE_REQUEST) ? all.maintenance : [],
    maintenanceDeleted: roleless && tableMatches(filter, RecordTable.MAINTENANCE_REQUEST) ? all.maintenanceDeleted : [],
    scheduler: roleless && tableMatches(filter, RecordTable.SCHEDULER) ? all.scheduler : null,
  } as RevisionChangesT;
  const count = (changes: RevisionChangesT) => recordFields.reduce((sum, field) => {
    const value = changes[field];
    return sum + (Array.isArray(value) ? value.length : value === null ? 0 : 1);
  }, 0);
  // A revision without records (none in this workload) goes to every subscriber.
  if (count(all) > 0 && count(subset) === 0) return null;
  return subset;
}
