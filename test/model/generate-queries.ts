/**
 * Random queries for the model-based test: every member of the Query union with every option (filters,
 * offset/limit paging, config_detail), with occasional invalid values. Owner: tests only.
 * Invariants: a query never depends on anything but the PRNG; invalid values are rare (a few percent), so
 * most queries return results worth comparing.
 */
import {
  CronJobsQueryT, HostAttributesQueryT, JobKeysQueryT, JobSummaryQueryT, JobUpdateQueryT, JobUpdateStatus,
  MaintenanceQueryT, QueryRequestT, QuotaQueryT, RoleSummaryQueryT, ScheduleStatus, SchedulerQueryT, TaskQueryT,
} from '../../core/fbs/strata.js';
import { jobKey, request, updateKey } from './build.js';
import type { GeneratorContext } from './generate.js';
import {
  environments, hosts, instanceCount, invalidStatuses, jobNames, roles, taskIds, updateKeys, validStatuses,
} from './generate-pools.js';

type QueryMaker = (g: GeneratorContext) => QueryRequestT;

function paging(g: GeneratorContext): { offset: number; limit: number } {
  const offset = g.prng.chance(0.02) ? -1 : g.prng.chance(0.6) ? 0 : g.prng.int(6);
  const limit = g.prng.chance(0.02) ? -1 : g.prng.chance(0.5) ? 0 : 1 + g.prng.int(5);
  return { offset, limit };
}

function configDetail(g: GeneratorContext): number {
  return g.prng.chance(0.01) ? 3 : g.prng.int(3);
}

function role(g: GeneratorContext): string | null {
  return g.prng.pick([...roles, ...roles, '', null, 'nobody']);
}

function someOf<T>(g: GeneratorContext, items: readonly T[]): T[] {
  return Array.from({ length: 1 + g.prng.int(3) }, () => g.prng.pick(items));
}

function statuses(g: GeneratorContext): ScheduleStatus[] {
  const values = someOf(g, validStatuses);
  if (g.prng.chance(0.03)) values.push(g.prng.pick(invalidStatuses));
  return values;
}

function taskQuery(g: GeneratorContext): QueryRequestT {
  const query = new TaskQueryT();
  if (g.prng.chance(0.3)) query.role = g.prng.pick([...roles, ' ', '\t ', 'nobody']);
  if (g.prng.chance(0.2)) query.environment = g.prng.pick([...environments, 'qa']);
  if (g.prng.chance(0.2)) query.jobName = g.prng.pick(jobNames);
  if (g.prng.chance(0.2)) query.taskIds = someOf(g, [...taskIds, 'missing']);
  if (g.prng.chance(0.25)) query.statuses = statuses(g);
  if (g.prng.chance(0.15)) query.instanceIds = someOf(g, [0, 1, 2, 3, instanceCount]);
  if (g.prng.chance(0.15)) query.slaveHosts = someOf(g, [...hosts, 'host-z']);
  if (g.prng.chance(0.15)) query.jobKeys = someOf(g, [0, 1, 2]).map(() => g.jobKey());
  if (g.prng.chance(0.01)) query.taskIds = Array.from({ length: 10_001 }, (_, index) => `t-${index}`);
  Object.assign(query, paging(g));
  query.configDetail = configDetail(g);
  return request(query);
}

function jobUpdateQuery(g: GeneratorContext): QueryRequestT {
  const query = new JobUpdateQueryT();
  if (g.prng.chance(0.25)) query.role = role(g);
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
  return g.prng.chance(0.5) ? [] : someOf(g, [...hosts, 'host-z']);
}

const makers: [QueryMaker, number][] = [
  [taskQuery, 30],
  [(g) => request(new JobKeysQueryT(g.prng.chance(0.5) ? role(g) : null)), 6],
  [() => request(new RoleSummaryQueryT()), 5],
  [(g) => request(new JobSummaryQueryT(g.prng.chance(0.5) ? role(g) : null)), 8],
  [(g) => request(new QuotaQueryT(g.prng.chance(0.05) ? '' : g.prng.pick(roles))), 8],
  [(g) => request(new CronJobsQueryT(g.prng.chance(0.4) ? role(g) : null, g.prng.chance(0.4) ? g.jobKey() : null)), 8],
  [jobUpdateQuery, 15],
  [(g) => request(new HostAttributesQueryT(hostList(g))), 8],
  [(g) => request(new MaintenanceQueryT(hostList(g))), 6],
  [() => request(new SchedulerQueryT()), 4],
  [() => new QueryRequestT(), 0.3],
];
const weightTotal = makers.reduce((total, [, weight]) => total + weight, 0);

export function queryOf(g: GeneratorContext): QueryRequestT {
  let roll = g.prng.next() * weightTotal;
  for (const [maker, weight] of makers) {
    if (roll < weight) return maker(g);
    roll -= weight;
  }
  return taskQuery(g);
}
