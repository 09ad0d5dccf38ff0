/**
 * The writers' workload of the kill -9 fault suite (test/faults/kill-loop.test.ts): the key space, and one
 * writer's next transaction from what it believes of its own records. Owner: tests only.
 * Invariants:
 * - Writer w owns the tasks `w<w>-t<n>` (n never reused) of its two jobs (role r<w mod 3>, `j<w>a` in prod and
 *   `j<w>b` in devel); quotas, hosts, maintenance, the scheduler metadata and cron jobs of its jobs are shared
 *   or contended, so groups mix conflicting and independent writes.
 * - A writer's beliefs (task statuses) come from its acknowledged results and are reset from the reference model
 *   after every round (`resync`): a transaction built on a stale belief fails its precondition, which is a
 *   legitimate, remembered outcome, never a wrong one.
 * - Every transaction is built through the SDK's builder, so it carries the client's automatic idempotency key;
 *   its bytes (key included) are what a resend after an unknown outcome sends again.
 * - Live tasks per writer stay below `liveTasksMax`, so the full state comparison after each round stays cheap.
 */
import type { TransactionBuilder } from '../../../client/index.js';
import {
  HostMaintenanceRequestT, JobKeyT, KeyValueT, ResourceType, ScheduleStatus, SchedulerMetadataT,
  type TransactionResultT,
} from '../../../core/fbs/strata.js';
import { Prng } from '../../../core/prng.js';
import { cronJob, hostAttributes, resource, scheduledTask, taskConfig, taskEvent } from '../../model/build.js';
import type { ReferenceModel } from '../../model/reference.js';

export const roles = ['r0', 'r1', 'r2'] as const;
export const hosts = ['h0', 'h1', 'h2', 'h3'] as const;
/** A writer's live tasks at most: creating stops there until deletes make room. */
const liveTasksMax = 24;
/** Tasks one create transaction upserts at most. */
const createTasksMax = 3;

export function writerJobs(writer: number): JobKeyT[] {
  const role = roles[writer % roles.length]!;
  return [new JobKeyT(role, 'prod', `j${writer}a`), new JobKeyT(role, 'devel', `j${writer}b`)];
}

/** The job of every task any writer created, by task id (tasks never change job). */
export const taskJobs = new Map<string, JobKeyT>();

const lifecycle = new Map<ScheduleStatus, ScheduleStatus[]>([
  [ScheduleStatus.PENDING, [ScheduleStatus.ASSIGNED]],
  [ScheduleStatus.ASSIGNED, [ScheduleStatus.STARTING]],
  [ScheduleStatus.STARTING, [ScheduleStatus.RUNNING]],
  [ScheduleStatus.RUNNING, [ScheduleStatus.FINISHED, ScheduleStatus.FAILED, ScheduleStatus.KILLED]],
]);

export type TransactionKind = 'create' | 'transition' | 'delete' | 'quota' | 'host' | 'cron' | 'cluster' | 'stale';

export class WriterWorkload {
  readonly jobs: JobKeyT[];
  private readonly prng: Prng;
  private readonly beliefs = new Map<string, ScheduleStatus>();
  private taskNext = 0;
  private timestamp = 1_000;

  constructor(readonly writer: number, seed: number) {
    this.jobs = writerJobs(writer);
    this.prng = new Prng(seed, writer);
  }

  /** Fills `builder` with the next transaction; returns its kind (for the figures) and what it would believe. */
  next(builder: TransactionBuilder): { kind: TransactionKind; believe: (result: TransactionResultT) => void } {
    const roll = this.prng.float();
    const movable = [...this.beliefs].filter(([, status]) => lifecycle.has(status));
    const finished = [...this.beliefs].filter(([, status]) => !lifecycle.has(status));
    if (roll < 0.03 && this.beliefs.size > 0) return this.stale(builder);
    if (roll < 0.28 && this.beliefs.size < liveTasksMax) return this.create(builder);
    if (roll < 0.62 && movable.length > 0) return this.transition(builder, movable);
    if (roll < 0.74 && finished.length > 0) return this.delete(builder, finished);
    if (roll < 0.84) return this.quota(builder);
    if (roll < 0.91) return this.host(builder);
    if (roll < 0.96) return this.cron(builder);
    return this.cluster(builder);
  }

  /** After a round: the writer's tasks as the reference model has them (the acknowledged history's replay). */
  resync(model: ReferenceModel): void {
    this.beliefs.clear();
    for (const taskId of model.taskIds()) {
      if (!taskId.startsWith(`w${this.writer}-`)) continue;
      this.beliefs.set(taskId, model.taskStatus(taskId)!);
    }
  }

  private tick(): number {
    this.timestamp += 1 + this.prng.int(5);
    return this.timestamp;
  }

