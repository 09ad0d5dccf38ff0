/**
 * The standard scheduler workload (shared reference workload.md), deterministic from a seed: roles × envs × jobs ×
 * instances tasks with one ~1.5 KiB config per job, bulk-load transactions, and single-task lifecycle
 * transitions. Owner: benchmark and test processes (main thread or a load generator worker); never imported by
 * workers/ or daemon/. Configs: workload-config.ts; task constants: workload-task.ts; fast bytes: workload-bytes.ts.
 *
 * Invariants:
 * - Every value is a function of (options, index): task i is drawn from a PRNG reseeded with (seed, i), config c
 *   from (seed, c). So any task can be produced alone, in any order, on any thread, and always the same.
 * - Task ids are unique: each holds its role, env, job and instance; a replacement has a later timestamp.
 * - Each `…Bytes` function or method returns bytes that decode to what its object-API twin returns.
 * - Objects handed out share config objects (`Transaction.configs`, `configHash` lists) through a bounded
 *   cache: never mutate what you are given.
 */
import { assert } from '../core/assert.js';
import { configHashBytes } from '../core/config.js';
import {
  DeleteTasks, DeleteTasksT, JobKeyT, Op, Operation, OperationT, PreconditionKind, PreconditionT, RecordTable,
  ScheduledTaskT, ScheduleStatus, Transaction, TransactionT, TransitionTaskT, UpsertTasks, UpsertTasksT,
} from '../core/fbs/strata.js';
import { Prng } from '../core/prng.js';
import { appendConfig, appendTask, emptyVector, encodeTransition, offsetVector } from './workload-bytes.js';
import {
  AsciiBuilder, buildWorkloadConfig, configBytesDefault, configOverheadBytes, envNames, type JobNames, WorkloadConfig,
} from './workload-config.js';
import {
  eventMessage, hex8, hostCount, hostName, isTerminal, lifecyclePath, portFirst, portPairCount, portsOf,
  scheduledTaskOf, scheduleSpanMs, schedulerHost, slaveId, statusShare, TaskFacts, terminalStatuses, timestampMsBase,
} from './workload-task.js';

export { encodeTransition } from './workload-bytes.js';
export { configBytesDefault, envNames, WorkloadConfig, type JobNames } from './workload-config.js';
export {
  eventMessage, hostCount, hostName, lifecyclePath, scheduleSpanMs, schedulerHost, slaveId, statusShare, TaskFacts,
  terminalStatuses, timestampMsBase,
} from './workload-task.js';

export interface WorkloadOptions {
  roles: number;
  envs: number;
  jobsPerEnv: number;
  instances: number;
  seed: number;
  /** Canonical bytes per config; default configBytesDefault (1536). */
  configBytes?: number;
  /** Spread tasks over this many distinct configs (at least one per job); default one per job. */
  distinctConfigs?: number;
}

export const rolesMax = 100_000;                  // 100k roles × 2 × 10 × 50 = 100M tasks: beyond any benchmark
export const instancesMax = 10_000;               // Aurora's default cap on instances per job
export const jobsPerEnvMax = 1000;
export const taskCountMax = 1 << 24;              // 16M: per-task state lives in typed arrays indexed by task
export const tasksPerTransactionMax = 10_000;     // the engine's transactionTasksMax (docs/semantics.md)
export const configCacheMax = 4096;               // ~8 KiB of objects each: ~32 MB, far more than a bulk txn touches
export const configCountMax = 1 << 20;            // every config's hash is kept (16 B each): 16 MB at most
const replacementShare = 0.08;                    // tasks that replace a failed one (ancestor id, failure count)
const saltTask = 0x7461736b;                      // 'task'
const saltTransition = 0x74726e73;                // 'trns'
const statusEndRunning = statusShare.RUNNING;     // a task's status is drawn once from [0, 1) against these bounds
const statusEndPending = statusEndRunning + statusShare.PENDING;
const statusEndAssigned = statusEndPending + statusShare.ASSIGNED;
const statusEndStarting = statusEndAssigned + statusShare.STARTING;
const zero = BigInt(0);

