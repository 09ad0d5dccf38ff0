/**
 * Reference model, queries: every member of the Query union, by scanning the Maps. Owner: tests only.
 * Invariants: queries never change the state; results share objects with stored records, so the caller must
 * copy them (ReferenceModel.query round-trips the whole response through FlatBuffers); orders and paging are
 * those of docs/semantics.md, strings in UTF-8 byte order.
 */
import { text } from '../../core/text.js';
import {
  ConfigDetail, CronJobsQueryT, CronJobsResultT, HostAttributesQueryT, HostAttributesResultT, JobConfigurationT,
  JobKeysQueryT, JobKeysResultT, JobStatsT, JobSummaryQueryT, JobSummaryResultT, JobSummaryT, JobKeyT,
  MaintenanceQueryT, MaintenanceResultT, Query, QueryRequestT, QuotaQueryT, QuotaResultT, ResourceTotalsT,
  ResourceType, Result, RoleSummaryResultT, RoleSummaryT, ScheduleStatus, SchedulerResultT, StoredConfigT,
  TaskQueryT, TasksResultT, ConstraintT, QueryResponseT, JobUpdateQueryT,
} from '../../core/fbs/strata.js';
import {
  activeStatuses, compareJobKeys, compareUtf8, copyJobKey, failedStatuses, finishedStatuses, invalid, isMember,
  isStatus, jobKeyString, modelLimits, pendingStatuses, runningStatuses,
} from './reference-common.js';
import { configOf } from './reference-configs.js';
import { checkConfigDetail, checkPaging, checkVectors, paged, storedConfigs } from './reference-results.js';
import { jobUpdateQuery } from './reference-updates-query.js';
import { State, TaskRecord } from './reference-state.js';

function taskJob(state: State, record: TaskRecord): JobKeyT {
  const job = configOf(state, record.configHex).config.job;
  if (job === null) throw new Error('reference model: stored config without job');
  return job;
}

function taskMatcher(state: State, query: TaskQueryT): (record: TaskRecord) => boolean {
  const role = text(query.role);
  const environment = text(query.environment);
  const jobName = text(query.jobName);
  const taskIds = new Set(query.taskIds);
  const statuses = new Set<number>(query.statuses);
  const instanceIds = new Set(query.instanceIds);
  const slaveHosts = new Set(query.slaveHosts);
  const jobKeys = new Set(query.jobKeys.map(jobKeyString));
  return (record) => {
    const job = taskJob(state, record);
    const assigned = record.task.assignedTask;
    return (role.trim() === '' || text(job.role) === role) &&
      (environment === '' || text(job.environment) === environment) &&
      (jobName === '' || text(job.name) === jobName) &&
      (taskIds.size === 0 || taskIds.has(text(assigned?.taskId))) &&
      (statuses.size === 0 || statuses.has(record.task.status)) &&
      (instanceIds.size === 0 || instanceIds.has(assigned?.instanceId ?? -1)) &&
      (slaveHosts.size === 0 || slaveHosts.has(text(assigned?.slaveHost))) &&
      (jobKeys.size === 0 || jobKeys.has(jobKeyString(job)));
  };
}

function taskQuery(state: State, query: TaskQueryT): TasksResultT {
  checkPaging(query.offset, query.limit);
  checkVectors([query.taskIds, query.statuses, query.instanceIds, query.slaveHosts, query.jobKeys]);
  for (const status of query.statuses) if (!isStatus(status)) throw invalid(`status ${status}`);
  checkConfigDetail(query.configDetail);
  const matcher = taskMatcher(state, query);
  const matches = [...state.tasks.entries()].filter(([, record]) => matcher(record));
  matches.sort(([a], [b]) => compareUtf8(a, b));
  const page = paged(matches, query.offset, query.limit).map(([, record]) => record);
  return new TasksResultT(page.map((record) => record.task),
    storedConfigs(state, page.map((record) => record.configHex), query.configDetail), matches.length);
}

