/**
 * What the tasks of a snapshot add up to per job, role/env and role: the job index and the aggregate blocks, for
 * the bulk load of tasks (restore-tasks.ts). Owner: the writer thread, at startup.
 *
 * Invariants:
 * - Everything per job, role/env and role is derived once the tasks end, from each task's config and status
 *   (counted per (config, status) pair in one pass over the rows).
 * - The blocks equal what tables.ts aggTask (sign 1) leaves after every task, in file order: the same status and
 *   task counts, jobs with tasks, and active totals. Totals are sums of f64 values; they are computed as
 *   (active tasks of a config) x (its value), summed over configs, only when that is exactly the sum aggTask
 *   makes: every value an integer and the sum of their magnitudes per block at most 2^52, so that every partial sum
 *   either way is an integer below 2^53, exact. Otherwise (values that are not integers, or huge) the tasks are
 *   replayed in file order, adding as aggTask does.
 */
import { assert } from '../../core/assert.js';
import { treeBuild } from '../../core/btree.js';
import * as layout from '../../core/layout.js';
import { isActive } from '../../core/status.js';
import { jobIndexShape, oneKeyShape, threeKeyShape, twoKeyShape } from '../../core/store.js';
import { WordKeyTable } from './restore-lookup.js';
import type { ConfigInfo, Tables } from './tables.js';

const statusCount = layout.statusValueCount;
const totalsPerBlock = 16;          // 4 buckets x (cpus, ram, disk, gpus), as in an aggregate block
const exactSumMax = 2 ** 52;        // below 2^53 with room for the rounding of the bound itself

export function grownU32(array: Uint32Array<ArrayBuffer>, needed: number): Uint32Array<ArrayBuffer> {
  if (needed <= array.length) return array;
  const next = new Uint32Array(Math.max(needed, array.length * 2));
  next.set(array);
  return next;
}

/** Key slots (jobs, role/envs, roles): dense numbers for their keys, with the key words of each. */
class Slots {
  private readonly byKey = new WordKeyTable();
  keys: Uint32Array<ArrayBuffer>;
  count = 0;
  private readonly keyWords: number;

  constructor(keyWords: number) {
    this.keyWords = keyWords;
    this.keys = new Uint32Array(64 * keyWords);
  }

  /** The slot of a key (words past keyWords are 0). */
  slot(a: number, b: number, c: number): number {
    let slot = this.byKey.find(a, b, c, 0);
    if (slot < 0) {
      slot = this.count++;
      this.byKey.add(a, b, c, 0, slot);
      this.keys = grownU32(this.keys, this.count * this.keyWords);
      const at = slot * this.keyWords;
      this.keys[at] = a;
      if (this.keyWords > 1) this.keys[at + 1] = b;
      if (this.keyWords > 2) this.keys[at + 2] = c;
    }
    return slot;
  }

  /** Slots in key order (u32 words, as the trees order them). */
  sorted(): number[] {
    const keys = this.keys;
    const words = this.keyWords;
    return Array.from({ length: this.count }, (_, slot) => slot).sort((x, y) => {
      for (let i = 0; i < words; i++) {
        const a = keys[x * words + i]!;
        const b = keys[y * words + i]!;
        if (a !== b) return a - b;
      }
      return 0;
    });
  }
}

/** Per-block sums: counts by status, jobs with tasks, totals. */
interface Blocks { statusCounts: Uint32Array; jobs: Uint32Array; totals: Float64Array; bounds: Float64Array }

function blocks(count: number): Blocks {
  return { statusCounts: new Uint32Array(count * statusCount), jobs: new Uint32Array(count),
    totals: new Float64Array(count * totalsPerBlock), bounds: new Float64Array(count * totalsPerBlock) };
}

export class TaskJobs {
  private readonly configs: ConfigInfo[] = [];                  // by config index (restore-tasks.ts)
  private configJob = new Uint32Array(64);
  private readonly jobs = new Slots(3);
  private readonly envs = new Slots(2);
  private readonly roles = new Slots(1);
  private jobEnv = new Uint32Array(64);
  private jobRole = new Uint32Array(64);

