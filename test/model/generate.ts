/**
 * Random transactions and queries for the model-based test, from a seeded core/prng.ts Prng, over one of two key
 * spaces (generate-pools.ts): the small one (3 roles × 2 environments × 3 jobs × 4 instances, 13 task ids, 4
 * hosts), where collisions, conflicts, no-ops and errors are frequent; or the large one (20 roles × 3
 * environments × 30 jobs × 50 instances, 5,000 task ids, 300 hosts), where bulk transactions (generate-bulk.ts)
 * keep thousands of tasks stored, so the engine's trees grow several levels deep, with a tenth of the mistakes.
 * Owner: tests only.
 * Invariants: the same seed, key space and sequence of model states give the same transactions and queries; the
 * generator only reads the model (to write preconditions that hold and hashes that resolve), never changes it;
 * each generated item carries at most one deliberate mistake, so the first error of a transaction is
 * well-defined by the check order of docs/semantics.md; operations see the task statuses the earlier operations
 * of their transaction leave (TaskTracker), so a transaction without a mistake mostly succeeds.
 */
import {
  IdempotencyKeyT, JobKeyT, JobUpdateKeyT, PreconditionKind, PreconditionT, QueryRequestT, RecordTable,
  ScheduleStatus, TaskConfigT, TransactionT,
} from '../../core/fbs/strata.js';
import { Prng } from '../../core/prng.js';
import { ConfigOptions, hashHexOf, hashOf, hostAttributes, instanceConfig, jobKey, jobUpdate, ops, precondition,
  scheduledTask, taskConfig, taskEvent, transaction, updateKey } from './build.js';
import { bulkOperations } from './generate-bulk.js';
import {
  badHosts, badIdentifiers, badTaskIds, invalidStatuses, KeySpace, keySpaces, KeySpaceName, validStatuses,
} from './generate-pools.js';
import { operationOf } from './generate-ops.js';
import { TaskTracker } from './generate-tasks.js';
import { queryOf } from './generate-queries.js';
import { ReferenceModel } from './reference.js';

const configVariants: ConfigOptions[] = [
  { cpus: 1, ramMb: 128, diskMb: 256 },
  { cpus: 0.5, ramMb: 256, diskMb: 512, production: true },
  { cpus: 2, ramMb: 1024, diskMb: 1024, production: true, dedicated: 'value', gpus: 1 },
  { cpus: 0.25, ramMb: 64, diskMb: 128, dedicated: 'limit', executorData: '{"task":"other"}' },
  { cpus: 1, ramMb: 128, diskMb: 256, executorData: '{"task":"hello","v":2}' }, // differs from 0 only in data
  { cpus: 1, ramMb: 128, diskMb: 256, volumeMode: 2 },
];

interface PoolConfig { config: TaskConfigT; hash: number[]; hashHex: string }

/** A config reference as generated: normally exactly one of the two is set. */
export interface ConfigChoice { inline: TaskConfigT | null; hash: number[] }

/** What operation generators need: the PRNG, the model (read only), the key space, the transaction being built. */
export interface GeneratorContext {
  readonly prng: Prng;
  readonly model: ReferenceModel;
  readonly keys: KeySpace;
  /** The task ids stored and their statuses, as the operations generated so far in this transaction leave them. */
  readonly tasks: TaskTracker;
  /** A deliberate mistake or a costly edge value: true with `probability` × keys.rareScale. */
  rare(probability: number): boolean;
  /** Up to `countMax` items, possibly repeated. */
  some<T>(items: readonly T[], countMax: number): T[];
  /** One item, with probability proportional to its weight. */
  weighted<T>(entries: readonly (readonly [T, number])[]): T;
  /** With `mistakes`, sometimes an unknown hash, both, neither, or a config with an invalid job. */
  config(job?: JobKeyT, mistakes?: boolean): ConfigChoice;
  jobKey(): JobKeyT;
  /** With `mistakes`, sometimes an invalid task id. */
  taskId(mistakes?: boolean): string;
  /** Mostly a stored task id (one the transaction did not delete); else any pool id, or with `mistakes` a bad one. */
  existingTaskId(mistakes?: boolean): string;
  /** Mostly the key of a stored job update. */
  existingUpdateKey(): JobUpdateKeyT;
  host(mistakes?: boolean): string;
  timestamp(): bigint;
  /** With `mistakes`, sometimes a value that is not a ScheduleStatus. */
  status(mistakes?: boolean): ScheduleStatus;
}

