/**
 * `strata log dump`: every logged transaction in revision order, as readable lines or as JSON lines, filtered by
 * revision range, op type, job key or task id. Owner: the strata process's main thread (offline, the lock held).
 * Invariants: entries come out in log order, each with the revision it committed (a noop entry, logged for its
 * idempotency key, shows the revision it was committed at and takes none); the JSON form is the object API's
 * TransactionT with bigints as strings and byte vectors as hex, one object per line.
 */
import { basename } from 'node:path';
import { canonicalConfig } from '../core/config.js';
import { checkedBuffer } from '../core/checked.js';
import {
  DeleteTasksT, JobKeyT, JobUpdateAction, JobUpdateStatus, MaintenanceMode, Op, type OperationT, RemoveCronJobT,
  RemoveJobUpdatesT, RemoveMaintenanceRequestT, RemoveQuotaT, ResourceType, SaveCronJobT, SaveHostAttributesT,
  SaveJobInstanceUpdateEventT, SaveJobUpdateEventT, SaveJobUpdateT, SaveMaintenanceRequestT, SaveQuotaT,
  SaveSchedulerMetadataT, type ScheduledTaskT, ScheduleStatus, Transaction, type TransactionT, TransitionTaskT,
  UpsertTasksT, type ResourceT,
} from '../core/fbs/strata.js';
import { FormatError } from '../core/files.js';
import { entryTransaction } from '../core/log-entry.js';
import { scanLog } from '../core/wal.js';
import { text } from '../core/text.js';
import {
  exitOk, logDirectory, type OfflineOptions, type Output, UsageError, usageFailed, withDataDirectory,
} from './tool-support.js';

export const dumpItemsMax = 8; // ids listed per op in the text form (--json has them all): one op, one short line

export interface DumpOptions extends OfflineOptions {
  from?: number;
  to?: number;
  /** An Op name (UpsertTasks, TransitionTask, ...), any case. */
  op?: string;
  /** ROLE/ENV/NAME. */
  job?: string;
  task?: string;
  json?: boolean;
}

interface Filter {
  from: number;
  to: number;
  op: Op | null;
  job: string | null;         // "role/env/name"
  jobInTaskId: string | null; // "-role-env-name-": how an Aurora task id names its job
  task: string | null;
}

/** What the dump learns from the log as it goes: config hash -> job, and (for --job) task id -> job. */
interface Learned { configJobs: Map<string, string>; taskJobs: Map<string, string> | null }

export const opNames: string[] = Object.keys(Op).filter((name) => Number.isNaN(Number(name)) && name !== 'NONE');

export function parseOpName(name: string): Op {
  const found = opNames.find((known) => known.toLowerCase() === name.toLowerCase());
  if (found === undefined) throw new UsageError(`--op ${name}: not an operation; one of ${opNames.join(', ')}`);
  return Op[found as keyof typeof Op];
}

function dumpFilter(options: DumpOptions): Filter {
  const from = options.from ?? 0;
  const to = options.to ?? Number.MAX_SAFE_INTEGER;
  if (from > to) throw new UsageError(`--from ${from} is after --to ${to}`);
  let job: string | null = null;
  let jobInTaskId: string | null = null;
  if (options.job !== undefined) {
    const parts = options.job.split('/');
    if (parts.length !== 3 || parts.some((part) => part === '')) {
      throw new UsageError(`--job ${options.job}: give a job key as ROLE/ENV/NAME`);
    }
    job = options.job;
    jobInTaskId = `-${parts.join('-')}-`;
  }
  return { from, to, op: options.op === undefined ? null : parseOpName(options.op), job, jobInTaskId,
    task: options.task ?? null };
}

/** Ends the scan early (a FormatError, so that scanLog passes it through as it is). */
class ScanDone extends FormatError {
  constructor() {
    super('', 0, 'done');
  }
}

export function logDump(options: DumpOptions, output: Output): number {
  let filter: Filter;
  try {
    filter = dumpFilter(options);
  } catch (error) {
    return usageFailed(error, output);
  }
  return withDataDirectory(options, 'strata log dump', output, () => {
    const learned: Learned = { configJobs: new Map(), taskJobs: filter.job === null ? null : new Map() };
    let entries = 0;
    let shown = 0;
    try {
      scanLog(logDirectory(options.dataDir), (record) => {
        const group = record.group;
        let revision = record.firstRevision - 1;
        for (let i = 0; i < group.entriesLength(); i++) {
          const entry = group.entries(i)!;
          const noop = entry.noop();
          if (!noop) revision++;
          if (revision > filter.to) throw new ScanDone();
          entries++;
          const transaction = Transaction.getRootAsTransaction(checkedBuffer(entryTransaction(entry)));
          const configs = learnConfigs(transaction, learned);
          const inRange = revision >= filter.from;
          if (!inRange && learned.taskJobs === null) continue;
          const t = transaction.unpack();
          if (learned.taskJobs !== null) learnTasks(t, learned);
          if (!inRange || !matches(t, filter, learned)) continue;
          shown++;
          const file = basename(record.file);
          if (options.json === true) {
            output.write(JSON.stringify({ revision, file, offset: record.offset, entry: i + 1,
              entries: group.entriesLength(), noop, transaction: t }, jsonValue));
          } else {
            writeText(output.write, t, configs, learned, { revision, noop, file, offset: record.offset, entry: i + 1,
              entries: group.entriesLength() });
          }
        }
      });
    } catch (error) {
      if (!(error instanceof ScanDone)) throw error;
    }
    if (options.json !== true) output.write(`-- ${shown} of ${entries} entries shown`);
    return exitOk;
  });
}