function jobKeysQuery(state: State, query: JobKeysQueryT): JobKeysResultT {
  const role = text(query.role);
  const keys = new Map<string, JobKeyT>();
  for (const record of state.tasks.values()) {
    const job = taskJob(state, record);
    if (role === '' || text(job.role) === role) keys.set(jobKeyString(job), job);
  }
  return new JobKeysResultT([...keys.values()].sort(compareJobKeys).map(copyJobKey));
}

function roleSummaryQuery(state: State): RoleSummaryResultT {
  const roles = new Map<string, { jobs: Set<string>; cronJobCount: number; taskCount: number }>();
  const entry = (role: string) => {
    const existing = roles.get(role) ?? { jobs: new Set<string>(), cronJobCount: 0, taskCount: 0 };
    roles.set(role, existing);
    return existing;
  };
  for (const record of state.tasks.values()) {
    const job = taskJob(state, record);
    const summary = entry(text(job.role));
    summary.jobs.add(jobKeyString(job));
    summary.taskCount += 1;
  }
  for (const record of state.cronJobs.values()) {
    const summary = entry(text(record.job.key?.role));
    summary.jobs.add(jobKeyString(record.job.key));
    summary.cronJobCount += 1;
  }
  const names = [...roles.keys()].sort(compareUtf8);
  return new RoleSummaryResultT(names.map((role) => {
    const summary = roles.get(role)!;
    return new RoleSummaryT(role, summary.jobs.size, summary.cronJobCount, summary.taskCount);
  }));
}

const statusCountsLength = 19;

function jobStats(counts: readonly number[]): JobStatsT {
  const sum = (statuses: ReadonlySet<ScheduleStatus>): number =>
    [...statuses].reduce((total, status) => total + (counts[status] ?? 0), 0);
  return new JobStatsT(sum(runningStatuses), sum(finishedStatuses), sum(failedStatuses), sum(pendingStatuses));
}

function jobSummaryQuery(state: State, query: JobSummaryQueryT): JobSummaryResultT {
  const role = text(query.role);
  const jobs = new Map<string, { key: JobKeyT; counts: number[]; cron: JobConfigurationT | null }>();
  const entry = (key: JobKeyT) => {
    const existing = jobs.get(jobKeyString(key)) ??
      { key, counts: new Array<number>(statusCountsLength).fill(0), cron: null };
    jobs.set(jobKeyString(key), existing);
    return existing;
  };
  for (const record of state.tasks.values()) {
    const job = taskJob(state, record);
    if (role !== '' && text(job.role) !== role) continue;
    const counts = entry(job).counts;
    counts[record.task.status] = (counts[record.task.status] ?? 0) + 1;
  }
  for (const record of state.cronJobs.values()) {
    if (record.job.key === null || (role !== '' && text(record.job.key.role) !== role)) continue;
    entry(record.job.key).cron = record.job;
  }
  const entries = [...jobs.values()].sort((a, b) => compareJobKeys(a.key, b.key));
  return new JobSummaryResultT(entries.map((job) =>
    new JobSummaryT(copyJobKey(job.key), jobStats(job.counts), job.counts, job.cron)));
}

function isDedicated(constraints: readonly ConstraintT[]): boolean {
  return constraints.some((constraint) => text(constraint.name) === 'dedicated');
}

function addResources(totals: ResourceTotalsT, state: State, record: TaskRecord): void {
  for (const resource of configOf(state, record.configHex).config.resources) {
    // In millionths, as docs/semantics.md says: the running total is always k / 10^6, so k comes back exactly.
    if (resource.type === ResourceType.NUM_CPUS) {
      totals.numCpus = (Math.round(totals.numCpus * 1e6) + Math.round(resource.numCpus * 1e6)) / 1e6;
    }
    if (resource.type === ResourceType.RAM_MB) totals.ramMb += Number(resource.ramMb);
    if (resource.type === ResourceType.DISK_MB) totals.diskMb += Number(resource.diskMb);
    if (resource.type === ResourceType.NUM_GPUS) totals.numGpus += Number(resource.numGpus);
  }
}

