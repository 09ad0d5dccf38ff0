/**
 * Query requests for the client's conveniences, and the typed results they return. Owner: the caller's thread.
 * Invariants: a convenience returns the result of the type it asked for or throws (a StrataError with the
 * query's own error, or ProtocolError when the server answered with another result type).
 */
import { encode } from '../core/codec.js';
import {
  ConfigDetail, CronJobsQueryT, ErrorCode, HostAttributesQueryT, JobKeysQueryT, JobSummaryQueryT, JobUpdateQueryT,
  JobUpdateStatus, MaintenanceQueryT, Query, QueryRequestT, QueryResponseT, QuotaQueryT, Result, RoleSummaryQueryT,
  ScheduleStatus, SchedulerQueryT, TaskQueryT,
} from '../core/fbs/strata.js';
import { errorOf, ProtocolError } from './errors.js';
import { jobKey, type JobKeyLike, jobUpdateKey, type JobUpdateKeyLike } from './keys.js';

/** A query's result with the revision it was read at. */
export interface QueryResult<T> { revision: bigint; result: T }

export interface TaskQueryFields {
  role?: string;
  environment?: string;
  jobName?: string;
  taskIds?: string[];
  statuses?: ScheduleStatus[];
  instanceIds?: number[];
  slaveHosts?: string[];
  jobKeys?: JobKeyLike[];
  offset?: number;
  limit?: number;
  configDetail?: ConfigDetail;
}

export interface JobUpdateQueryFields {
  role?: string;
  key?: JobUpdateKeyLike;
  jobKey?: JobKeyLike;
  user?: string;
  updateStatuses?: JobUpdateStatus[];
  offset?: number;
  limit?: number;
  configDetail?: ConfigDetail;
}

export interface CronJobsQueryFields { role?: string; job?: JobKeyLike }

export function queryBytes(type: Query, query: QueryRequestT['query']): Uint8Array {
  return encode(new QueryRequestT(type, query), 256);
}

export function taskQuery(f: TaskQueryFields): Uint8Array {
  const q = new TaskQueryT(f.role ?? null, f.environment ?? null, f.jobName ?? null, f.taskIds ?? [], f.statuses ?? [],
    f.instanceIds ?? [], f.slaveHosts ?? [], (f.jobKeys ?? []).map(jobKey), f.offset ?? 0, f.limit ?? 0,
    f.configDetail ?? ConfigDetail.FULL);
  return queryBytes(Query.TaskQuery, q);
}

export function jobUpdateQuery(f: JobUpdateQueryFields): Uint8Array {
  const q = new JobUpdateQueryT(f.role ?? null, f.key === undefined ? null : jobUpdateKey(f.key),
    f.jobKey === undefined ? null : jobKey(f.jobKey), f.user ?? null, f.updateStatuses ?? [], f.offset ?? 0,
    f.limit ?? 0, f.configDetail ?? ConfigDetail.FULL);
  return queryBytes(Query.JobUpdateQuery, q);
}

export const jobKeysQuery = (role: string) => queryBytes(Query.JobKeysQuery, new JobKeysQueryT(role));
export const roleSummaryQuery = () => queryBytes(Query.RoleSummaryQuery, new RoleSummaryQueryT());
export const jobSummaryQuery = (role: string) => queryBytes(Query.JobSummaryQuery, new JobSummaryQueryT(role));
export const quotaQuery = (role: string) => queryBytes(Query.QuotaQuery, new QuotaQueryT(role));
export const cronJobsQuery = (f: CronJobsQueryFields) => queryBytes(Query.CronJobsQuery,
  new CronJobsQueryT(f.role ?? null, f.job === undefined ? null : jobKey(f.job)));
export const hostAttributesQuery = (hosts: string[]) => queryBytes(Query.HostAttributesQuery, new HostAttributesQueryT(hosts));
export const maintenanceQuery = (hosts: string[]) => queryBytes(Query.MaintenanceQuery, new MaintenanceQueryT(hosts));
export const schedulerQuery = () => queryBytes(Query.SchedulerQuery, new SchedulerQueryT());

/** The typed result of a response, or the query's error thrown. */
export function resultOf<T>(response: QueryResponseT, type: Result): QueryResult<T> {
  if (response.error !== null && response.error.code !== ErrorCode.OK) throw errorOf(response.error);
  if (response.resultType !== type || response.result === null) {
    throw new ProtocolError(`expected a ${Result[type]}, got ${Result[response.resultType] ?? response.resultType}`);
  }
  return { revision: response.revision, result: response.result as T };
}