const byteVectorFields = new Set(['configHash', 'hash', 'bytes']);

/** JSON.stringify replacer: bigints as strings, byte vectors (config hashes) as hex. */
export function jsonValue(key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (byteVectorFields.has(key) && Array.isArray(value)) return Buffer.from(value as number[]).toString('hex');
  return value;
}

function jobText(job: JobKeyT | null | undefined): string {
  return job == null ? '' : `${text(job.role)}/${text(job.environment)}/${text(job.name)}`;
}

/** Remembers the job of every config the entry stores; returns them as "hash role/env/name". */
function learnConfigs(transaction: Transaction, learned: Learned): string[] {
  const configs: string[] = [];
  for (let i = 0; i < transaction.configsLength(); i++) {
    const config = transaction.configs(i)!.unpack();
    const job = jobText(config.job);
    const hash = canonicalConfig(config).hashHex;
    learned.configJobs.set(hash, job);
    configs.push(`${hash} ${job}`);
  }
  return configs;
}

function taskJob(task: ScheduledTaskT, learned: Learned): string {
  const assigned = task.assignedTask;
  if (assigned === null) return '';
  if (assigned.task !== null) return jobText(assigned.task.job);
  return learned.configJobs.get(Buffer.from(assigned.configHash).toString('hex')) ?? '';
}

function learnTasks(t: TransactionT, learned: Learned): void {
  for (const operation of t.ops) {
    if (!(operation.op instanceof UpsertTasksT)) continue;
    for (const task of operation.op.tasks) {
      const job = taskJob(task, learned);
      if (job !== '') learned.taskJobs!.set(text(task.assignedTask?.taskId), job);
    }
  }
}

function matches(t: TransactionT, filter: Filter, learned: Learned): boolean {
  if (filter.op !== null && !t.ops.some((operation) => operation.opType === filter.op)) return false;
  if (filter.task !== null && !touchedTaskIds(t).includes(filter.task)) return false;
  return filter.job === null || touchesJob(t, filter, learned);
}

function touchedTaskIds(t: TransactionT): string[] {
  const ids: string[] = [];
  for (const operation of t.ops) {
    const op = operation.op;
    if (op instanceof UpsertTasksT) for (const task of op.tasks) ids.push(text(task.assignedTask?.taskId));
    else if (op instanceof TransitionTaskT) ids.push(text(op.taskId));
    else if (op instanceof DeleteTasksT) for (const id of op.taskIds) ids.push(text(id));
  }
  for (const precondition of t.preconditions) if (precondition.taskId !== null) ids.push(text(precondition.taskId));
  return ids;
}

/**
 * A task id names the job the log upserted it with; a task whose upsert is not in the log (it came from a
 * snapshot) matches when its id has Aurora's form <ts>-<role>-<env>-<job>-<instance>-<uuid>.
 */
function taskInJob(id: string, filter: Filter, learned: Learned): boolean {
  const job = learned.taskJobs!.get(id);
  return job !== undefined ? job === filter.job : id.includes(filter.jobInTaskId!);
}

function touchesJob(t: TransactionT, filter: Filter, learned: Learned): boolean {
  const jobs: string[] = [];
  for (const operation of t.ops) {
    const op = operation.op;
    if (op instanceof UpsertTasksT) for (const task of op.tasks) jobs.push(taskJob(task, learned));
    else if (op instanceof TransitionTaskT) {
      if (taskInJob(text(op.taskId), filter, learned)) return true;
    } else if (op instanceof DeleteTasksT) {
      if (op.taskIds.some((id) => taskInJob(text(id), filter, learned))) return true;
    } else if (op instanceof SaveCronJobT) jobs.push(jobText(op.job?.key));
    else if (op instanceof RemoveCronJobT) jobs.push(jobText(op.key));
    else if (op instanceof SaveJobUpdateT) jobs.push(jobText(op.update?.summary?.key?.job));
    else if (op instanceof SaveJobUpdateEventT || op instanceof SaveJobInstanceUpdateEventT) {
      jobs.push(jobText(op.key?.job));
    }
    else if (op instanceof RemoveJobUpdatesT) for (const key of op.keys) jobs.push(jobText(key.job));
  }
  for (const p of t.preconditions) {
    jobs.push(jobText(p.job), jobText(p.updateKey?.job));
    if (p.taskId !== null && taskInJob(text(p.taskId), filter, learned)) return true;
  }
  return jobs.includes(filter.job!);
}

/** Where an entry is: `entry` counts from 1 within its group of `entries`. */
interface Place { revision: number; noop: boolean; file: string; offset: number; entry: number; entries: number }

