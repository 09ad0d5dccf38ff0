/**
 * The small key space of the model-based test: pools of roles, jobs, task ids, hosts, statuses, and the invalid
 * values the generator mixes in. Owner: tests only.
 * Invariants: pools are small on purpose (collisions and conflicts must be frequent); every "bad" value breaks
 * exactly one rule of docs/semantics.md.
 */
import { JobKeyT, JobUpdateKeyT, ScheduleStatus } from '../../core/fbs/strata.js';
import { jobKey, updateKey } from './build.js';

export const roles = ['www-data', 'mesos', 'ads'] as const;
export const environments = ['prod', 'devel'] as const;
export const jobNames = ['hello', 'cron_a', 'batch.x'] as const;
export const instanceCount = 4;
export const jobKeys: readonly JobKeyT[] = roles.flatMap((role) => environments.flatMap((environment) =>
  jobNames.map((name) => jobKey(role, environment, name))));
/** Job updates live on a few jobs only, so that events find their update. */
export const updateKeys: readonly JobUpdateKeyT[] = [jobKeys[0]!, jobKeys[4]!, jobKeys[8]!, jobKeys[13]!]
  .flatMap((job) => ['u1', 'u2'].map((id) => updateKey(job, id)));
export const taskIds = ['t-0', 't-1', 't-2', 't-3', 't-4', 't-5', 't-6', 't-7', 't-8', 't-9', 't-\u00e9',
  't-\uff01', 't-\u{1f600}'] as const;
export const hosts = ['host-a', 'host-b', 'host-c', 'host-d'] as const;
export const badTaskIds = ['', 'bad\u0001id', 'x'.repeat(257)] as const;
export const badHosts = ['', 'h\u007f'] as const;
export const badIdentifiers = ['bad role', '', 'x'.repeat(129), 'r\u00e9le'] as const;
export const validStatuses = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 16, 17, 18] as ScheduleStatus[];
/** Byte values that are not ScheduleStatus members (the field is a byte: -128..127). */
export const invalidStatuses = ([8, 10, 14, 15, 19, 100, -1] as number[]) as ScheduleStatus[];