// ---------------------------------------------------------------------------------------------------------------
// The data set
// ---------------------------------------------------------------------------------------------------------------

/** Options for the standard sizes: 10k, 100k (the default) and 1M tasks scale the number of roles. */
export function workloadOptions(taskCount = 100_000, seed = 1): WorkloadOptions {
  assert(taskCount % 1000 === 0, 'task counts are whole thousands (one role = 1,000 tasks)');
  return { roles: taskCount / 1000, envs: 2, jobsPerEnv: 10, instances: 50, seed };
}

function checkCount(count: number, countMax: number, name: string): void {
  assert(Number.isInteger(count), `${name} is an integer`);
  assert(count >= 1, `${name} >= 1`);
  assert(count <= countMax, `${name} <= ${countMax}`);
}

/** Options come from benchmark code and command lines, never from a client: asserting is validating here. */
function checkOptions(o: WorkloadOptions): void {
  checkCount(o.roles, rolesMax, 'roles');
  checkCount(o.envs, envNames.length, 'envs');
  checkCount(o.jobsPerEnv, jobsPerEnvMax, 'jobsPerEnv');
  checkCount(o.instances, instancesMax, 'instances');
  assert(Number.isInteger(o.seed), 'seed is an integer');
  assert(o.roles * o.envs * o.jobsPerEnv * o.instances <= taskCountMax, 'at most taskCountMax tasks');
}

function digits(count: number, minimum: number): number {
  return Math.max(minimum, String(count - 1).length);
}

const workloads = new WeakMap<WorkloadOptions, Workload>();

/**
 * The data set of one WorkloadOptions: task i is job floor(i / instances), instance i % instances; jobs are
 * ordered role, then env, then job name. Holds a bounded cache of configs, nothing per task.
 */
export class Workload {
  readonly taskCount: number;
  readonly jobCount: number;
  readonly configCount: number;
  readonly configBytes: number;
  readonly roleNames: readonly string[];
  readonly jobNames: readonly string[];
  private readonly variantsBase: number;   // every job has this many configs …
  private readonly variantsExtra: number;  // … and the first variantsExtra jobs one more
  private readonly taskPrng = new Prng(0);
  private readonly configPrng = new Prng(0);
  private readonly configs = new Map<number, WorkloadConfig>();
  private readonly configHashes: Uint8Array;       // configHashBytes per config, filled as configs are built
  private readonly configHashKnown: Uint8Array;    // 1 once a config's hash is in configHashes
  private readonly offsets = new Int32Array(tasksPerTransactionMax);
  private readonly facts = new TaskFacts();
  private readonly builder = new AsciiBuilder(1 << 20);
  private readonly instanceParts: string[] = [];  // `<instance>-`, the part of a task id after the job
  private idMiddleJobIndex = -1;                   // tasks come in job order: one cached middle is enough
  private idMiddleLast = '';
  private configOverheadBytes = -1;                // measured on the first config built (configOverheadBytes)

  constructor(readonly options: WorkloadOptions) {
    checkOptions(options);
    this.jobCount = options.roles * options.envs * options.jobsPerEnv;
    this.taskCount = this.jobCount * options.instances;
    this.configCount = options.distinctConfigs ?? this.jobCount;
    this.configBytes = options.configBytes ?? configBytesDefault;
    assert(Number.isInteger(this.configCount), 'distinctConfigs is an integer');
    assert(this.configCount >= this.jobCount, 'distinctConfigs >= jobs: a config names its job');
    this.variantsBase = Math.floor(this.configCount / this.jobCount);
    this.variantsExtra = this.configCount % this.jobCount;
    assert(this.variantsBase + (this.variantsExtra > 0 ? 1 : 0) <= options.instances,
      'distinctConfigs <= jobs × instances: every config is used by a task');
    assert(this.configCount <= configCountMax, 'at most configCountMax configs');
    this.configHashes = new Uint8Array(this.configCount * configHashBytes);
    this.configHashKnown = new Uint8Array(this.configCount);
    const roleDigits = digits(options.roles, 3);
    const jobDigits = digits(options.jobsPerEnv, 2);
    const roleNames: string[] = [];
    for (let role = 0; role < options.roles; role++) roleNames.push(`role-${String(role).padStart(roleDigits, '0')}`);
    const jobNames: string[] = [];
    for (let job = 0; job < options.jobsPerEnv; job++) jobNames.push(`job-${String(job).padStart(jobDigits, '0')}`);
    this.roleNames = roleNames;
    this.jobNames = jobNames;
    for (let instance = 0; instance < options.instances; instance++) this.instanceParts.push(`${instance}-`);
  }