function writeText(write: (line: string) => void, t: TransactionT, configs: string[], learned: Learned,
  place: Place): void {
  const key = t.idempotency === null ? '' : `  key ${text(t.idempotency.clientId)}/${t.idempotency.sequence}`;
  write(`rev ${place.revision}${place.noop ? ' noop' : ''}  ${place.file}:${place.offset} ` +
    `entry ${place.entry}/${place.entries}${key}`);
  for (const operation of t.ops) write(`  ${summarise(operation, learned)}`);
  if (t.preconditions.length > 0) write(`  preconditions: ${t.preconditions.length}`);
  if (configs.length > 0) write(`  configs stored: ${list(configs)}`);
}

function list(items: string[]): string {
  const shown = items.slice(0, dumpItemsMax).join(', ');
  return items.length > dumpItemsMax ? `${shown}, ... (${items.length - dumpItemsMax} more; --json has all)` : shown;
}

const status = (value: number): string => ScheduleStatus[value] ?? String(value);

function summarise(operation: OperationT, learned: Learned): string {
  const op = operation.op;
  const name = Op[operation.opType] ?? `op ${operation.opType}`;
  if (op instanceof UpsertTasksT) {
    return `${name} ${op.tasks.length} task(s): ${list(op.tasks.map((task) =>
      `${text(task.assignedTask?.taskId)} ${status(task.status)} ${taskJob(task, learned) || '(config ' +
        Buffer.from(task.assignedTask?.configHash ?? []).toString('hex').slice(0, 8) + ')'}`))}`;
  }
  if (op instanceof TransitionTaskT) {
    const details = [op.hasExpectStatus ? `expect ${status(op.expectStatus)}` : '', op.enforce ? 'enforce' : '',
      op.slaveHost !== null ? `host ${text(op.slaveHost)}` : '',
      op.assignedPorts.length > 0 ? `ports ${op.assignedPorts.map((p) => `${text(p.name)}=${p.port}`).join(',')}` : '',
      `at ${op.timestamp}`, op.message !== null ? JSON.stringify(text(op.message)) : ''].filter((s) => s !== '');
    return `${name} ${text(op.taskId)} -> ${status(op.status)} ${details.join(' ')}`;
  }
  if (op instanceof DeleteTasksT) return `${name} ${op.taskIds.length}: ${list(op.taskIds.map(text))}`;
  if (op instanceof SaveCronJobT) {
    const job = op.job;
    return `${name} ${jobText(job?.key)} schedule ${JSON.stringify(text(job?.cronSchedule))} instances ` +
      `${job?.instanceCount ?? 0}`;
  }
  if (op instanceof RemoveCronJobT) return `${name} ${jobText(op.key)}`;
  if (op instanceof SaveJobUpdateT) {
    const summary = op.update?.summary;
    return `${name} ${jobText(summary?.key?.job)} id ${text(summary?.key?.id)} user ${text(summary?.user)}`;
  }
  if (op instanceof SaveJobUpdateEventT) {
    return `${name} ${jobText(op.key?.job)} id ${text(op.key?.id)} ${JobUpdateStatus[op.event?.status ?? 0]} ` +
      `at ${op.event?.timestampMs ?? 0n}`;
  }
  if (op instanceof SaveJobInstanceUpdateEventT) {
    return `${name} ${jobText(op.key?.job)} id ${text(op.key?.id)} instance ${op.event?.instanceId ?? 0} ` +
      `${JobUpdateAction[op.event?.action ?? 0]} at ${op.event?.timestampMs ?? 0n}`;
  }
  if (op instanceof RemoveJobUpdatesT) {
    return `${name} ${list(op.keys.map((key) => `${jobText(key.job)} id ${text(key.id)}`))}`;
  }
  if (op instanceof SaveQuotaT) return `${name} ${text(op.role)} ${resources(op.quota?.resources ?? [])}`;
  if (op instanceof RemoveQuotaT) return `${name} ${text(op.role)}`;
  if (op instanceof SaveHostAttributesT) {
    const hosts = op.attributes.map((host) => `${text(host.host)} ${MaintenanceMode[host.mode] ?? host.mode}`);
    return `${name} ${list(hosts)}`;
  }
  if (op instanceof SaveMaintenanceRequestT) return `${name} ${text(op.request?.host)}`;
  if (op instanceof RemoveMaintenanceRequestT) return `${name} ${text(op.host)}`;
  if (op instanceof SaveSchedulerMetadataT) return `${name} framework ${text(op.metadata?.frameworkId)}`;
  return name;
}

function resources(items: ResourceT[]): string {
  return items.map((r) => {
    switch (r.type) {
      case ResourceType.NUM_CPUS: return `cpus=${r.numCpus}`;
      case ResourceType.RAM_MB: return `ram_mb=${r.ramMb}`;
      case ResourceType.DISK_MB: return `disk_mb=${r.diskMb}`;
      case ResourceType.NUM_GPUS: return `gpus=${r.numGpus}`;
      case ResourceType.NAMED_PORT: return `port=${text(r.namedPort)}`;
      default: return `resource ${r.type}`;
    }
  }).join(' ');
}
