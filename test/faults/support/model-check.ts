/**
 * Comparisons of what the daemon says with the reference model for the kill -9 fault suite: the whole state
 * (every query of every table, in full), a list watch's initial state, and one revision's change record (every
 * record it carries as the model has it at that revision, and exactly the records its transaction changed).
 * Owner: tests only.
 * Invariants: comparisons go through test/model/normalize.ts (plain values; error messages left out); the model
 * is only read here (queries), never advanced; each function returns its problems (empty: equal).
 */
import {
  ConfigDetail, CronJobsQueryT, DeleteTasksT, HostAttributesQueryT, JobKeysQueryT, JobSummaryQueryT,
  JobUpdateQueryT, MaintenanceQueryT, type QueryRequestT, type QueryResponseT, QuotaQueryT, Result,
  RemoveCronJobT, RemoveMaintenanceRequestT, RemoveQuotaT, type RevisionChangesT, RoleSummaryQueryT,
  SaveCronJobT, SaveHostAttributesT, SaveMaintenanceRequestT, SaveQuotaT, SaveSchedulerMetadataT, SchedulerQueryT,
  TaskQueryT, type TransactionResultT, type TransactionT, TransitionTaskT, UpsertTasksT, type JobKeyT,
} from '../../../core/fbs/strata.js';
import type { StrataClient } from '../../../client/index.js';
import { request } from '../../model/build.js';
import { describe, normalizeQueryResponse, plain } from '../../model/normalize.js';
import type { ReferenceModel } from '../../model/reference.js';
import { roles } from './kill-workload.js';

const text = (value: string | Uint8Array | null): string => String(value ?? '');
const jobText = (job: JobKeyT | null): string => `${text(job?.role ?? null)}/${text(job?.environment ?? null)}/${text(job?.name ?? null)}`;

/** Every query whose answers, together, are the whole state this workload writes. */
export function stateQueries(): QueryRequestT[] {
  const queries = [
    request(Object.assign(new TaskQueryT(), { configDetail: ConfigDetail.FULL })),
    request(new CronJobsQueryT()), request(new JobUpdateQueryT()), request(new HostAttributesQueryT()),
    request(new MaintenanceQueryT()), request(new SchedulerQueryT()), request(new RoleSummaryQueryT()),
  ];
  for (const role of roles) {
    queries.push(request(new QuotaQueryT(role)), request(new JobSummaryQueryT(role)), request(new JobKeysQueryT(role)));
  }
  return queries;
}

export function compareResponse(what: string, daemon: QueryResponseT, model: QueryResponseT): string[] {
  const a = JSON.stringify(normalizeQueryResponse(daemon));
  const b = JSON.stringify(normalizeQueryResponse(model));
  return a === b ? [] : [`${what}: the daemon answered ${describe(daemon, 1500)}, the model ${describe(model, 1500)}`];
}

/** The daemon's whole state (idle, at the model's revision) against the model's. */
export async function stateProblems(client: StrataClient, model: ReferenceModel): Promise<string[]> {
  const queries = stateQueries();
  const answers = await Promise.all(queries.map((q) => client.query(q)));
  return queries.flatMap((q, index) => compareResponse(`state query ${index} (${q.queryType})`, answers[index]!,
    model.query(q)));
}

/** A list watch's initial state (at the model's revision now) against the model's answers to the same queries. */
export function listingProblems(name: string, role: string, responses: QueryResponseT[], model: ReferenceModel): string[] {
  const expected = new Map<Result, QueryRequestT>([
    [Result.TasksResult, request(Object.assign(new TaskQueryT(), { role, limit: 10_000, configDetail: ConfigDetail.FULL }))],
    [Result.CronJobsResult, request(new CronJobsQueryT(role))],
    [Result.JobUpdatesResult, request(new JobUpdateQueryT(role))],
    [Result.QuotaResult, request(new QuotaQueryT(role))],
  ]);
  const problems: string[] = [];
  const seen = new Set<Result>();
  for (const response of responses) {
    const query = expected.get(response.resultType);
    if (query === undefined || seen.has(response.resultType)) {
      problems.push(`${name}: an unexpected ${Result[response.resultType]} in the list state`);
      continue;
    }
    seen.add(response.resultType);
    problems.push(...compareResponse(`${name} list state ${Result[response.resultType]}`, response, model.query(query)));
  }
  if (seen.size !== expected.size) problems.push(`${name}: the list state has ${[...seen].map((r) => Result[r])}`);
  return problems;
}