  private create(builder: TransactionBuilder) {
    const job = this.prng.pick(this.jobs);
    const config = taskConfig(job, { cpus: this.prng.pick([0.5, 1, 2]), ramMb: 128, diskMb: 256,
      production: job.environment === 'prod' });
    const ids = Array.from({ length: 1 + this.prng.int(createTasksMax) }, () => `w${this.writer}-t${this.taskNext++}`);
    for (const id of ids) taskJobs.set(id, job);
    builder.expectAbsent({ task: ids[0]! }).upsertTasks(ids.map((id, index) => scheduledTask(id, config,
      { instanceId: this.taskNext + index, events: [taskEvent(this.tick(), ScheduleStatus.PENDING, 'created')] })));
    return { kind: 'create' as const, believe: (result: TransactionResultT) => {
      if (result.error === null) for (const id of ids) this.beliefs.set(id, ScheduleStatus.PENDING);
    } };
  }

  private transition(builder: TransactionBuilder, movable: [string, ScheduleStatus][]) {
    const moves = this.prng.chance(0.2) && movable.length > 1 ? 2 : 1;
    const picked = new Map<string, [ScheduleStatus, ScheduleStatus]>();
    for (let i = 0; i < moves; i++) {
      const [taskId, from] = this.prng.pick(movable);
      if (picked.has(taskId)) continue;
      const to = this.prng.pick(lifecycle.get(from)!);
      picked.set(taskId, [from, to]);
      builder.transition(taskId, to, { expectStatus: from, enforce: true, timestamp: this.tick(),
        message: `to ${ScheduleStatus[to]}`, scheduler: `writer-${this.writer}`,
        slaveHost: to === ScheduleStatus.ASSIGNED ? this.prng.pick(hosts) : undefined,
        assignedPorts: to === ScheduleStatus.ASSIGNED ? [{ name: 'http', port: 31_000 + this.prng.int(1000) }] : undefined });
    }
    return { kind: 'transition' as const, believe: (result: TransactionResultT) => {
      if (result.error === null) for (const [taskId, [, to]] of picked) this.beliefs.set(taskId, to);
    } };
  }

  private delete(builder: TransactionBuilder, finished: [string, ScheduleStatus][]) {
    const [taskId, status] = this.prng.pick(finished);
    builder.expectTaskStatus(taskId, status).deleteTasks([taskId]);
    return { kind: 'delete' as const, believe: (result: TransactionResultT) => {
      if (result.error === null) this.beliefs.delete(taskId);
    } };
  }

  /** A precondition that the writer believes false (a task it has, said to be absent): PRECONDITION_FAILED. */
  private stale(builder: TransactionBuilder) {
    const [taskId] = this.prng.pick([...this.beliefs]);
    builder.expectAbsent({ task: taskId }).deleteTasks([taskId]);
    return { kind: 'stale' as const, believe: () => undefined };
  }

  private quota(builder: TransactionBuilder) {
    const role = this.prng.pick(roles);
    if (this.prng.chance(0.2)) builder.removeQuota(role);
    else {
      builder.saveQuota(role, [resource(ResourceType.NUM_CPUS, 10 + this.prng.int(90)),
        resource(ResourceType.RAM_MB, 1024 * (1 + this.prng.int(64))), resource(ResourceType.DISK_MB, 4096)]);
    }
    return { kind: 'quota' as const, believe: () => undefined };
  }

  private host(builder: TransactionBuilder) {
    // Few values per host: re-saving what is stored is a no-op (no revision), which the suite must see too.
    const host = this.prng.pick(hosts);
    builder.saveHostAttributes([hostAttributes(host, [['rack', [`rack-${this.prng.int(3)}`]], ['zone', ['z1']]])]);
    return { kind: 'host' as const, believe: () => undefined };
  }

  private cron(builder: TransactionBuilder) {
    const job = this.prng.pick(this.jobs);
    if (this.prng.chance(0.3)) builder.removeCronJob({ role: String(job.role), environment: String(job.environment), name: String(job.name) });
    else builder.saveCronJob(cronJob(job, taskConfig(job, { cpus: 1, ramMb: 64, diskMb: 64 }),
      { cronSchedule: `*/${1 + this.prng.int(30)} * * * *`, instanceCount: 1 + this.prng.int(4) }));
    return { kind: 'cron' as const, believe: () => undefined };
  }

  private cluster(builder: TransactionBuilder) {
    const host = this.prng.pick(hosts);
    const roll = this.prng.int(3);
    if (roll === 0) builder.saveMaintenanceRequest(new HostMaintenanceRequestT(host, undefined, null, BigInt(60 + this.prng.int(600)), BigInt(this.tick())));
    else if (roll === 1) builder.removeMaintenanceRequest(host);
    else builder.saveSchedulerMetadata(new SchedulerMetadataT('framework-1', [new KeyValueT('leader', `writer-${this.writer}`)]));
    return { kind: 'cluster' as const, believe: () => undefined };
  }
}