export interface GeneratorOptions {
  keySpace?: KeySpaceName;   // default 'small'
}

export class Generator implements GeneratorContext {
  readonly prng: Prng;
  readonly keys: KeySpace;
  readonly tasks: TaskTracker;
  private readonly pool = new Map<string, PoolConfig>();
  private transactionConfigs: TaskConfigT[] = [];
  private readonly sequences = new Map<string, number>();

  constructor(seed: number, readonly model: ReferenceModel, options: GeneratorOptions = {}) {
    this.prng = new Prng(seed);
    this.keys = keySpaces[options.keySpace ?? 'small'];
    this.tasks = new TaskTracker(model);
  }

  transaction(): TransactionT {
    this.tasks.begin();
    if (this.rare(0.006)) return this.limitTransaction();
    if (this.rare(0.01)) return this.fullTask(this.jobKey());
    this.transactionConfigs = [];
    const operations = this.keys.name === 'large' ? bulkOperations(this) :
      Array.from({ length: 1 + this.prng.int(3) }, () => operationOf(this));
    if (this.prng.chance(0.1)) this.transactionConfigs.push(this.poolConfig(this.jobKey()).config);
    if (this.rare(0.015)) {
      this.transactionConfigs.push(this.prng.chance(0.5) ? taskConfig(jobKey('bad role', 'prod', 'x')) :
        taskConfig(this.jobKey(), { volumeMode: 3 }));
    }
    const preconditions = this.prng.chance(0.3) ? this.some([0, 1], 2).map(() => this.precondition()) : [];
    const result = transaction(operations, { preconditions, configs: this.transactionConfigs });
    if (this.prng.chance(0.25)) result.idempotency = this.idempotencyKey();
    return result;
  }

  query(): QueryRequestT {
    this.tasks.begin();
    return queryOf(this);
  }

  rare(probability: number): boolean {
    return this.prng.chance(probability * this.keys.rareScale);
  }

