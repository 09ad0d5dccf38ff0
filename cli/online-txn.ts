/**
 * `strata txn FILE.json`: a transaction written as JSON (the format is in docs/operations.md, "strata txn"),
 * checked whole, then built with the client's TransactionBuilder and committed. Owner: the strata process's
 * main thread.
 * Invariants:
 * - Nothing is sent unless the whole file reads: a JSON syntax error names its line and column, any other
 *   mistake the JSON path of the value at fault ($.ops[1].status), both exit 2 before connecting.
 * - The limits of core/limits.ts on operations, preconditions and configs are checked here too, with the path.
 * - The transaction carries the file's idempotencyKey when it has one (running the same file again is then
 *   applied at most once), none when it says null, else the client's automatic key (one run, never repeated).
 */
import { readFileSync, statSync } from 'node:fs';
import type { fbs, RecordRef, ScheduleStatus, StrataClient, TransactionBuilder } from '../client/index.js';
import type { JobKeyLike, JobUpdateKeyLike, TransitionOptions } from '../client/index.js';
import {
  transactionBytesMax, transactionConfigsMax, transactionOpsMax, transactionPreconditionsMax,
} from '../core/limits.js';
import type { Io, Values } from './command-spec.js';
import { refused } from './online.js';
import { str } from './online-read.js';
import {
  enumNames, enumValue, isObject, JsonInputError, longFromJson, recordFromJson, recordJson,
} from './schema-json.js';
import { exitOk, UsageError } from './tool-support.js';

/** JSON is several times bigger than the FlatBuffers it becomes; past this the transaction cannot fit anyway. */
const txnJsonBytesMax = 4 * transactionBytesMax;

/** One step of building the transaction, checked already; applied once a client exists. */
type Step = (builder: TransactionBuilder) => void;

interface OpSpec {
  /** The table of schema.fbs whose fields the op's JSON holds (besides "op"). */
  table: string;
  /** Fields that must be given (and not null). */
  required: string[];
  add(builder: TransactionBuilder, record: never, given: Record<string, unknown>): void;
}

const asKey = (key: unknown) => key as JobKeyLike;
const asUpdateKey = (key: unknown) => key as JobUpdateKeyLike;

export const txnOps: Record<string, OpSpec> = {
  upsertTasks: { table: 'UpsertTasks', required: ['tasks'], add: (b, r: fbs.UpsertTasksT) => b.upsertTasks(r.tasks) },
  transition: { table: 'TransitionTask', required: ['taskId', 'status'], add: addTransition },
  deleteTasks: { table: 'DeleteTasks', required: ['taskIds'],
    add: (b, r: fbs.DeleteTasksT) => b.deleteTasks(r.taskIds.map(str), { ignoreMissing: r.ignoreMissing }) },
  saveCronJob: { table: 'SaveCronJob', required: ['job'], add: (b, r: fbs.SaveCronJobT) => b.saveCronJob(r.job!) },
  removeCronJob: { table: 'RemoveCronJob', required: ['key'], add: (b, r: fbs.RemoveCronJobT) => b.removeCronJob(asKey(r.key)) },
  saveJobUpdate: { table: 'SaveJobUpdate', required: ['update'], add: (b, r: fbs.SaveJobUpdateT) => b.saveJobUpdate(r.update!) },
  saveJobUpdateEvent: { table: 'SaveJobUpdateEvent', required: ['key', 'event'],
    add: (b, r: fbs.SaveJobUpdateEventT) => b.saveJobUpdateEvent(asUpdateKey(r.key), r.event!) },
  saveJobInstanceUpdateEvent: { table: 'SaveJobInstanceUpdateEvent', required: ['key', 'event'],
    add: (b, r: fbs.SaveJobInstanceUpdateEventT) => b.saveJobInstanceUpdateEvent(asUpdateKey(r.key), r.event!) },
  removeJobUpdates: { table: 'RemoveJobUpdates', required: ['keys'],
    add: (b, r: fbs.RemoveJobUpdatesT) => b.removeJobUpdates(r.keys.map(asUpdateKey)) },
  saveQuota: { table: 'SaveQuota', required: ['role', 'quota'], add: (b, r: fbs.SaveQuotaT) => b.saveQuota(str(r.role), r.quota!) },
  removeQuota: { table: 'RemoveQuota', required: ['role'], add: (b, r: fbs.RemoveQuotaT) => b.removeQuota(str(r.role)) },
  saveHostAttributes: { table: 'SaveHostAttributes', required: ['attributes'],
    add: (b, r: fbs.SaveHostAttributesT) => b.saveHostAttributes(r.attributes) },
  saveMaintenanceRequest: { table: 'SaveMaintenanceRequest', required: ['request'],
    add: (b, r: fbs.SaveMaintenanceRequestT) => b.saveMaintenanceRequest(r.request!) },
  removeMaintenanceRequest: { table: 'RemoveMaintenanceRequest', required: ['host'],
    add: (b, r: fbs.RemoveMaintenanceRequestT) => b.removeMaintenanceRequest(str(r.host)) },
  saveSchedulerMetadata: { table: 'SaveSchedulerMetadata', required: ['metadata'],
    add: (b, r: fbs.SaveSchedulerMetadataT) => b.saveSchedulerMetadata(r.metadata!) },
};