function quotaQuery(state: State, query: QuotaQueryT): QuotaResultT {
  const role = text(query.role);
  if (role === '') throw invalid('QuotaQuery without role');
  const stored = state.quotas.get(role);
  const result = new QuotaResultT(role, stored?.quota ?? null, stored?.modRevision ?? 0n,
    new ResourceTotalsT(), new ResourceTotalsT(), new ResourceTotalsT(), new ResourceTotalsT());
  for (const record of state.tasks.values()) {
    const config = configOf(state, record.configHex).config;
    if (text(config.job?.role) !== role || !activeStatuses.has(record.task.status)) continue;
    const dedicated = isDedicated(config.constraints);
    const totals = config.production ?
      (dedicated ? result.prodDedicated : result.prodShared) :
      (dedicated ? result.nonProdDedicated : result.nonProdShared);
    if (totals !== null) addResources(totals, state, record);
  }
  return result;
}

function cronJobsQuery(state: State, query: CronJobsQueryT): CronJobsResultT {
  const role = text(query.role);
  const key = query.job === null ? null : jobKeyString(query.job);
  const matches = [...state.cronJobs.values()].filter((record) =>
    (role === '' || text(record.job.key?.role) === role) && (key === null || jobKeyString(record.job.key) === key));
  matches.sort((a, b) => compareJobKeys(a.job.key, b.job.key));
  return new CronJobsResultT(matches.map((record) => record.job),
    storedConfigs(state, matches.map((record) => record.configHex), ConfigDetail.FULL));
}

function hostsOf(hosts: readonly string[]): (all: Iterable<string>) => string[] {
  checkVectors([hosts]);
  return (all) => (hosts.length === 0 ? [...all] : [...new Set(hosts)]).sort(compareUtf8);
}

function hostAttributesQuery(state: State, query: HostAttributesQueryT): HostAttributesResultT {
  const hosts = hostsOf(query.hosts)(state.hosts.keys());
  return new HostAttributesResultT(hosts.flatMap((host) => state.hosts.get(host) ?? []));
}

function maintenanceQuery(state: State, query: MaintenanceQueryT): MaintenanceResultT {
  const hosts = hostsOf(query.hosts)(state.maintenance.keys());
  return new MaintenanceResultT(hosts.flatMap((host) => state.maintenance.get(host) ?? []));
}

/** The result of one query, or a ModelError (INVALID_ARGUMENT). */
export function runQuery(state: State, request: QueryRequestT): Pick<QueryResponseT, 'resultType' | 'result'> {
  const query = request.query;
  if (query === null) throw invalid('a request without a query');
  switch (request.queryType) {
    case Query.TaskQuery: return { resultType: Result.TasksResult, result: taskQuery(state, query as TaskQueryT) };
    case Query.JobKeysQuery:
      return { resultType: Result.JobKeysResult, result: jobKeysQuery(state, query as JobKeysQueryT) };
    case Query.RoleSummaryQuery: return { resultType: Result.RoleSummaryResult, result: roleSummaryQuery(state) };
    case Query.JobSummaryQuery:
      return { resultType: Result.JobSummaryResult, result: jobSummaryQuery(state, query as JobSummaryQueryT) };
    case Query.QuotaQuery: return { resultType: Result.QuotaResult, result: quotaQuery(state, query as QuotaQueryT) };
    case Query.CronJobsQuery:
      return { resultType: Result.CronJobsResult, result: cronJobsQuery(state, query as CronJobsQueryT) };
    case Query.JobUpdateQuery:
      return { resultType: Result.JobUpdatesResult, result: jobUpdateQuery(state, query as JobUpdateQueryT) };
    case Query.HostAttributesQuery: return { resultType: Result.HostAttributesResult,
      result: hostAttributesQuery(state, query as HostAttributesQueryT) };
    case Query.MaintenanceQuery:
      return { resultType: Result.MaintenanceResult, result: maintenanceQuery(state, query as MaintenanceQueryT) };
    case Query.SchedulerQuery:
      return { resultType: Result.SchedulerResult, result: new SchedulerResultT(state.scheduler) };
    default: throw invalid(`query type ${request.queryType}`);
  }
}
