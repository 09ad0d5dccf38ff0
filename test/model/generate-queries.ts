/**
 * Random queries for the model-based test: every member of the Query union with every option (filters,
 * offset/limit paging, config_detail), with occasional invalid values. Owner: tests only.
 * Invariants: a query depends only on the PRNG, the key space and the stored task ids; invalid values are rare (a
 * few percent), so most queries return results worth comparing; in the large key space, unlimited pages are rare
 * (they return thousands of tasks) and offsets reach deep into the results.
 */
import {
  CronJobsQueryT, HostAttributesQueryT, JobKeysQueryT, JobSummaryQueryT, JobUpdateQueryT, JobUpdateStatus,
  MaintenanceQueryT, QueryRequestT, QuotaQueryT, RoleSummaryQueryT, ScheduleStatus, SchedulerQueryT, TaskQueryT,
} from '../../core/fbs/strata.js';
import { jobKey, request, updateKey } from './build.js';
import type { GeneratorContext } from './generate.js';
import { invalidStatuses, validStatuses } from './generate-pools.js';

type QueryMaker = (g: GeneratorContext) => QueryRequestT;

function paging(g: GeneratorContext): { offset: number; limit: number } {
  const offset = g.prng.chance(0.02) ? -1 : g.prng.chance(0.6) ? 0 :
    g.prng.int(g.prng.chance(0.5) ? Math.min(6, g.keys.offsetMax) : g.keys.offsetMax);
  const limit = g.prng.chance(0.02) ? -1 : g.rare(0.5) ? 0 : 1 + g.prng.int(g.keys.limitMax);
  return { offset, limit };
}

function configDetail(g: GeneratorContext): number {
  return g.prng.chance(0.01) ? 3 : g.prng.int(3);
}

function role(g: GeneratorContext): string | null {
  return g.prng.pick([...g.keys.roles, ...g.keys.roles, '', null, 'nobody']);
}

function someOf<T>(g: GeneratorContext, items: readonly T[]): T[] {
  return Array.from({ length: 1 + g.prng.int(3) }, () => g.prng.pick(items));
}

function statuses(g: GeneratorContext): ScheduleStatus[] {
  const values = someOf(g, validStatuses);
  if (g.prng.chance(0.03)) values.push(g.prng.pick(invalidStatuses));
  return values;
}

/** Stored ids, ids of the pool (stored or not) and an id never used. */
function taskIds(g: GeneratorContext): string[] {
  return Array.from({ length: 1 + g.prng.int(g.keys.queryIdsMax) }, () => g.prng.chance(0.05) ? 'missing' :
    g.prng.chance(0.5) ? g.existingTaskId(false) : g.prng.pick(g.keys.taskIds));
}

function taskQuery(g: GeneratorContext): QueryRequestT {
  const query = new TaskQueryT();
  const keys = g.keys;
  if (g.prng.chance(0.3)) query.role = g.prng.pick([...keys.roles, ' ', '\t ', 'nobody']);
  if (g.prng.chance(0.2)) query.environment = g.prng.pick([...keys.environments, 'qa']);
  if (g.prng.chance(0.2)) query.jobName = g.prng.pick(keys.jobNames);
  if (g.prng.chance(0.2)) query.taskIds = taskIds(g);
  if (g.prng.chance(0.25)) query.statuses = statuses(g);
  if (g.prng.chance(0.15)) {
    query.instanceIds = someOf(g, [0, 1, 2, keys.instanceCount - 1, keys.instanceCount]);
  }
  if (g.prng.chance(0.15)) query.slaveHosts = someOf(g, [...keys.hosts, 'host-z']);
  if (g.prng.chance(0.15)) query.jobKeys = someOf(g, [0, 1, 2]).map(() => g.jobKey());
  if (g.prng.chance(0.01)) query.taskIds = Array.from({ length: 10_001 }, (_, index) => `t-${index}`);
  Object.assign(query, paging(g));
  query.configDetail = configDetail(g);
  return request(query);
}

function jobUpdateQuery(g: GeneratorContext): QueryRequestT {
  const query = new JobUpdateQueryT();
  if (g.prng.chance(0.25)) query.role = role(g);
  const updateKeys = g.keys.updateKeys;
  if (g.prng.chance(0.15)) {
    const key = g.prng.pick(updateKeys);
    query.key = updateKey(key.job!, String(key.id));
  }
  if (g.prng.chance(0.2)) query.jobKey = g.prng.chance(0.7) ? jobKey(String(g.prng.pick(updateKeys).job?.role),
    String(g.prng.pick(updateKeys).job?.environment), String(g.prng.pick(updateKeys).job?.name)) : g.jobKey();
  if (g.prng.chance(0.2)) query.user = g.prng.pick(['alice', 'bob', '']);
  if (g.prng.chance(0.25)) {
    query.updateStatuses = someOf(g, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as JobUpdateStatus[]);
    if (g.prng.chance(0.03)) query.updateStatuses.push(11 as JobUpdateStatus);
  }
  Object.assign(query, paging(g));
  query.configDetail = configDetail(g);
  return request(query);
}

function hostList(g: GeneratorContext): string[] {
  return g.prng.chance(0.5) ? [] : someOf(g, [...g.keys.hosts, 'host-z']);
}

const makers: [QueryMaker, number][] = [
  [taskQuery, 30],
  [(g) => request(new JobKeysQueryT(g.prng.chance(0.5) ? role(g) : null)), 6],
  [() => request(new RoleSummaryQueryT()), 5],
  [(g) => request(new JobSummaryQueryT(g.prng.chance(0.5) ? role(g) : null)), 8],
  [(g) => request(new QuotaQueryT(g.prng.chance(0.05) ? '' : g.prng.pick(g.keys.roles))), 8],
  [(g) => request(new CronJobsQueryT(g.prng.chance(0.4) ? role(g) : null, g.prng.chance(0.4) ? g.jobKey() : null)), 8],
  [jobUpdateQuery, 15],
  [(g) => request(new HostAttributesQueryT(hostList(g))), 8],
  [(g) => request(new MaintenanceQueryT(hostList(g))), 6],
  [() => request(new SchedulerQueryT()), 4],
  [() => new QueryRequestT(), 0.3],
];

export function queryOf(g: GeneratorContext): QueryRequestT {
  return g.weighted(makers)(g);
}