/** A transition through the builder: expectStatus only when given, the timestamp now unless given. */
function addTransition(builder: TransactionBuilder, t: fbs.TransitionTaskT, given: Record<string, unknown>): void {
  const has = (camel: string, snake: string) => camel in given || snake in given;
  const options: TransitionOptions = { enforce: t.enforce, failureCount: t.failureCount,
    timesPartitioned: t.timesPartitioned, assignedPorts: t.assignedPorts.map((p) => ({ name: str(p.name), port: p.port })) };
  if (has('expectStatus', 'expect_status')) options.expectStatus = t.expectStatus;
  if (has('timestamp', 'timestamp')) options.timestamp = t.timestamp;
  if (t.message !== null) options.message = str(t.message);
  if (t.scheduler !== null) options.scheduler = str(t.scheduler);
  if (t.slaveId !== null) options.slaveId = str(t.slaveId);
  if (t.slaveHost !== null) options.slaveHost = str(t.slaveHost);
  builder.transition(str(t.taskId), t.status, options);
}

function opStep(json: unknown, path: string): { name: string; step: Step } {
  if (!isObject(json)) throw new JsonInputError(path, 'expected an object {"op": NAME, ...}');
  const name = json['op'];
  const spec = typeof name === 'string' ? txnOps[name] : undefined;
  if (spec === undefined) {
    throw new JsonInputError(`${path}.op`, `expected one of ${Object.keys(txnOps).join(', ')}, got ${JSON.stringify(name)}`);
  }
  if (name === 'transition' && 'hasExpectStatus' in json) {
    throw new JsonInputError(`${path}.hasExpectStatus`, 'give expectStatus alone (its presence sets the flag)');
  }
  const record = recordFromJson<Record<string, unknown>>(spec.table, json, path, ['op']);
  for (const field of spec.required) {
    if (record[field] === null || record[field] === undefined || !(field in json || snake(field) in json)) {
      throw new JsonInputError(`${path}.${field}`, `missing (${name} needs ${spec.required.join(', ')})`);
    }
  }
  return { name: name as string, step: (builder) => spec.add(builder, record as never, json) };
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

const preconditionKinds = ['absent', 'present', 'revision', 'status'] as const;
const recordKeys = ['task', 'cronJob', 'jobUpdate', 'quota', 'hostAttributes', 'maintenance', 'scheduler'] as const;

function stringAt(json: Record<string, unknown>, key: string, path: string): string {
  const value = json[key];
  if (typeof value !== 'string') throw new JsonInputError(`${path}.${key}`, `expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function recordRef(json: Record<string, unknown>, path: string): RecordRef {
  const keys = recordKeys.filter((k) => k in json);
  if (keys.length !== 1) {
    throw new JsonInputError(path, `name exactly one record: one of ${recordKeys.join(', ')} (got ${keys.length})`);
  }
  const key = keys[0]!;
  switch (key) {
    case 'task': return { task: stringAt(json, key, path) };
    case 'quota': return { quota: stringAt(json, key, path) };
    case 'hostAttributes': return { hostAttributes: stringAt(json, key, path) };
    case 'maintenance': return { maintenance: stringAt(json, key, path) };
    case 'cronJob': return { cronJob: asKey(recordFromJson('JobKey', json[key], `${path}.${key}`)) };
    case 'jobUpdate': return { jobUpdate: asUpdateKey(recordFromJson('JobUpdateKey', json[key], `${path}.${key}`)) };
    case 'scheduler':
      if (json[key] !== true) throw new JsonInputError(`${path}.scheduler`, 'expected true (the scheduler metadata)');
      return { scheduler: true };
  }
}

function preconditionStep(json: unknown, path: string): Step {
  if (!isObject(json)) throw new JsonInputError(path, 'expected an object {"expect": KIND, RECORD: KEY}');
  for (const key of Object.keys(json)) {
    if (key !== 'expect' && key !== 'revision' && key !== 'status' && !(recordKeys as readonly string[]).includes(key)) {
      throw new JsonInputError(`${path}.${key}`, `a precondition has no such field (fields: expect, ${recordKeys.join(', ')}, revision, status)`);
    }
  }
  const kind = json['expect'];
  if (!(preconditionKinds as readonly unknown[]).includes(kind)) {
    throw new JsonInputError(`${path}.expect`, `expected one of ${preconditionKinds.join(', ')}, got ${JSON.stringify(kind)}`);
  }
  const ref = recordRef(json, path);
  const allowed = kind === 'revision' ? 'revision' : kind === 'status' ? 'status' : null;
  for (const extra of ['revision', 'status']) {
    if (extra in json && extra !== allowed) throw new JsonInputError(`${path}.${extra}`, `not used by expect ${String(kind)}`);
  }
  switch (kind) {
    case 'absent': return (b) => b.expectAbsent(ref);
    case 'present': return (b) => b.expectPresent(ref);
    case 'revision': {
      const revision = longFromJson('long', json['revision'], `${path}.revision`);
      return (b) => b.expectRevision(ref, revision);
    }
    default: {
      if (!('task' in ref)) throw new JsonInputError(path, 'expect status needs a task');
      const given = json['status'];
      const status = typeof given === 'string' || typeof given === 'number' ? enumValue('ScheduleStatus', given) : null;
      if (status === null) {
        throw new JsonInputError(`${path}.status`, `expected a ScheduleStatus (${enumNames('ScheduleStatus').join(', ')}), got ${JSON.stringify(given)}`);
      }
      return (b) => b.expectTaskStatus(ref.task, status as ScheduleStatus);
    }
  }
}

function listAt(json: Record<string, unknown>, key: string, most: number, what: string): unknown[] {
  const value = json[key];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new JsonInputError(`$.${key}`, `expected a list of ${what}`);
  if (value.length > most) throw new JsonInputError(`$.${key}`, `${value.length} ${what} (at most ${most})`);
  return value;
}

export interface ParsedTransaction { steps: Step[]; opNames: string[] }

/** Checks a whole transaction document; throws JsonInputError (exit 2) at the first mistake. */
export function parseTransaction(json: unknown): ParsedTransaction {
  if (!isObject(json)) throw new JsonInputError('$', 'expected an object {"ops": [...], ...}');
  for (const key of Object.keys(json)) {
    if (!['idempotencyKey', 'preconditions', 'configs', 'ops'].includes(key)) {
      throw new JsonInputError(`$.${key}`, 'a transaction has no such field (fields: idempotencyKey, preconditions, configs, ops)');
    }
  }
  const steps: Step[] = [];
  const opNames: string[] = [];
  if ('idempotencyKey' in json) {
    const key = json['idempotencyKey'];
    if (key === null) steps.push((b) => b.withoutIdempotencyKey());
    else {
      const k = recordFromJson<fbs.IdempotencyKeyT>('IdempotencyKey', key, '$.idempotencyKey');
      if (str(k.clientId) === '') throw new JsonInputError('$.idempotencyKey.clientId', 'missing');
      steps.push((b) => b.idempotencyKey(str(k.clientId), k.sequence));
    }
  }
  listAt(json, 'preconditions', transactionPreconditionsMax, 'preconditions')
    .forEach((p, i) => steps.push(preconditionStep(p, `$.preconditions[${i}]`)));
  listAt(json, 'configs', transactionConfigsMax, 'configs').forEach((c, i) => {
    const config = recordFromJson<fbs.TaskConfigT>('TaskConfig', c, `$.configs[${i}]`);
    steps.push((b) => b.addConfig(config));
  });
  if (!('ops' in json)) throw new JsonInputError('$.ops', 'missing (a transaction needs at least one operation)');
  const ops = listAt(json, 'ops', transactionOpsMax, 'operations');
  if (ops.length === 0) throw new JsonInputError('$.ops', 'empty (a transaction needs at least one operation)');
  ops.forEach((o, i) => {
    const { name, step } = opStep(o, `$.ops[${i}]`);
    opNames.push(name);
    steps.push(step);
  });
  return { steps, opNames };
}

/** The JSON text of FILE or of standard input ('-'), parsed; a syntax error names its line and column. */
export function readTransactionFile(file: string | undefined): unknown {
  if (file === undefined) throw new UsageError('txn needs a FILE (or - for standard input)');
  let text: string;
  try {
    if (file !== '-' && statSync(file).size > txnJsonBytesMax) {
      throw new UsageError(`${file}: more than ${txnJsonBytesMax} bytes`);
    }
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read ${file === '-' ? 'standard input' : file}: ${(error as Error).message}`);
  }
  if (text.length > txnJsonBytesMax) throw new UsageError(`${file}: more than ${txnJsonBytesMax} bytes`);
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const at = /position (\d+)/.exec(message);
    let where = '';
    if (at !== null) {
      const before = text.slice(0, Number(at[1]));
      const line = before.split('\n').length;
      where = ` (line ${line}, column ${Number(at[1]) - before.lastIndexOf('\n')})`;
    }
    throw new UsageError(`${file === '-' ? 'standard input' : file} is not JSON: ${message}${where}`);
  }
}