  /** One Workload per options object, so its config cache is shared by every caller. */
  static of(options: WorkloadOptions): Workload {
    let workload = workloads.get(options);
    if (workload === undefined) {
      workload = new Workload(options);
      workloads.set(options, workload);
    }
    return workload;
  }

  jobNamesOf(jobIndex: number): JobNames {
    assert(jobIndex >= 0, 'job index >= 0');
    assert(jobIndex < this.jobCount, 'job index < jobCount');
    const o = this.options;
    const jobsPerRole = o.envs * o.jobsPerEnv;
    const role = this.roleNames[Math.floor(jobIndex / jobsPerRole)];
    const environment = envNames[Math.floor((jobIndex % jobsPerRole) / o.jobsPerEnv)];
    const name = this.jobNames[jobIndex % o.jobsPerEnv];
    assert(role !== undefined);
    assert(environment !== undefined);
    assert(name !== undefined);
    return { role, environment, name };
  }

  jobKey(jobIndex: number): JobKeyT {
    const names = this.jobNamesOf(jobIndex);
    return new JobKeyT(names.role, names.environment, names.name);
  }

  jobIndexOfTask(taskIndex: number): number {
    return Math.floor(taskIndex / this.options.instances);
  }

  variantCount(jobIndex: number): number {
    return this.variantsBase + (jobIndex < this.variantsExtra ? 1 : 0);
  }

  firstConfigOfJob(jobIndex: number): number {
    return jobIndex * this.variantsBase + Math.min(jobIndex, this.variantsExtra);
  }

  configIndexOfTask(taskIndex: number): number {
    const jobIndex = this.jobIndexOfTask(taskIndex);
    const instance = taskIndex - jobIndex * this.options.instances;
    return this.firstConfigOfJob(jobIndex) + (instance % this.variantCount(jobIndex));
  }

  /** Config `configIndex`, from the cache or built (deterministically) now. */
  config(configIndex: number): WorkloadConfig {
    const cached = this.configs.get(configIndex);
    if (cached !== undefined) return cached;
    assert(configIndex >= 0, 'config index >= 0');
    assert(configIndex < this.configCount, 'config index < configCount');
    const boundary = this.variantsExtra * (this.variantsBase + 1);
    const jobIndex = configIndex < boundary ? Math.floor(configIndex / (this.variantsBase + 1))
      : this.variantsExtra + Math.floor((configIndex - boundary) / this.variantsBase);
    const variant = configIndex - this.firstConfigOfJob(jobIndex);
    assert(variant >= 0);
    assert(variant < this.variantCount(jobIndex));
    if (this.configOverheadBytes < 0) {
      this.configOverheadBytes = configOverheadBytes(this.jobNamesOf(0), this.options.seed, this.configPrng);
    }
    const built = buildWorkloadConfig(this.jobNamesOf(jobIndex), configIndex, variant, this.options.seed,
      this.configBytes, this.configOverheadBytes, this.configPrng);
    if (this.configs.size >= configCacheMax) this.configs.clear(); // a bound, not an LRU: rebuilding is cheap
    this.configs.set(configIndex, built);
    this.configHashes.set(built.canonical.hash, configIndex * configHashBytes);
    this.configHashKnown[configIndex] = 1;
    return built;
  }

