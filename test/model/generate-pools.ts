/**
 * The key spaces of the model-based test: pools of roles, jobs, task ids, hosts, and the invalid values and
 * statuses the generator mixes in. Owner: tests only.
 * Invariants: every "bad" value breaks exactly one rule of docs/semantics.md; every pool value is valid. A key
 * space is built once, from constants (no PRNG), so a seed's run depends on the seed and the key space only.
 *
 * Two key spaces:
 * - small: pools small on purpose, so collisions, conflicts, no-ops and errors are frequent;
 * - large: thousands of task ids alive at once, so the engine's copy-on-write B+trees (core/btree.ts, about 31
 *   entries per leaf of the task id index) grow to several levels, split, merge, and free and reuse the task id
 *   string blobs their inner keys point at. Its task ids are built to meet the task id index's comparison (the
 *   first 8 UTF-8 bytes as two words, then the whole string): long shared prefixes, ids shorter than 8 bytes,
 *   ids that are prefixes of others, multi-byte and astral characters, and ids of the longest valid length.
 */
import { mix32 } from '../../core/prng.js';
import { JobKeyT, JobUpdateKeyT, ScheduleStatus } from '../../core/fbs/strata.js';
import { textBytesMax } from '../../core/limits.js';
import { jobKey, updateKey } from './build.js';

export interface KeySpace {
  readonly name: 'small' | 'large';
  readonly roles: readonly string[];
  readonly environments: readonly string[];
  readonly jobNames: readonly string[];
  readonly jobKeys: readonly JobKeyT[];
  /** Instance ids are in [0, instanceCount). */
  readonly instanceCount: number;
  /** Job updates live on a few jobs only, so that events find their update. */
  readonly updateKeys: readonly JobUpdateKeyT[];
  readonly taskIds: readonly string[];
  readonly hosts: readonly string[];
  /** Deliberate mistakes and costly edge values (GeneratorContext.rare) happen this much as often as in small. */
  readonly rareScale: number;
  /** Query paging: offsets in [0, offsetMax), limits in [1, limitMax]. */
  readonly offsetMax: number;
  readonly limitMax: number;
  /** At most this many task ids in a TaskQuery's task_ids filter. */
  readonly queryIdsMax: number;
  /** The share of configs given inline (the rest by hash): an inline config is canonicalized and hashed again. */
  readonly inlineConfigShare: number;
}

function jobKeysOf(roles: readonly string[], environments: readonly string[], names: readonly string[]): JobKeyT[] {
  return roles.flatMap((role) => environments.flatMap((environment) =>
    names.map((name) => jobKey(role, environment, name))));
}

function updateKeysOf(jobs: readonly JobKeyT[]): JobUpdateKeyT[] {
  return jobs.flatMap((job) => ['u1', 'u2'].map((id) => updateKey(job, id)));
}

const smallRoles = ['www-data', 'mesos', 'ads'];
const smallJobKeys = jobKeysOf(smallRoles, ['prod', 'devel'], ['hello', 'cron_a', 'batch.x']);

export const smallKeySpace: KeySpace = {
  name: 'small',
  roles: smallRoles,
  environments: ['prod', 'devel'],
  jobNames: ['hello', 'cron_a', 'batch.x'],
  jobKeys: smallJobKeys,
  instanceCount: 4,
  updateKeys: updateKeysOf([smallJobKeys[0]!, smallJobKeys[4]!, smallJobKeys[8]!, smallJobKeys[13]!]),
  taskIds: ['t-0', 't-1', 't-2', 't-3', 't-4', 't-5', 't-6', 't-7', 't-8', 't-9', 't-\u00e9', 't-\uff01',
    't-\u{1f600}'],
  hosts: ['host-a', 'host-b', 'host-c', 'host-d'],
  rareScale: 1,
  offsetMax: 6,
  limitMax: 5,
  queryIdsMax: 3,
  inlineConfigShare: 0.5,
};

const largeRoleCount = 20;
const largeJobNameCount = 30;
const largeHostCount = 300;
const largeTaskIdCount = 5000;   // with 1,500-3,000 alive, about half the pool is free to be created again

const largeRoles = Array.from({ length: largeRoleCount }, (_, index) =>
  index === 0 ? 'www-data' : index % 4 === 1 ? `svc-${index}` : `team_${index.toString(36)}`);
const largeEnvironments = ['prod', 'devel', 'staging'];
const largeJobNames = Array.from({ length: largeJobNameCount }, (_, index) =>
  ['api', 'batch.x', 'cron_a', 'web-frontend'][index % 4]! + (index < 4 ? '' : `.${index}`));
const largeJobKeys = jobKeysOf(largeRoles, largeEnvironments, largeJobNames);

function largeHost(index: number): string {
  const rack = Math.floor(index / 20);
  return index % 3 === 0 ? `host-${String(index).padStart(3, '0')}` : `rack${rack}-node${index % 20}.example.com`;
}

/** One task id of the large pool; the shapes take turns so that each lands all over the id order. */
function largeTaskId(index: number): string {
  const hex = mix32(index).toString(16).padStart(8, '0');
  const job = largeJobKeys[mix32(index ^ 0x5bd1e995) % largeJobKeys.length]!;
  switch (index % 10) {
    case 0: case 1: case 2: case 3: // Aurora's shape: the same 8-byte prefix ("17000000") for thousands of ids
      return `${1700000000000 + index * 13}-${job.role}-${job.environment}-${job.name}-${index % 50}-${hex}`;
    case 4: case 5: return `task-${String(index).padStart(5, '0')}`;   // "task-000": a shared prefix, short tail
    case 6: return `t${index}`;                                         // shorter than 8 bytes; prefixes: t1 < t10
    case 7: return ['\u00e9t\u00e9-', '\uff01-', '\u{1f600}-', 't-\u00e9'][index % 4]! + index.toString(36);
    case 8: return `${'prefix/'.repeat(20)}${hex}-${index}`;            // long: compared far past the prefix words
    default: { // the longest valid ids (256 bytes), differing only in their last characters
      const tail = `-${index}`;
      return 'x'.repeat(textBytesMax - tail.length) + tail;
    }
  }
}

export const largeKeySpace: KeySpace = {
  name: 'large',
  roles: largeRoles,
  environments: largeEnvironments,
  jobNames: largeJobNames,
  jobKeys: largeJobKeys,
  instanceCount: 50,
  updateKeys: updateKeysOf(largeJobKeys.filter((_, index) => index % 23 === 0)),
  taskIds: Array.from({ length: largeTaskIdCount }, (_, index) => largeTaskId(index)),
  hosts: Array.from({ length: largeHostCount }, (_, index) => largeHost(index)),
  rareScale: 0.1,
  offsetMax: 3000,
  limitMax: 200,
  queryIdsMax: 40,
  inlineConfigShare: 0.15,
};

export const keySpaces = { small: smallKeySpace, large: largeKeySpace } as const;
export type KeySpaceName = keyof typeof keySpaces;

export const badTaskIds = ['', 'bad\u0001id', 'x'.repeat(257)] as const;
export const badHosts = ['', 'h\u007f'] as const;
export const badIdentifiers = ['bad role', '', 'x'.repeat(129), 'r\u00e9le'] as const;
export const validStatuses = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 16, 17, 18] as ScheduleStatus[];
/** Byte values that are not ScheduleStatus members (the field is a byte: -128..127). */
export const invalidStatuses = ([8, 10, 14, 15, 19, 100, -1] as number[]) as ScheduleStatus[];