export async function commitTransaction(client: StrataClient, parsed: ParsedTransaction, values: Values,
  io: Io): Promise<number> {
  const builder = client.txn();
  for (const step of parsed.steps) step(builder);
  const result = await builder.commit();
  if (values['json'] === true) io.write(JSON.stringify(recordJson('TransactionResult', result)));
  if (result.error !== null && result.error.code !== 0) {
    const e = result.error;
    const detail = e.opIndex >= 0 ? ` (operation ${e.opIndex}, $.ops[${e.opIndex}] ${parsed.opNames[e.opIndex] ?? ''})`
      : e.preconditionIndex >= 0 ? ` (precondition ${e.preconditionIndex}, $.preconditions[${e.preconditionIndex}])` : '';
    return refused('transaction refused', e, io, detail);
  }
  if (values['json'] !== true) {
    const changed = result.ops.some((op) => !op.noop);
    io.write(result.duplicate ? `already committed (a repeat of this idempotency key): revision ${result.revision}`
      : changed ? `committed: revision ${result.revision}` : `no change (every operation was a no-op): revision ${result.revision}`);
    result.ops.forEach((op, i) => io.write(`  op ${i} ${parsed.opNames[i] ?? ''}: ${op.noop ? 'no-op' : `${op.count} record${op.count === 1 ? '' : 's'}`}` +
      `${op.changed.length > 0 ? `, hosts changed: ${op.changed.map((c) => (c ? 'yes' : 'no')).join(' ')}` : ''}`));
  }
  return exitOk;
}
