/**
 * The online read commands of the strata command: `status`, `get task`, `query` (and `backup query`, the same on
 * the staged backup), `summary`, `quota`. Owner: the strata process's main thread.
 * Invariants: each reads through the client SDK only; a command prints what one answer held, at the revision
 * the server read it (no answer is combined with another); JSON output uses cli/schema-json.ts's conventions,
 * with each task's config inline (assignedTask.task, no configHash), so a printed task can be upserted again.
 */
import * as flatbuffers from 'flatbuffers';
import { fbs, type ScheduleStatus, type StrataClient, type TaskQueryFields } from '../client/index.js';
import { resultOf, taskQuery } from '../client/queries.js';
import { count, integer, type Io, list, text, type Values } from './command-spec.js';
import { enumName, enumNames, enumValue, longJson, recordJson } from './schema-json.js';
import { exitFailure, exitOk, UsageError } from './tool-support.js';

const textDecoder = new TextDecoder();

export function str(value: string | Uint8Array | null | undefined): string {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : textDecoder.decode(value);
}

/** Rows as columns padded to their widest cell (the last column is not padded). */
export function writeTable(io: Io, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  io.write(line(header));
  for (const row of rows) io.write(line(row));
}

function jobText(job: fbs.JobKeyT | null | undefined): string {
  return job === null || job === undefined ? '-' : `${str(job.role)}/${str(job.environment)}/${str(job.name)}`;
}

/** Statuses by name (any case) or number; an unknown one is a usage error naming the known ones. */
export function statusesOf(names: string[], flag: string): ScheduleStatus[] {
  return names.map((name) => {
    const value = enumValue('ScheduleStatus', /^\d+$/.test(name) ? Number(name) : name);
    if (value === null) {
      throw new UsageError(`--${flag}: unknown status ${JSON.stringify(name)} (one of ${enumNames('ScheduleStatus').join(', ')})`);
    }
    return value as ScheduleStatus;
  });
}

// --- status -------------------------------------------------------------------------------------------------

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']];
  const first = parts.findIndex(([n]) => n !== 0);
  return first < 0 ? '0s' : parts.slice(first).map(([n, unit]) => `${n}${unit}`).join(' ');
}