/** Keys of the records a transaction changed, from its ops and their results (no-ops left out). */
function changedKeys(transaction: TransactionT, result: TransactionResultT): string[] {
  const keys: string[] = [];
  transaction.ops.forEach((operation, index) => {
    const outcome = result.ops[index];
    if (outcome === undefined || outcome.noop) return;
    const op = operation.op;
    if (op instanceof UpsertTasksT) for (const t of op.tasks) keys.push(`task ${text(t.assignedTask!.taskId)}`);
    else if (op instanceof TransitionTaskT) keys.push(`task ${text(op.taskId)}`);
    else if (op instanceof DeleteTasksT) for (const id of op.taskIds) keys.push(`task deleted ${text(id)}`);
    else if (op instanceof SaveCronJobT) keys.push(`cron ${jobText(op.job!.key)}`);
    else if (op instanceof RemoveCronJobT) keys.push(`cron deleted ${jobText(op.key)}`);
    else if (op instanceof SaveQuotaT) keys.push(`quota ${text(op.role)}`);
    else if (op instanceof RemoveQuotaT) keys.push(`quota deleted ${text(op.role)}`);
    else if (op instanceof SaveHostAttributesT) {
      op.attributes.forEach((h, i) => { if (outcome.changed.length === 0 || outcome.changed[i]) keys.push(`host ${text(h.host)}`); });
    } else if (op instanceof SaveMaintenanceRequestT) keys.push(`maintenance ${text(op.request!.host)}`);
    else if (op instanceof RemoveMaintenanceRequestT) keys.push(`maintenance deleted ${text(op.host)}`);
    else if (op instanceof SaveSchedulerMetadataT) keys.push('scheduler');
    else keys.push(`an op this suite does not write: ${operation.opType}`);
  });
  return keys.sort();
}

function recordKeys(changes: RevisionChangesT): string[] {
  return [
    ...changes.tasks.map((t) => `task ${text(t.assignedTask!.taskId)}`),
    ...changes.tasksDeleted.map((t) => `task deleted ${text(t.taskId)}`),
    ...changes.cronJobs.map((c) => `cron ${jobText(c.key)}`),
    ...changes.cronJobsDeleted.map((k) => `cron deleted ${jobText(k)}`),
    ...changes.quotas.map((q) => `quota ${text(q.role)}`),
    ...changes.quotasDeleted.map((role) => `quota deleted ${text(role)}`),
    ...changes.hosts.map((h) => `host ${text(h.host)}`),
    ...changes.maintenance.map((m) => `maintenance ${text(m.host)}`),
    ...changes.maintenanceDeleted.map((host) => `maintenance deleted ${text(host)}`),
    ...(changes.scheduler === null ? [] : ['scheduler']),
    ...changes.jobUpdates.map(() => 'job update'), ...changes.jobUpdatesDeleted.map(() => 'job update deleted'),
  ].sort();
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(plain(a)) === JSON.stringify(plain(b));

/** Each record of the change record as the model has it now (the model stands at its revision). */
function recordProblems(changes: RevisionChangesT, model: ReferenceModel): string[] {
  const problems: string[] = [];
  const result = <T>(query: QueryRequestT): T => model.query(query).result as T;
  for (const t of changes.tasks) {
    const stored = result<{ tasks: unknown[] }>(request(new TaskQueryT(null, null, null, [text(t.assignedTask!.taskId)])));
    if (stored.tasks.length !== 1 || !same(stored.tasks[0], t)) problems.push(`task ${describe(t, 600)} is not the model's ${describe(stored.tasks, 600)}`);
  }
  for (const c of changes.cronJobs) {
    const stored = result<{ jobs: unknown[] }>(request(new CronJobsQueryT(null, c.key)));
    if (stored.jobs.length !== 1 || !same(stored.jobs[0], c)) problems.push(`cron job ${describe(c, 600)} is not the model's`);
  }
  for (const q of changes.quotas) {
    const stored = result<{ quota: unknown; quotaRevision: bigint }>(request(new QuotaQueryT(q.role)));
    if (!same(stored.quota, q.quota) || stored.quotaRevision !== q.modRevision) problems.push(`quota ${describe(q)} is not the model's`);
  }
  for (const h of changes.hosts) {
    const stored = result<{ hosts: unknown[] }>(request(new HostAttributesQueryT([text(h.host)])));
    if (stored.hosts.length !== 1 || !same(stored.hosts[0], h)) problems.push(`host ${describe(h)} is not the model's`);
  }
  for (const m of changes.maintenance) {
    const stored = result<{ requests: unknown[] }>(request(new MaintenanceQueryT([text(m.host)])));
    if (stored.requests.length !== 1 || !same(stored.requests[0], m)) problems.push(`maintenance ${describe(m)} is not the model's`);
  }
  if (changes.scheduler !== null && !same(result<{ metadata: unknown }>(request(new SchedulerQueryT())).metadata, changes.scheduler)) {
    problems.push(`scheduler ${describe(changes.scheduler)} is not the model's`);
  }
  for (const t of changes.tasksDeleted) {
    if (result<{ tasks: unknown[] }>(request(new TaskQueryT(null, null, null, [text(t.taskId)]))).tasks.length !== 0) {
      problems.push(`deleted task ${text(t.taskId)} is in the model`);
    }
  }
  return problems;
}

/** A whole revision's change record against its transaction and the model standing at that revision. */
export function revisionProblems(revision: number, changes: RevisionChangesT, transaction: TransactionT,
  result: TransactionResultT, model: ReferenceModel): string[] {
  const problems: string[] = [];
  if (Number(changes.revision) !== revision) problems.push(`the change record of ${revision} says ${changes.revision}`);
  const expected = changedKeys(transaction, result);
  const got = recordKeys(changes);
  if (expected.join('|') !== got.join('|')) {
    problems.push(`revision ${revision} carries [${got.join(', ')}], its transaction changed [${expected.join(', ')}]`);
  }
  return [...problems, ...recordProblems(changes, model).map((p) => `revision ${revision}: ${p}`)];
}
