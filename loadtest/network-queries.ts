/**
 * The network benchmark's queries and how its clients read the answers: QueryRequest bytes built with the builder
 * API, and readers that materialize every field of a result through the accessors (strings decoded, vectors
 * walked), as a scheduler's client would before using it. Owner: a load generator worker thread.
 * Invariants: a reader returns a count of what it read (so the work cannot be skipped) or throws on a result
 * that does not have the workload's shape.
 */
import * as flatbuffers from 'flatbuffers';
import * as f from '../core/fbs/strata.js';
import type { JobNames } from './workload.js';

export const pageTasksMax = 10_000;   // core/limits.ts queryKeysMax: a TaskQuery page larger than that is refused

function finishQuery(b: flatbuffers.Builder, type: f.Query, query: flatbuffers.Offset): Uint8Array {
  b.finish(f.QueryRequest.createQueryRequest(b, type, query));
  return b.asUint8Array().slice();
}

/** A TaskQuery for one job's tasks by job key. */
export function jobTasksQuery(names: JobNames, detail: f.ConfigDetail): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const key = f.JobKey.createJobKey(b, b.createString(names.role), b.createString(names.environment), b.createString(names.name));
  const keys = f.TaskQuery.createJobKeysVector(b, [key]);
  return finishQuery(b, f.Query.TaskQuery, f.TaskQuery.createTaskQuery(b, 0, 0, 0, 0, 0, 0, 0, keys, 0, 0, detail));
}

/** A page of every task (task id order), configs by hash only. */
export function taskPageQuery(offset: number, limit: number): Uint8Array {
  const b = new flatbuffers.Builder(128);
  return finishQuery(b, f.Query.TaskQuery,
    f.TaskQuery.createTaskQuery(b, 0, 0, 0, 0, 0, 0, 0, 0, offset, limit, f.ConfigDetail.HASH_ONLY));
}

export function roleSummaryQuery(): Uint8Array {
  const b = new flatbuffers.Builder(64);
  return finishQuery(b, f.Query.RoleSummaryQuery, f.RoleSummaryQuery.createRoleSummaryQuery(b));
}

export function jobSummaryQuery(role: string): Uint8Array {
  const b = new flatbuffers.Builder(128);
  return finishQuery(b, f.Query.JobSummaryQuery, f.JobSummaryQuery.createJobSummaryQuery(b, b.createString(role)));
}

/** Scratch accessor objects, reused for every result a thread reads. */
export class ResultReader {
  private readonly tasksResult = new f.TasksResult();
  private readonly task = new f.ScheduledTask();
  private readonly assigned = new f.AssignedTask();
  private readonly event = new f.TaskEvent();
  private readonly port = new f.Port();
  private readonly stored = new f.StoredConfig();
  private readonly config = new f.TaskConfig();
  private readonly key = new f.JobKey();
  private readonly resource = new f.Resource();
  private readonly metadata = new f.Metadata();
  private readonly executor = new f.ExecutorConfig();
  private readonly roleSummaries = new f.RoleSummaryResult();
  private readonly roleSummary = new f.RoleSummary();
  private readonly jobSummaries = new f.JobSummaryResult();
  private readonly jobSummary = new f.JobSummary();
  private readonly stats = new f.JobStats();
  /** Characters of strings decoded so far: what the reads produced. */
  characters = 0;

  tasks(response: f.QueryResponse): f.TasksResult {
    if (response.resultType() !== f.Result.TasksResult) throw new Error(`not a TasksResult: ${f.Result[response.resultType()]}`);
    return response.result(this.tasksResult) as f.TasksResult;
  }

  /** Reads every task of a TasksResult and every config in it; returns the task count. */
  readTasks(result: f.TasksResult): number {
    const count = result.tasksLength();
    for (let i = 0; i < count; i++) this.readTask(result.tasks(i, this.task)!);
    for (let i = 0; i < result.configsLength(); i++) this.readConfig(result.configs(i, this.stored)!);
    return count;
  }

  private text(value: string | null): void {
    this.characters += value === null ? 0 : value.length;
  }

  private readTask(task: f.ScheduledTask): void {
    const assigned = task.assignedTask(this.assigned);
    if (assigned === null) throw new Error('a task without assigned_task');
    this.text(assigned.taskId());
    this.text(assigned.slaveId());
    this.text(assigned.slaveHost());
    this.characters += assigned.instanceId() >= 0 ? 1 : 0;
    this.characters += assigned.configHashLength();
    for (let p = 0; p < assigned.assignedPortsLength(); p++) {
      const port = assigned.assignedPorts(p, this.port)!;
      this.text(port.name());
      this.characters += port.port() > 0 ? 1 : 0;
    }
    this.characters += task.status() + task.failureCount() + Number(task.modRevision() > 0n);
    this.text(task.ancestorId());
    for (let e = 0; e < task.taskEventsLength(); e++) {
      const event = task.taskEvents(e, this.event)!;
      this.characters += Number(event.timestamp() > 0n) + event.status();
      this.text(event.message());
      this.text(event.scheduler());
    }
  }

  private readConfig(stored: f.StoredConfig): void {
    const bytes = stored.bytesArray();
    if (bytes === null || stored.hashLength() === 0) throw new Error('a FULL result without config bytes');
    const config = f.TaskConfig.getRootAsTaskConfig(new flatbuffers.ByteBuffer(bytes), this.config);
    const key = config.job(this.key)!;
    this.text(key.role());
    this.text(key.environment());
    this.text(key.name());
    this.text(config.tier());
    this.text(config.contactEmail());
    this.characters += config.priority() + config.maxTaskFailures() + Number(config.production()) + Number(config.isService());
    for (let r = 0; r < config.resourcesLength(); r++) {
      const resource = config.resources(r, this.resource)!;
      this.characters += resource.type() + resource.numCpus();
      this.text(resource.namedPort());
    }
    for (let m = 0; m < config.metadataLength(); m++) {
      const metadata = config.metadata(m, this.metadata)!;
      this.text(metadata.key());
      this.text(metadata.value());
    }
    const executor = config.executorConfig(this.executor);
    if (executor !== null) {
      this.text(executor.name());
      this.text(executor.data());
    }
  }

  /** Reads a RoleSummaryResult; returns its role count. */
  readRoleSummaries(response: f.QueryResponse): number {
    if (response.resultType() !== f.Result.RoleSummaryResult) throw new Error('not a RoleSummaryResult');
    const result = response.result(this.roleSummaries) as f.RoleSummaryResult;
    for (let i = 0; i < result.rolesLength(); i++) {
      const role = result.roles(i, this.roleSummary)!;
      this.text(role.role());
      this.characters += role.jobCount() + role.cronJobCount() + role.taskCount();
    }
    return result.rolesLength();
  }

  /** Reads a JobSummaryResult; returns its job count. */
  readJobSummaries(response: f.QueryResponse): number {
    if (response.resultType() !== f.Result.JobSummaryResult) throw new Error('not a JobSummaryResult');
    const result = response.result(this.jobSummaries) as f.JobSummaryResult;
    for (let i = 0; i < result.jobsLength(); i++) {
      const job = result.jobs(i, this.jobSummary)!;
      const key = job.job(this.key)!;
      this.text(key.role());
      this.text(key.environment());
      this.text(key.name());
      const stats = job.stats(this.stats)!;
      this.characters += stats.active() + stats.finished() + stats.failed() + stats.pending();
      const counts = job.statusCountsArray();
      if (counts !== null) for (let s = 0; s < counts.length; s++) this.characters += counts[s]!;
    }
    return result.jobsLength();
  }
}