export async function status(client: StrataClient, values: Values, io: Io): Promise<number> {
  const s = await client.status();
  if (values['json'] === true) {
    io.write(JSON.stringify({ ...recordJson('StatusResponse', s), staged: str(s.staged) }));
    return exitOk;
  }
  const hello = client.hello;
  const rows: [string, string][] = [
    ['revision', String(s.revision)],
    ['tasks', String(s.tasks)],
    ['configs', String(s.configs)],
    ['server version', str(s.serverVersion)],
    ['uptime', `${duration(Number(s.uptimeMs))} (${s.uptimeMs} ms)`],
    ['websocket', str(s.websocket)],
    ['oldest watch revision', String(s.oldestWatchRevision)],
    ['connections', String(s.connections)],
    ['subscriptions', String(s.subscriptions)],
    ['staged backup', str(s.staged) === '' ? 'none' : str(s.staged)],
  ];
  if (hello !== null) rows.push(['this token', hello.admin ? 'admin' : scopeText(hello)]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  for (const [key, value] of rows) io.write(`${key.padEnd(width)}${value}`);
  return exitOk;
}

function scopeText(hello: fbs.HelloResponseT): string {
  const read = hello.readAll ? '*' : hello.readRoles.map(str).join(',');
  const write = hello.writeAll ? '*' : hello.writeRoles.map(str).join(',');
  return `read ${read === '' ? '-' : read}, write ${write === '' ? '-' : write}`;
}

// --- tasks --------------------------------------------------------------------------------------------------

function decodeConfig(stored: fbs.StoredConfigT): fbs.TaskConfigT {
  return fbs.TaskConfig.getRootAsTaskConfig(new flatbuffers.ByteBuffer(Uint8Array.from(stored.bytes))).unpack();
}

/** The tasks of a result with their configs inline (configHash cleared), as an upsert takes them. */
export function tasksWithConfigs(result: fbs.TasksResultT): fbs.ScheduledTaskT[] {
  const configs = new Map<string, fbs.TaskConfigT>();
  for (const stored of result.configs) configs.set(Buffer.from(stored.hash).toString('hex'), decodeConfig(stored));
  for (const task of result.tasks) {
    const assigned = task.assignedTask;
    if (assigned === null) continue;
    const config = configs.get(Buffer.from(assigned.configHash).toString('hex'));
    if (config !== undefined) {
      assigned.task = config;
      assigned.configHash = [];
    }
  }
  return result.tasks;
}

/** One task by id; `role` lets a role-scoped token ask (its queries must name a role inside its scope). */
export async function getTask(client: StrataClient, id: string, role: string | undefined, io: Io): Promise<number> {
  const fields: TaskQueryFields = { taskIds: [id], configDetail: fbs.ConfigDetail.FULL };
  if (role !== undefined) fields.role = role;
  const { result } = await client.tasks(fields);
  const task = tasksWithConfigs(result)[0];
  if (task === undefined) {
    io.writeError(`strata: get task: no task ${JSON.stringify(id)}`);
    return exitFailure;
  }
  io.write(JSON.stringify(recordJson('ScheduledTask', task), null, 2));
  return exitOk;
}

/** The task query of `query` / `backup query` options. */
export function taskQueryFields(values: Values): TaskQueryFields {
  const fields: TaskQueryFields = {
    statuses: statusesOf(list(values, 'status'), 'status'),
    slaveHosts: list(values, 'host'),
    taskIds: list(values, 'task'),
    limit: count('limit', values['limit']) ?? 0,
    offset: integer('offset', values['offset'], 0, 'a count') ?? 0,
    configDetail: values['json'] === true ? fbs.ConfigDetail.FULL : fbs.ConfigDetail.WITHOUT_EXECUTOR_DATA,
  };
  const role = text(values, 'role');
  const environment = text(values, 'env');
  const jobName = text(values, 'job');
  if (role !== undefined) fields.role = role;
  if (environment !== undefined) fields.environment = environment;
  if (jobName !== undefined) fields.jobName = jobName;
  return fields;
}

export async function queryTasks(client: StrataClient, values: Values, io: Io, staged: boolean): Promise<number> {
  const bytes = taskQuery(taskQueryFields(values));
  const response = staged ? await client.queryStaged(bytes) : await client.query(bytes);
  const { revision, result } = resultOf<fbs.TasksResultT>(response, fbs.Result.TasksResult);
  const tasks = tasksWithConfigs(result);
  if (values['json'] === true) {
    for (const task of tasks) io.write(JSON.stringify(recordJson('ScheduledTask', task)));
    return exitOk;
  }
  writeTable(io, ['TASK ID', 'STATUS', 'HOST', 'INSTANCE', 'JOB'], tasks.map((task) => {
    const assigned = task.assignedTask;
    return [str(assigned?.taskId), String(enumName('ScheduleStatus', task.status)), str(assigned?.slaveHost) || '-',
      String(assigned?.instanceId ?? '-'), jobText(assigned?.task?.job)];
  }));
  io.write(`${tasks.length} of ${result.total} tasks${staged ? ' in the staged backup' : ''} at revision ${revision}`);
  return exitOk;
}

// --- summaries and quota ------------------------------------------------------------------------------------

export async function summary(client: StrataClient, values: Values, io: Io): Promise<number> {
  const role = text(values, 'role');
  const json = values['json'] === true;
  if (role === undefined) {
    const { revision, result } = await client.roleSummary();
    if (json) for (const r of result.roles) io.write(JSON.stringify(recordJson('RoleSummary', r)));
    else {
      writeTable(io, ['ROLE', 'JOBS', 'CRON JOBS', 'TASKS'], result.roles.map((r) =>
        [str(r.role), String(r.jobCount), String(r.cronJobCount), String(r.taskCount)]));
      io.write(`${result.roles.length} roles at revision ${revision}`);
    }
    return exitOk;
  }
  const { revision, result } = await client.jobSummary(role);
  if (json) for (const j of result.jobs) io.write(JSON.stringify(recordJson('JobSummary', j)));
  else {
    writeTable(io, ['JOB', 'PENDING', 'ACTIVE', 'FINISHED', 'FAILED', 'CRON'], result.jobs.map((j) => [
      jobText(j.job), String(j.stats?.pending ?? 0), String(j.stats?.active ?? 0), String(j.stats?.finished ?? 0),
      String(j.stats?.failed ?? 0), j.cron === null ? '-' : str(j.cron.cronSchedule)]));
    io.write(`${result.jobs.length} jobs of role ${role} at revision ${revision}`);
  }
  return exitOk;
}

function resourceText(resource: fbs.ResourceT): string {
  switch (resource.type) {
    case fbs.ResourceType.NUM_CPUS: return `cpus ${resource.numCpus}`;
    case fbs.ResourceType.RAM_MB: return `ram ${resource.ramMb} MB`;
    case fbs.ResourceType.DISK_MB: return `disk ${resource.diskMb} MB`;
    case fbs.ResourceType.NUM_GPUS: return `gpus ${resource.numGpus}`;
    case fbs.ResourceType.NAMED_PORT: return `port ${str(resource.namedPort)}`;
    default: return `resource type ${resource.type}`;
  }
}

export async function quota(client: StrataClient, role: string | undefined, values: Values, io: Io): Promise<number> {
  if (role === undefined || role === '') throw new UsageError('quota needs the ROLE');
  const { revision, result } = await client.quota(role);
  if (values['json'] === true) {
    io.write(JSON.stringify({ revision: longJson(revision), ...recordJson('QuotaResult', result) }));
    return exitOk;
  }
  const resources = result.quota?.resources ?? [];
  io.write(result.quota === null ? `role ${role}: no quota set`
    : `role ${role}: quota ${resources.map(resourceText).join(', ') || '(empty)'} (set at revision ${result.quotaRevision})`);
  const rows: [string, fbs.ResourceTotalsT | null][] = [['prod shared', result.prodShared],
    ['prod dedicated', result.prodDedicated], ['non-prod shared', result.nonProdShared],
    ['non-prod dedicated', result.nonProdDedicated]];
  writeTable(io, ['CONSUMPTION', 'CPUS', 'RAM MB', 'DISK MB', 'GPUS'], rows.map(([name, t]) =>
    [name, String(t?.numCpus ?? 0), String(t?.ramMb ?? 0), String(t?.diskMb ?? 0), String(t?.numGpus ?? 0)]));
  io.write(`at revision ${revision}`);
  return exitOk;
}