  /** Config `configIndex`'s hash, kept for every config once built (so transitions never rebuild configs). */
  configHash(configIndex: number): Uint8Array {
    if (this.configHashKnown[configIndex] !== 1) this.config(configIndex);
    const start = configIndex * configHashBytes;
    return this.configHashes.subarray(start, start + configHashBytes);
  }

  /** The numbers of task `taskIndex` (ids left empty): what a benchmark needs to know the initial state. */
  taskState(taskIndex: number, into: TaskFacts = new TaskFacts()): TaskFacts {
    assert(taskIndex >= 0, 'task index >= 0');
    assert(taskIndex < this.taskCount, 'task index < taskCount');
    const prng = this.taskPrng;
    prng.reseed(this.options.seed, taskIndex, saltTask);
    // Every draw is made for every task, in this order, so the stream layout never depends on the status.
    const statusDraw = prng.float();
    const terminal = terminalStatuses[prng.int(terminalStatuses.length)];
    assert(terminal !== undefined);
    into.eventTimestampsMs[0] = timestampMsBase + prng.int(scheduleSpanMs);
    into.eventTimestampsMs[1] = into.eventTimestampsMs[0] + prng.range(50, 2000);
    into.eventTimestampsMs[2] = into.eventTimestampsMs[1] + prng.range(100, 3000);
    into.eventTimestampsMs[3] = into.eventTimestampsMs[2] + prng.range(2000, 30_000);
    into.eventTimestampsMs[4] = into.eventTimestampsMs[3] + prng.range(60_000, 86_400_000);
    const hostIndex = prng.int(hostCount);
    const portHttp = portFirst + 2 * prng.int(portPairCount);
    const replacement = prng.chance(replacementShare);
    const failureCount = 1 + prng.int(3);
    into.taskIndex = taskIndex;
    into.jobIndex = this.jobIndexOfTask(taskIndex);
    into.instance = taskIndex - into.jobIndex * this.options.instances;
    into.configIndex = this.configIndexOfTask(taskIndex);
    const ended = statusDraw >= statusEndStarting;
    const pathLength = statusDraw < statusEndRunning ? 4 : statusDraw < statusEndPending ? 1
      : statusDraw < statusEndAssigned ? 2 : statusDraw < statusEndStarting ? 3 : 4;
    into.status = ended ? terminal : lifecyclePath[pathLength - 1] as ScheduleStatus;
    for (let event = 0; event < pathLength; event++) into.eventStatuses[event] = lifecyclePath[event] as number;
    into.eventStatuses[pathLength] = terminal;
    into.eventCount = ended ? pathLength + 1 : pathLength;
    into.hostIndex = pathLength > 1 ? hostIndex : -1;
    into.portHttp = pathLength > 1 ? portHttp : 0;
    into.failureCount = replacement ? failureCount : 0;
    into.taskId = '';
    into.ancestorId = '';
    return into;
  }

  /** Everything about task `taskIndex`, ids included. */
  task(taskIndex: number, into: TaskFacts = new TaskFacts()): TaskFacts {
    this.taskState(taskIndex, into);
    const prng = this.taskPrng; // continues the task's stream where taskState stopped
    const idHex = prng.next();
    const ancestorMs = (into.eventTimestampsMs[0] as number) - prng.range(60_000, 3_600_000);
    const ancestorHex = prng.next();
    const middle = this.idMiddle(into.jobIndex) + this.instanceParts[into.instance];
    into.taskId = String(into.eventTimestampsMs[0]) + middle + hex8(idHex);
    into.ancestorId = into.failureCount > 0 ? String(ancestorMs) + middle + hex8(ancestorHex) : '';
    return into;
  }