  /** Config `index` (the caller's numbering: 0, 1, 2, ...) and its job. */
  addConfig(index: number, info: ConfigInfo): void {
    assert(index === this.configs.length);
    this.configs.push(info);
    const job = this.jobs.slot(info.roleId, info.envId, info.nameId);
    this.configJob = grownU32(this.configJob, index + 1);
    this.configJob[index] = job;
    this.jobEnv = grownU32(this.jobEnv, this.jobs.count);
    this.jobRole = grownU32(this.jobRole, this.jobs.count);
    this.jobEnv[job] = this.envs.slot(info.roleId, info.envId, 0);
    this.jobRole[job] = this.roles.slot(info.roleId, 0, 0);
  }

  /** The job index entries (role, env, name, row): jobs in key order, rows increasing within a job. */
  jobIndex(tables: Tables, configOfRow: Uint32Array, rows: number): number {
    const jobs = this.jobs;
    const next = new Uint32Array(jobs.count); // the next entry of each job
    for (let row = 0; row < rows; row++) next[this.configJob[configOfRow[row]!]!]!++;
    let at = 0;
    for (const job of jobs.sorted()) {
      const tasks = next[job]!;
      next[job] = at;
      at += tasks;
    }
    const entries = new Uint32Array(rows * 4);
    for (let row = 0; row < rows; row++) {
      const job = this.configJob[configOfRow[row]!]!;
      const entry = next[job]!++ * 4;
      entries[entry] = jobs.keys[job * 3]!;
      entries[entry + 1] = jobs.keys[job * 3 + 1]!;
      entries[entry + 2] = jobs.keys[job * 3 + 2]!;
      entries[entry + 3] = row;
    }
    return treeBuild(tables.context, jobIndexShape, entries, rows);
  }

  /**
   * Writes the job, role/env and role aggregate blocks and their trees (which must be empty: no cron job is
   * loaded yet). A job only cron jobs or updates use has no block yet, as aggTask leaves it.
   */
  writeAggregates(tables: Tables, configOfRow: Uint32Array, statusOfRow: Uint32Array, rows: number): void {
    const { job, env, role } = this.sums(configOfRow, statusOfRow, rows);
    const context = tables.context;
    const roots = tables.roots;
    const jobEntries: number[] = [];
    for (const slot of this.jobs.sorted()) {
      if (!hasTasks(job, slot)) continue;
      env.jobs[this.jobEnv[slot]!]!++;
      role.jobs[this.jobRole[slot]!]!++;
      const keys = this.jobs.keys;
      jobEntries.push(keys[slot * 3]!, keys[slot * 3 + 1]!, keys[slot * 3 + 2]!, writeBlock(tables, job, slot, 0, 1));
    }
    roots[layout.rootJobAggWord] = treeBuild(context, threeKeyShape, new Uint32Array(jobEntries), jobEntries.length / 4);
    const envEntries: number[] = [];
    for (const slot of this.envs.sorted()) {
      const jobs = env.jobs[slot]!;
      if (jobs > 0) envEntries.push(this.envs.keys[slot * 2]!, this.envs.keys[slot * 2 + 1]!,
        writeBlock(tables, env, slot, jobs, jobs));
    }
    roots[layout.rootEnvAggWord] = treeBuild(context, twoKeyShape, new Uint32Array(envEntries), envEntries.length / 3);
    const roleEntries: number[] = [];
    for (const slot of this.roles.sorted()) {
      const jobs = role.jobs[slot]!;
      if (jobs > 0) roleEntries.push(this.roles.keys[slot]!, writeBlock(tables, role, slot, jobs, jobs));
    }
    roots[layout.rootRoleAggWord] = treeBuild(context, oneKeyShape, new Uint32Array(roleEntries), roleEntries.length / 2);
  }