  some<T>(items: readonly T[], countMax: number): T[] {
    return Array.from({ length: this.prng.int(countMax + 1) }, () => this.prng.pick(items));
  }

  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    let roll = this.prng.float() * entries.reduce((total, [, weight]) => total + weight, 0);
    for (const [item, weight] of entries) {
      if (roll < weight) return item;
      roll -= weight;
    }
    return entries[entries.length - 1]![0];   // only if rounding left roll at the total
  }

  jobKey(): JobKeyT {
    const key = this.prng.pick(this.keys.jobKeys);
    return jobKey(String(key.role), String(key.environment), String(key.name));
  }

  taskId(mistakes = true): string {
    return mistakes && this.rare(0.015) ? this.prng.pick(badTaskIds) : this.prng.pick(this.keys.taskIds);
  }

  existingTaskId(mistakes = true): string {
    const taskId = this.tasks.storedCount() > 0 && !this.rare(0.15) ? this.tasks.storedId(this.prng) : null;
    return taskId ?? this.taskId(mistakes);
  }

  existingUpdateKey(): JobUpdateKeyT {
    const stored = this.keys.updateKeys.filter((key) => this.model.recordRevision(
      precondition(RecordTable.JOB_UPDATE, PreconditionKind.PRESENT, { updateKey: key })) !== null);
    const key = stored.length > 0 && !this.rare(0.15) ? this.prng.pick(stored) : this.prng.pick(this.keys.updateKeys);
    return updateKey(key.job!, String(key.id));
  }

  host(mistakes = true): string {
    return mistakes && this.rare(0.015) ? this.prng.pick(badHosts) : this.prng.pick(this.keys.hosts);
  }

  /** Timestamps from a small set, so that events collide. */
  timestamp(): bigint {
    return BigInt(1000 + 10 * this.prng.int(6));
  }

  status(mistakes = true): ScheduleStatus {
    return mistakes && this.rare(0.02) ? this.prng.pick(invalidStatuses) : this.prng.pick(validStatuses);
  }

  private poolConfig(job: JobKeyT, variant = this.prng.int(configVariants.length)): PoolConfig {
    const key = `${String(job.role)}/${String(job.environment)}/${String(job.name)}/${variant}`;
    let entry = this.pool.get(key);
    if (entry === undefined) {
      const config = taskConfig(job, configVariants[variant]);
      entry = { config, hash: hashOf(config), hashHex: hashHexOf(config) };
      this.pool.set(key, entry);
    }
    return entry;
  }

  /** A config inline or by hash; with `mistakes`, sometimes an unknown hash, both, neither, or an invalid job. */
  config(job: JobKeyT = this.jobKey(), mistakes = true): ConfigChoice {
    const entry = this.poolConfig(job);
    if (mistakes && this.rare(0.1)) return this.badConfig(job, entry);
    if (this.prng.chance(this.keys.inlineConfigShare)) return { inline: entry.config, hash: [] };
    const needed = !this.model.hasConfig(entry.hashHex) && !this.transactionConfigs.includes(entry.config);
    if (needed || this.prng.chance(0.1)) {
      // A clean reference always resolves; otherwise the hash is sometimes left unknown (NOT_FOUND).
      if (!mistakes || !this.rare(0.05)) this.transactionConfigs.push(entry.config);
    }
    return { inline: null, hash: entry.hash };
  }

  private badConfig(job: JobKeyT, entry: PoolConfig): ConfigChoice {
    const roll = this.prng.float();
    if (roll < 0.3) return { inline: null, hash: Array.from({ length: 16 }, () => this.prng.int(256)) };
    if (roll < 0.5) {
      // A config that cannot be stored: an invalid job, or a volume mode that is not a VolumeMode (UNSET included).
      return { inline: this.prng.chance(0.5) ? taskConfig(jobKey(this.prng.pick(badIdentifiers), 'prod', 'x')) :
        taskConfig(job, { volumeMode: this.prng.pick([0, 3]) }), hash: [] };
    }
    return this.prng.chance(0.5) ? { inline: null, hash: [] } : { inline: entry.config, hash: entry.hash };
  }

  /** Mostly fresh sequences per client; sometimes one seen recently (a retry), sometimes an invalid client. */
  private idempotencyKey(): IdempotencyKeyT {
    if (this.rare(0.02)) return new IdempotencyKeyT('client\u0002', 1n);
    const clientId = this.prng.pick(['sched-1', 'sched-2']);
    const next = this.sequences.get(clientId) ?? 0;
    if (next > 0 && this.prng.chance(0.2)) {
      return new IdempotencyKeyT(clientId, BigInt(next - 1 - this.prng.int(Math.min(next, 4))));
    }
    this.sequences.set(clientId, next + 1);
    return new IdempotencyKeyT(clientId, BigInt(next));
  }

  /** Mostly a precondition that holds on the current state; else a random kind (which may fail, or be invalid). */
  private precondition(): PreconditionT {
    const table = this.prng.chance(0.2) ? RecordTable.TASK : this.prng.int(7) as RecordTable;
    const fields = this.preconditionKey(table);
    const revision = this.model.recordRevision(precondition(table, PreconditionKind.PRESENT, fields));
    const holds = !this.rare(0.3);
    const kinds = [PreconditionKind.PRESENT, PreconditionKind.AT_REVISION,
      table === RecordTable.TASK ? PreconditionKind.TASK_STATUS : PreconditionKind.PRESENT];
    const kind = !holds ? this.prng.int(4) as PreconditionKind :
      revision === null ? PreconditionKind.ABSENT : this.prng.pick(kinds);
    const result = precondition(table, kind, fields);
    if (kind === PreconditionKind.AT_REVISION) {
      result.revision = holds && revision !== null ? revision : BigInt(this.prng.int(this.model.revision + 2));
    }
    if (kind === PreconditionKind.TASK_STATUS) {
      const current = this.model.taskStatus(String(result.taskId));
      result.status = holds && current !== null ? current : this.status();
    }
    return result;
  }

  private preconditionKey(table: RecordTable): Partial<PreconditionT> & { table: RecordTable } {
    const bad = this.rare(0.03);
    switch (table) {
      case RecordTable.TASK: return { table, taskId: bad ? this.prng.pick(badTaskIds) : this.existingTaskId() };
      case RecordTable.CRON_JOB: return { table, job: bad ? jobKey('', 'prod', 'x') : this.jobKey() };
      case RecordTable.JOB_UPDATE: return { table, updateKey: bad ? updateKey(this.jobKey(), 'bad id') :
        this.prng.pick(this.keys.updateKeys) };
      case RecordTable.QUOTA: return { table, role: bad ? this.prng.pick(badIdentifiers) :
        this.prng.pick(this.keys.roles) };
      case RecordTable.SCHEDULER: return { table };
      default: return { table, host: bad ? this.prng.pick(badHosts) : this.prng.pick(this.keys.hosts) };
    }
  }

  /**
   * Transactions at or over a limit, each alone in its transaction. Where the case at the limit would store a
   * lot (10,000 hosts, 1,024 instance configs), a last operation fails with NOT_FOUND: it shows that the big one
   * passed its checks, and nothing is stored.
   */
  private limitTransaction(): TransactionT {
    const job = this.jobKey();
    const over = this.prng.int(2);
    const events = (count: number) => Array.from({ length: count }, (_, index) => taskEvent(index, 0));
    const big = taskConfig(job, { executorData: 'x'.repeat(256 * 1024 + this.prng.int(2) * 4096 - 4096) });
    const missing = ops.transition('missing-task', ScheduleStatus.KILLING);
    switch (this.prng.int(10)) {
      case 0: return transaction(Array.from({ length: 4096 + over }, () => ops.removeQuota('ads')));
      case 1: return transaction([], { preconditions: Array.from({ length: 4096 + over }, () =>
        precondition(RecordTable.SCHEDULER, PreconditionKind.ABSENT)) });
      case 2: return transaction([], { configs: Array.from({ length: 1024 + over }, (_, index) =>
        taskConfig(job, { priority: index })) });
      case 3: return transaction([ops.delete(Array.from({ length: 10_000 + over }, (_, index) =>
        `gone-${index}`), true)]);
      case 4: return this.fullTask(job);
      case 5: return transaction([ops.upsert(scheduledTask(this.prng.pick(this.keys.taskIds), big))]);
      case 6: return transaction([], { configs: [big] });
      case 7: return transaction([ops.saveHosts(...Array.from({ length: 10_000 + over }, (_, index) =>
        hostAttributes(`h-${index}`, [['rack', ['r1']]]))), missing]);
      case 8: return transaction([ops.removeUpdates(Array.from({ length: 10_000 + over }, (_, index) =>
        updateKey(job, `gone-${index}`)))]);
      default: {
        const key = this.prng.pick(this.keys.updateKeys);
        const config = this.poolConfig(key.job!).config;
        const update = jobUpdate(updateKey(key.job!, String(key.id)), Array.from({ length: 1023 + over }, () =>
          instanceConfig(config, [[0, 0]])), instanceConfig(config, [[0, 3]]));
        return transaction(this.prng.chance(0.5) ? [ops.saveUpdate(update), missing] : [ops.saveUpdate(update)]);
      }
    }
  }

  /**
   * A task at or near taskEventsMax events (1,025 is over), then up to two transitions of it in the same
   * transaction: the limit must count the events the earlier operations appended. Sometimes with an idempotency
   * key, which a RESOURCE_EXHAUSTED outcome does not take.
   */
  private fullTask(job: JobKeyT): TransactionT {
    const taskId = this.prng.pick(this.keys.taskIds);
    const upsert = ops.upsert(scheduledTask(taskId, this.poolConfig(job).config,
      { events: Array.from({ length: 1022 + this.prng.int(4) }, (_, index) => taskEvent(index, 0)) }));
    const path = [ScheduleStatus.ASSIGNED, ScheduleStatus.RUNNING].slice(0, this.prng.int(3));
    const result = transaction([upsert, ...path.map((status) => ops.transition(taskId, status))]);
    if (this.prng.chance(0.3)) result.idempotency = this.idempotencyKey();
    return result;
  }
}