  /** `-<role>-<env>-<job>-`: the part of a task id between the timestamp and the instance. */
  idMiddle(jobIndex: number): string {
    if (jobIndex !== this.idMiddleJobIndex) {
      const names = this.jobNamesOf(jobIndex);
      this.idMiddleJobIndex = jobIndex;
      this.idMiddleLast = `-${names.role}-${names.environment}-${names.name}-`;
    }
    return this.idMiddleLast;
  }

  taskId(taskIndex: number): string {
    return this.task(taskIndex, this.facts).taskId;
  }

  /** Task `taskIndex` in the object API, its config by hash (as bulk loads send it). */
  scheduledTask(taskIndex: number): ScheduledTaskT {
    const facts = this.task(taskIndex, this.facts);
    return scheduledTaskOf(facts, this.config(facts.configIndex).hashList);
  }

  /** The distinct configs tasks [first, last) use, in order of first use. */
  configsOfTasks(first: number, last: number): number[] {
    const seen = new Set<number>();
    for (let taskIndex = first; taskIndex < last; taskIndex++) seen.add(this.configIndexOfTask(taskIndex));
    return Array.from(seen);
  }

  /** The bulk-load transaction of tasks [first, last): one UpsertTasks, each config once in configs. */
  bulkTransaction(first: number, last: number): TransactionT {
    this.checkRange(first, last);
    const transaction = new TransactionT();
    for (const configIndex of this.configsOfTasks(first, last)) {
      transaction.configs.push(this.config(configIndex).config);
    }
    const tasks: ScheduledTaskT[] = [];
    for (let taskIndex = first; taskIndex < last; taskIndex++) tasks.push(this.scheduledTask(taskIndex));
    transaction.ops.push(new OperationT(Op.UpsertTasks, new UpsertTasksT(tasks)));
    return transaction;
  }

  /** `bulkTransaction(first, last)` as bytes, written from templates (see workload-bytes.ts): ~1 µs a task. */
  bulkTransactionBytes(first: number, last: number): Uint8Array {
    this.checkRange(first, last);
    const builder = this.builder;
    const offsets = this.offsets;
    builder.clear();
    const preconditions = emptyVector(builder);
    const configIndexes = this.configsOfTasks(first, last);
    for (let slot = 0; slot < configIndexes.length; slot++) {
      offsets[slot] = appendConfig(builder, this.config(configIndexes[slot] as number));
    }
    const configs = offsetVector(builder, offsets, configIndexes.length);
    for (let taskIndex = first; taskIndex < last; taskIndex++) {
      const facts = this.task(taskIndex, this.facts);
      offsets[taskIndex - first] = appendTask(builder, facts, this.configHash(facts.configIndex));
    }
    const tasks = offsetVector(builder, offsets, last - first);
    offsets[0] = Operation.createOperation(builder, Op.UpsertTasks, UpsertTasks.createUpsertTasks(builder, tasks));
    const ops = offsetVector(builder, offsets, 1);
    builder.finish(Transaction.createTransaction(builder, 0, preconditions, configs, ops));
    return builder.asUint8Array().slice();
  }