  /** Counts and totals per job, role/env and role block (totals as aggTask sums them: see the invariants). */
  private sums(configOfRow: Uint32Array, statusOfRow: Uint32Array, rows: number): { job: Blocks; env: Blocks;
    role: Blocks } {
    const job = blocks(this.jobs.count);
    const env = blocks(this.envs.count);
    const role = blocks(this.roles.count);
    const statusCounts = new Uint32Array(this.configs.length * statusCount); // tasks by (config, status)
    for (let row = 0; row < rows; row++) statusCounts[configOfRow[row]! * statusCount + statusOfRow[row]!]!++;
    let exact = true;
    for (let config = 0; config < this.configs.length; config++) {
      const slot = this.configJob[config]!;
      const envSlot = this.jobEnv[slot]!;
      const roleSlot = this.jobRole[slot]!;
      let active = 0;
      for (let status = 0; status < statusCount; status++) {
        const tasks = statusCounts[config * statusCount + status]!;
        job.statusCounts[slot * statusCount + status]! += tasks;
        env.statusCounts[envSlot * statusCount + status]! += tasks;
        role.statusCounts[roleSlot * statusCount + status]! += tasks;
        if (isActive(status)) active += tasks;
      }
      if (active === 0) continue;
      const info = this.configs[config]!;
      for (let i = 0; i < 4; i++) {
        const value = info.totals[i]!;
        if (!Number.isInteger(value)) exact = false;
        const column = info.bucket * 4 + i;
        addActive(job, slot * totalsPerBlock + column, active, value);
        addActive(env, envSlot * totalsPerBlock + column, active, value);
        addActive(role, roleSlot * totalsPerBlock + column, active, value);
      }
    }
    for (const sums of [job, env, role]) for (const bound of sums.bounds) if (!(bound <= exactSumMax)) exact = false;
    if (!exact) this.replayTotals(job, env, role, configOfRow, statusOfRow, rows);
    return { job, env, role };
  }

  /** The totals as aggTask adds them: task by task in file order, each active task's values to its three blocks. */
  private replayTotals(job: Blocks, env: Blocks, role: Blocks, configOfRow: Uint32Array, statusOfRow: Uint32Array,
    rows: number): void {
    job.totals.fill(0);
    env.totals.fill(0);
    role.totals.fill(0);
    for (let row = 0; row < rows; row++) {
      if (!isActive(statusOfRow[row]!)) continue;
      const config = configOfRow[row]!;
      const info = this.configs[config]!;
      const slot = this.configJob[config]!;
      const column = info.bucket * 4;
      for (let i = 0; i < 4; i++) {
        job.totals[slot * totalsPerBlock + column + i]! += info.totals[i]!;
        env.totals[this.jobEnv[slot]! * totalsPerBlock + column + i]! += info.totals[i]!;
        role.totals[this.jobRole[slot]! * totalsPerBlock + column + i]! += info.totals[i]!;
      }
    }
  }
}

function addActive(sums: Blocks, at: number, active: number, value: number): void {
  sums.totals[at]! += active * value;
  sums.bounds[at]! += active * Math.abs(value);
}

function hasTasks(sums: Blocks, slot: number): boolean {
  for (let status = 0; status < statusCount; status++) if (sums.statusCounts[slot * statusCount + status]! > 0) return true;
  return false;
}

/** Writes one aggregate block (core/layout.ts) in the building epoch; returns it. */
function writeBlock(tables: Tables, sums: Blocks, slot: number, jobsWithTasks: number, jobs: number): number {
  const block = tables.allocator.alloc(layout.aggBytes);
  const view = tables.view;
  const word = block >>> 2;
  view.u32.fill(0, word, word + (layout.aggBytes >>> 2));
  let tasks = 0;
  for (let status = 0; status < statusCount; status++) {
    const tasksOfStatus = sums.statusCounts[slot * statusCount + status]!;
    view.i32[word + layout.aggStatusCountsWord + status] = tasksOfStatus;
    tasks += tasksOfStatus;
  }
  view.i32[word + layout.aggTaskCountWord] = tasks;
  view.i32[word + layout.aggJobsWithTasksWord] = jobsWithTasks;
  view.i32[word + layout.aggCronCountWord] = 0;
  view.i32[word + layout.aggJobCountWord] = jobs;
  view.f64[(block >>> 3) + layout.aggEpochF64] = tables.context.epochBuilding;
  for (let i = 0; i < totalsPerBlock; i++) {
    view.f64[(block >>> 3) + layout.aggTotalsF64 + i] = sums.totals[slot * totalsPerBlock + i]!;
  }
  return block;
}