  private checkRange(first: number, last: number): void {
    assert(first >= 0, 'first task index >= 0');
    assert(last <= this.taskCount, 'last task index <= taskCount');
    assert(first < last, 'at least one task');
    assert(last - first <= tasksPerTransactionMax, 'at most tasksPerTransactionMax tasks');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Bulk load
// ---------------------------------------------------------------------------------------------------------------

/** The whole data set as bulk-load transactions of `tasksPerTxn` tasks (the last may be shorter). */
export function* bulkLoadTransactions(o: WorkloadOptions, tasksPerTxn = 1000): Generator<TransactionT> {
  const workload = Workload.of(o);
  for (let first = 0; first < workload.taskCount; first += tasksPerTxn) {
    yield workload.bulkTransaction(first, Math.min(first + tasksPerTxn, workload.taskCount));
  }
}

/** The same transactions as `bulkLoadTransactions`, as bytes, several times faster: what benchmarks send. */
export function* bulkLoadTransactionBytes(o: WorkloadOptions, tasksPerTxn = 1000): Generator<Uint8Array> {
  const workload = Workload.of(o);
  for (let first = 0; first < workload.taskCount; first += tasksPerTxn) {
    yield workload.bulkTransactionBytes(first, Math.min(first + tasksPerTxn, workload.taskCount));
  }
}

/** Every task id, by task index. */
export function taskIds(o: WorkloadOptions): string[] {
  const workload = Workload.of(o);
  const facts = new TaskFacts();
  const ids: string[] = [];
  for (let taskIndex = 0; taskIndex < workload.taskCount; taskIndex++) ids.push(workload.task(taskIndex, facts).taskId);
  return ids;
}

/** Every task's status after the bulk load, by task index (cheaper than ids: no strings). */
export function taskStatuses(o: WorkloadOptions): Uint8Array {
  const workload = Workload.of(o);
  const facts = new TaskFacts();
  const statuses = new Uint8Array(workload.taskCount);
  for (let taskIndex = 0; taskIndex < workload.taskCount; taskIndex++) {
    statuses[taskIndex] = workload.taskState(taskIndex, facts).status;
  }
  return statuses;
}

// ---------------------------------------------------------------------------------------------------------------
// Transitions
// ---------------------------------------------------------------------------------------------------------------

/** After every event of the bulk-loaded data set (the latest is under scheduleSpanMs + 1 day + 35 s). */
export const transitionTimestampMsStart = timestampMsBase + scheduleSpanMs + 2 * 86_400_000;

/**
 * Moves `taskId` from `from` to `to`, with a compare-and-set on `from` and `enforce` on. A task with a host
 * (hostIndex >= 0, http port portHttp, health port portHttp + 1) resends its slave id, host and ports on every
 * transition: the object API always writes `assigned_ports`, even empty, and a present vector replaces the
 * stored ports, so leaving them out would clear them.
 */
export function transitionTransaction(
  taskId: string, from: ScheduleStatus, to: ScheduleStatus, timestampMs: number, hostIndex = -1, portHttp = 0,
): TransactionT {
  const assigned = hostIndex >= 0;
  const transition = new TransitionTaskT(taskId, to, true, from, true, BigInt(timestampMs), eventMessage(to, hostIndex),
    schedulerHost, assigned ? slaveId(hostIndex) : null, assigned ? hostName(hostIndex) : null,
    portsOf(hostIndex, portHttp), -1, -1);
  return new TransactionT(null, [], [], [new OperationT(Op.TransitionTask, transition)]);
}

export interface TransitionOptions {
  /** This generator owns the tasks whose index % clientCount === clientIndex (default 0 of 1: all tasks). */
  clientIndex?: number;
  clientCount?: number;
  /** Seeds the choice of task, host, ports and terminal status; default the workload's seed. */
  seed?: number;
  /** The first step's timestamp when next() is not given one; each later step adds 1 ms. */
  timestampMsStart?: number;
}

/**
 * Single-task lifecycle steps over the tasks one client owns, starting from the bulk-loaded state:
 * PENDING → ASSIGNED (host, ports) → STARTING → RUNNING → a terminal status → a replacement task (new id,
 * ancestor = old id, PENDING; UpsertTasks (config by hash) then DeleteTasks in one transaction, with a
 * TASK_STATUS precondition on the old task).
 * Each transition has a compare-and-set on the current status. The generator assumes every transaction it
 * returns commits; the fields below describe the last step.
 */
export class TransitionGenerator {
  readonly workload: Workload;
  readonly clientIndex: number;
  readonly clientCount: number;
  readonly ownedCount: number;
  taskIndex = 0;
  taskId = '';
  statusFrom: ScheduleStatus = ScheduleStatus.PENDING;
  statusTo: ScheduleStatus = ScheduleStatus.PENDING;
  replacementId = '';           // non-empty when the last step replaced a terminal task
  timestampMs: number;
  private readonly statuses: Uint8Array;
  private readonly hostIndexes: Int16Array;
  private readonly portsHttp: Uint16Array;
  private readonly failureCounts: Uint16Array;
  private readonly ids = new Map<number, string>(); // owned slot → current task id, filled on first use
  private readonly prng: Prng;
  private readonly facts = new TaskFacts();
  private readonly offsets = new Int32Array(4);
  private readonly builder = new AsciiBuilder(8192);

  constructor(o: WorkloadOptions, t: TransitionOptions = {}) {
    this.workload = Workload.of(o);
    this.clientIndex = t.clientIndex ?? 0;
    this.clientCount = t.clientCount ?? 1;
    checkCount(this.clientCount, taskCountMax, 'clientCount');
    assert(Number.isInteger(this.clientIndex), 'clientIndex is an integer');
    assert(this.clientIndex >= 0, 'clientIndex >= 0');
    assert(this.clientIndex < this.clientCount, 'clientIndex < clientCount');
    this.ownedCount = Math.ceil((this.workload.taskCount - this.clientIndex) / this.clientCount);
    assert(this.ownedCount >= 1, 'every client owns at least one task');
    this.prng = new Prng(t.seed ?? o.seed, this.clientIndex, saltTransition);
    this.timestampMs = (t.timestampMsStart ?? transitionTimestampMsStart) - 1;
    this.statuses = new Uint8Array(this.ownedCount);
    this.hostIndexes = new Int16Array(this.ownedCount);
    this.portsHttp = new Uint16Array(this.ownedCount);
    this.failureCounts = new Uint16Array(this.ownedCount);
    const facts = new TaskFacts();
    for (let slot = 0; slot < this.ownedCount; slot++) {
      this.workload.taskState(this.ownedTaskIndex(slot), facts);
      this.statuses[slot] = facts.status;
      this.hostIndexes[slot] = facts.hostIndex;
      this.portsHttp[slot] = facts.portHttp;
      this.failureCounts[slot] = facts.failureCount;
    }
  }

  ownedTaskIndex(slot: number): number {
    return this.clientIndex + slot * this.clientCount;
  }

  /** The current status of owned task `slot`, as the generator believes it to be. */
  status(slot: number): ScheduleStatus {
    const status = this.statuses[slot];
    assert(status !== undefined, 'slot in range');
    return status;
  }

  /** The next step, in the object API. */
  next(timestampMs?: number): TransactionT {
    const slot = this.step(timestampMs);
    if (this.replacementId !== '') return this.replacementTransaction(slot);
    return transitionTransaction(this.taskId, this.statusFrom, this.statusTo, this.timestampMs,
      this.hostIndexes[slot] as number, this.portsHttp[slot] as number);
  }

  /** The next step as bytes, decoding to what `next()` would have returned from the same state. */
  nextBytes(timestampMs?: number): Uint8Array {
    const slot = this.step(timestampMs);
    if (this.replacementId !== '') return this.replacementBytes(slot);
    return encodeTransition(this.taskId, this.statusFrom, this.statusTo, this.timestampMs,
      this.hostIndexes[slot] as number, this.portsHttp[slot] as number);
  }

  private currentId(slot: number): string {
    let id = this.ids.get(slot);
    if (id === undefined) {
      id = this.workload.taskId(this.ownedTaskIndex(slot));
      this.ids.set(slot, id);
    }
    return id;
  }

  /** Picks an owned task, moves it one step in the generator's state, and returns its slot. */
  private step(timestampMs: number | undefined): number {
    const timestamp = timestampMs ?? this.timestampMs + 1;
    assert(Number.isInteger(timestamp), 'timestamps are integers (ms)');
    assert(timestamp > 0, 'timestamps are positive');
    this.timestampMs = timestamp;
    const prng = this.prng;
    const slot = prng.int(this.ownedCount);
    const from = this.status(slot);
    this.taskIndex = this.ownedTaskIndex(slot);
    this.taskId = this.currentId(slot);
    this.statusFrom = from;
    this.replacementId = '';
    let to: ScheduleStatus;
    if (from === ScheduleStatus.PENDING) {
      to = ScheduleStatus.ASSIGNED;
      this.hostIndexes[slot] = prng.int(hostCount);
      this.portsHttp[slot] = portFirst + 2 * prng.int(portPairCount);
    } else if (from === ScheduleStatus.ASSIGNED) {
      to = ScheduleStatus.STARTING;
    } else if (from === ScheduleStatus.STARTING) {
      to = ScheduleStatus.RUNNING;
    } else if (from === ScheduleStatus.RUNNING) {
      to = prng.pick(terminalStatuses);
    } else {
      assert(isTerminal(from), 'the workload only walks the lifecycle path');
      to = ScheduleStatus.PENDING;
      this.failureCounts[slot] = (this.failureCounts[slot] as number) + (from === ScheduleStatus.FAILED ? 1 : 0);
      this.hostIndexes[slot] = -1;
      this.portsHttp[slot] = 0;
      const middle = this.workload.idMiddle(this.workload.jobIndexOfTask(this.taskIndex));
      const instance = this.taskIndex % this.workload.options.instances;
      this.replacementId = `${timestamp}${middle}${instance}-${hex8(prng.next())}`;
      this.ids.set(slot, this.replacementId);
    }
    this.statuses[slot] = to;
    this.statusTo = to;
    return slot;
  }

  /** The replacement task of the last step, as facts (a scratch record). */
  private replacementFacts(slot: number): TaskFacts {
    const facts = this.facts;
    facts.taskIndex = this.taskIndex;
    facts.jobIndex = this.workload.jobIndexOfTask(this.taskIndex);
    facts.instance = this.taskIndex % this.workload.options.instances;
    facts.configIndex = this.workload.configIndexOfTask(this.taskIndex);
    facts.setPending(this.timestampMs);
    facts.failureCount = this.failureCounts[slot] as number;
    facts.taskId = this.replacementId;
    facts.ancestorId = this.taskId;
    return facts;
  }

  private replacementPrecondition(): PreconditionT {
    return new PreconditionT(RecordTable.TASK, PreconditionKind.TASK_STATUS, this.taskId, null, null, null, null, zero,
      this.statusFrom);
  }

  /**
   * Upsert before delete, config by hash only: the TASK_STATUS precondition guarantees the old task is stored,
   * so its config is too, and stays referenced while the new task takes it over.
   */
  private replacementTransaction(slot: number): TransactionT {
    const facts = this.replacementFacts(slot);
    const task = scheduledTaskOf(facts, Array.from(this.workload.configHash(facts.configIndex)));
    return new TransactionT(null, [this.replacementPrecondition()], [], [
      new OperationT(Op.UpsertTasks, new UpsertTasksT([task])),
      new OperationT(Op.DeleteTasks, new DeleteTasksT([this.taskId], false)),
    ]);
  }

  private replacementBytes(slot: number): Uint8Array {
    const facts = this.replacementFacts(slot);
    const builder = this.builder;
    const offsets = this.offsets;
    builder.clear();
    offsets[0] = this.replacementPrecondition().pack(builder);
    const preconditions = offsetVector(builder, offsets, 1);
    const configs = emptyVector(builder);
    offsets[0] = appendTask(builder, facts, this.workload.configHash(facts.configIndex));
    const tasks = offsetVector(builder, offsets, 1);
    offsets[0] = Operation.createOperation(builder, Op.UpsertTasks, UpsertTasks.createUpsertTasks(builder, tasks));
    offsets[2] = builder.createString(this.taskId);
    const taskIds = offsetVector(builder, offsets.subarray(2), 1);
    const deleteTasks = DeleteTasks.createDeleteTasks(builder, taskIds, false);
    offsets[1] = Operation.createOperation(builder, Op.DeleteTasks, deleteTasks);
    const ops = offsetVector(builder, offsets, 2);
    builder.finish(Transaction.createTransaction(builder, 0, preconditions, configs, ops));
    return builder.asUint8Array().slice();
  }
}
