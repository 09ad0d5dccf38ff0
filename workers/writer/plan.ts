/**
 * Turns a Transaction's bytes into a validated plan, or a typed error. Owner: the writer thread.
 *
 * Invariants:
 * - Reads the stored state (the working roots) but never changes it. Every error a transaction can meet is found
 *   here, so apply.ts never fails half way: all or nothing without an undo log.
 * - Operations are checked in order against the stored state plus an overlay of what the earlier operations of
 *   the same transaction did (tasks, cron jobs and job updates created or removed, task statuses and event
 *   counts, job update event counts), so state limits hold across the operations of one transaction.
 * - Client bytes are never trusted: any exception while reading them is a malformed transaction
 *   (INVALID_ARGUMENT), never an assertion.
 * - Under a write scope (a list of roles), every record an op writes and every record a precondition reads is of
 *   a role in it, or the transaction is refused (PERMISSION_DENIED) before anything applies: a task's role is its
 *   config's job role, both the new one and the stored one it replaces; records without a role (host attributes,
 *   maintenance requests, the scheduler metadata) are refused to every scoped commit.
 */
import * as flatbuffers from 'flatbuffers';
import { canonicalConfig, emptyStringsToNull, hashHex, type CanonicalConfig } from '../../core/config.js';
import {
  ErrorCode, HostAttributesT, HostMaintenanceRequestT, JobConfigurationT, JobKeyT, JobUpdateT, Op, Operation,
  PreconditionKind, Precondition, RecordTable, ScheduledTask, SchedulerMetadataT, TaskConfigT, Transaction,
  TransitionTask, UpsertTasks, type JobUpdateKeyT, ResourceAggregateT, JobUpdateEventT, JobInstanceUpdateEventT,
  JobUpdateStatus, JobUpdateAction, MaintenanceMode, MesosContainerT, ResourceType, VolumeMode, DeleteTasks, type ResourceT,
} from '../../core/fbs/strata.js';
import * as limits from '../../core/limits.js';
import * as layout from '../../core/layout.js';
import { isLegalTransition, isStatus, statusValueMax } from '../../core/status.js';
import { isIdentifierString, isText, text, utf8 } from '../../core/text.js';
import { configHashBytes } from '../../core/config.js';
import type { ConfigFacts, EventPlan, PortPlan, Tables } from './tables.js';

/**
 * A client's mistake, thrown inside the planner and turned into a TransactionResult by the writer. Deliberately
 * not an Error: client mistakes are common and need no stack trace (capturing one costs more than the check).
 */
export class PlanError {
  readonly code: ErrorCode;
  readonly message: string;
  opIndex = -1;
  preconditionIndex = -1;
  constructor(code: ErrorCode, message: string) {
    this.code = code;
    this.message = message;
  }
}

function invalid(message: string): PlanError {
  return new PlanError(ErrorCode.INVALID_ARGUMENT, message);
}

export interface ConfigSource { hex: string; canonical: CanonicalConfig | null; facts: ConfigFacts | null }

export interface TaskPlan {
  id: Uint8Array;
  config: ConfigSource;
  instance: number;
  status: number;
  failureCount: number;
  timesPartitioned: number;
  slaveId: Uint8Array | null;
  slaveHost: string | null;
  ancestor: Uint8Array | null;
  ports: PortPlan[];
  events: EventPlan[];
}

export const opUpsertTasks = 1;
export const opTransition = 2;
export const opDeleteTasks = 3;
export const opSaveCron = 4;
export const opRemoveCron = 5;
export const opSaveUpdate = 6;
export const opUpdateEvent = 7;
export const opInstanceEvent = 8;
export const opRemoveUpdates = 9;
export const opSaveQuota = 10;
export const opRemoveQuota = 11;
export const opSaveHosts = 12;
export const opSaveMaintenance = 13;
export const opRemoveMaintenance = 14;
export const opSaveScheduler = 15;

export interface TransitionPlan {
  kind: typeof opTransition;
  id: Uint8Array;
  row: number;            // the row before the transaction, or -1 when an earlier op touched the task
  status: number;
  noop: boolean;
  timestamp: number;
  message: Uint8Array | null;
  scheduler: string | null;
  slaveId: Uint8Array | null;
  slaveHost: string | null;
  ports: PortPlan[] | null;
  failureCount: number;
  timesPartitioned: number;
}

export type OpPlan =
  | { kind: typeof opUpsertTasks; tasks: TaskPlan[] }
  | TransitionPlan
  | { kind: typeof opDeleteTasks; ids: Uint8Array[] }
  | { kind: typeof opSaveCron; job: JobConfigurationT; key: string[]; config: ConfigSource }
  | { kind: typeof opRemoveCron; key: string[] }
  | { kind: typeof opSaveUpdate; update: JobUpdateT; key: string[]; configs: ConfigSource[] }
  | { kind: typeof opUpdateEvent; key: string[]; event: JobUpdateEventT }
  | { kind: typeof opInstanceEvent; key: string[]; event: JobInstanceUpdateEventT }
  | { kind: typeof opRemoveUpdates; keys: string[][] }
  | { kind: typeof opSaveQuota; role: string; quota: ResourceAggregateT }
  | { kind: typeof opRemoveQuota; role: string }
  | { kind: typeof opSaveHosts; hosts: HostAttributesT[] }
  | { kind: typeof opSaveMaintenance; request: HostMaintenanceRequestT }
  | { kind: typeof opRemoveMaintenance; host: string }
  | { kind: typeof opSaveScheduler; metadata: SchedulerMetadataT };

export interface Plan {
  clientId: string | null;
  sequence: bigint;
  ops: OpPlan[];
  /** An upper bound of the arena bytes applying the plan can allocate (see Planner.bytesBound). */
  bytesBound: number;
  /** Configs given inline (occurrences): the log rewrites such a transaction to name configs by hash. */
  inlineConfigs: number;
}

/**
 * Bytes of copied tree nodes one touched record can cost at most: about 8 trees (rows, task id, job, status,
 * host, 3 aggregates) x 5 levels x 512-byte nodes, plus aggregate blocks and radix nodes.
 */
export const copyBytesPerTouchMax = 24 * 1024;

const taskScratch = new ScheduledTask();
const transitionScratch = new TransitionTask();
const upsertScratch = new UpsertTasks();
const operationScratch = new Operation();
const preconditionScratch = new Precondition();
const UTF8 = flatbuffers.Encoding.UTF8_BYTES;
/** The task overlay packs a status and an event count in one number (no object per task): events * this + status. */
const overlayStatuses = statusValueMax + 1;

function bytesOrNull(value: string | Uint8Array | null): Uint8Array | null {
  if (value === null || typeof value === 'string') return value === null || value === '' ? null : Buffer.from(value);
  return value.length === 0 ? null : value;
}

/** Reads and validates a transaction. Throws PlanError. */
export class Planner {
  private readonly tables: Tables;
  private configs = new Map<string, ConfigSource>();        // what a config_hash may name: Transaction.configs
  private inline = new Map<string, ConfigSource>();         // configs given inline (not nameable by hash)
  private tasks = new Map<string, number>();       // overlay: task id (latin1) -> packTask(status, events), or -1 when deleted
  private records = new Map<string, boolean>();    // overlay: "c:" cron / "u:" update keys -> present
  private updateEvents = new Map<string, number>(); // overlay: "u:<key>/e" or "/i" -> events of that kind
  private taskCount = 0;
  private touches = 0;      // records the plan changes: each may copy a path in every tree it is in
  private newBytes = 0;     // bytes of new blobs the plan writes, where they are not bounded by the message size
  private listsCharged = new Set<string>(); // updates whose event lists are already in newBytes
  private inlineConfigs = 0;
  private scope: readonly string[] | null = null;  // the roles this transaction may touch; null: every record

  constructor(tables: Tables) {
    this.tables = tables;
  }

  /** The idempotency key, read before anything else (a repeat needs nothing more). */
  static idempotency(transaction: Transaction): { clientId: string | null; sequence: bigint } {
    const key = transaction.idempotency();
    if (key === null) return { clientId: null, sequence: 0n };
    const client = bytesOrNull(key.clientId(UTF8));
    if (client === null) return { clientId: null, sequence: 0n };
    if (!isText(client)) throw invalid('idempotency client_id must be 1-256 bytes without control characters');
    return { clientId: utf8(client), sequence: key.sequence() };
  }

  plan(transaction: Transaction, clientId: string | null, sequence: bigint, scope: readonly string[] | null = null):
    Plan {
    this.scope = scope;
    this.configs = new Map();
    this.inline = new Map();
    this.tasks = new Map();
    this.records = new Map();
    this.updateEvents = new Map();
    this.taskCount = 0;
    this.touches = 0;
    this.newBytes = 0;
    this.listsCharged = new Set();
    this.inlineConfigs = 0;
    const opCount = transaction.opsLength();
    if (opCount > limits.transactionOpsMax) throw invalid(`more than ${limits.transactionOpsMax} operations`);
    const preconditionCount = transaction.preconditionsLength();
    if (preconditionCount > limits.transactionPreconditionsMax) {
      throw invalid(`more than ${limits.transactionPreconditionsMax} preconditions`);
    }
    this.readConfigs(transaction);
    for (let i = 0; i < preconditionCount; i++) {
      try {
        this.checkPrecondition(transaction.preconditions(i, preconditionScratch)!);
      } catch (error) {
        if (error instanceof PlanError) error.preconditionIndex = i;
        throw error;
      }
    }
    const ops: OpPlan[] = [];
    for (let i = 0; i < opCount; i++) {
      try {
        const operation = transaction.ops(i, operationScratch);
        if (operation === null) throw invalid('missing operation');
        ops.push(this.planOp(operation));
      } catch (error) {
        if (error instanceof PlanError) error.opIndex = i;
        throw error;
      }
    }
    return { clientId, sequence, ops, bytesBound: this.bytesBound(transaction.bb!.capacity()),
      inlineConfigs: this.inlineConfigs };
  }

  /**
   * What applying can allocate at most: new blobs (bounded by 4x the message, plus what the plan counted
   * exactly: configs, events), and copies of existing nodes, which a group makes at most once each (so never
   * more than the live bytes), and a touched record makes at most copyBytesPerTouchMax of.
   */
  private bytesBound(messageBytes: number): number {
    const copies = Math.min(this.touches * copyBytesPerTouchMax, this.tables.allocator.bytesAllocated);
    return 1024 * 1024 + 4 * messageBytes + this.newBytes + copies;
  }

  private readConfigs(transaction: Transaction): void {
    const count = transaction.configsLength();
    if (count > limits.transactionConfigsMax) throw invalid(`more than ${limits.transactionConfigsMax} configs`);
    for (let i = 0; i < count; i++) {
      const source = this.canonical(transaction.configs(i)!.unpack());
      this.configs.set(source.hex, source);
    }
  }

  /** Canonical bytes, hash and aggregate facts of a config given whole. */
  private canonical(config: TaskConfigT): ConfigSource {
    const job = config.job;
    if (job === null || !isIdentifierString(text(job.role)) || !isIdentifierString(text(job.environment)) ||
      !isIdentifierString(text(job.name))) {
      throw invalid('a task config needs a job key whose parts match ^[\\w\\-\\.]+$ (at most 128 bytes)');
    }
    const canonical = canonicalConfig(config);
    if (canonical.bytes.length > limits.configBytesMax) {
      throw invalid(`a task config is over ${limits.configBytesMax} bytes`);
    }
    for (const resource of config.resources) checkResource(resource);
    if (config.container instanceof MesosContainerT) {
      for (const volume of config.container.volumes) {
        if (volume.mode !== VolumeMode.RW && volume.mode !== VolumeMode.RO) throw invalid('a volume needs a valid mode');
      }
    }
    this.newBytes += canonical.bytes.length + 64;
    return { hex: canonical.hashHex, canonical, facts: configFacts(config) };
  }

  /** A config given inline or by hash (stored before the transaction, or in Transaction.configs). */
  private configSource(inline: TaskConfigT | null, hash: Uint8Array | null): ConfigSource {
    if (inline !== null && hash !== null) throw invalid('a config is given both inline and by hash');
    if (inline !== null) {
      this.inlineConfigs++;
      const source = this.canonical(inline);
      const known = this.configs.get(source.hex) ?? this.inline.get(source.hex);
      if (known !== undefined) return known;
      this.inline.set(source.hex, source);
      return source;
    }
    if (hash === null) throw invalid('a config is needed (inline or config_hash)');
    if (hash.length !== configHashBytes) throw invalid(`a config hash has ${configHashBytes} bytes`);
    const hex = hashHex(hash);
    const known = this.configs.get(hex);
    if (known !== undefined) return known;
    if (this.tables.findConfig(hex) === undefined) {
      throw new PlanError(ErrorCode.NOT_FOUND, `no config with hash ${hex}`);
    }
    return { hex, canonical: null, facts: null };
  }

  // ----------------------------------------------------------------------------------------------------------
  // Preconditions

  private checkPrecondition(precondition: Precondition): void {
    const kind = precondition.kind();
    const table = precondition.table();
    if (kind < PreconditionKind.ABSENT || kind > PreconditionKind.TASK_STATUS) throw invalid('unknown precondition kind');
    if (kind === PreconditionKind.TASK_STATUS && table !== RecordTable.TASK) {
      throw invalid('TASK_STATUS applies to the TASK table only');
    }
    let revision = -1; // -1: absent
    let status = -1;
    switch (table) {
      case RecordTable.TASK: {
        const id = bytesOrNull(precondition.taskId(UTF8));
        if (!isText(id)) throw invalid('a task precondition needs a valid task_id');
        const row = this.tables.taskRow(id!);
        this.checkTaskRole(row, id!);
        if (row >= 0) {
          const record = this.tables.taskRecord(row);
          revision = this.tables.taskModRevision(record);
          status = this.tables.taskWord(record, layout.taskStatusWord);
        }
        break;
      }
      case RecordTable.CRON_JOB: {
        const key = jobKeyStrings(precondition.job()?.unpack() ?? null);
        this.checkRole(key[0]!, `cron job ${key.join('/')}`);
        revision = this.blobRevision(this.cronBlob(key));
        break;
      }
      case RecordTable.JOB_UPDATE: {
        const key = updateKeyStrings(precondition.updateKey()?.unpack() ?? null);
        this.checkRole(key[0]!, `job update ${key.join('/')}`);
        const record = this.updateRecord(key);
        if (record !== 0) revision = this.tables.view.f64[(record >>> 3) + layout.updateModRevisionF64]!;
        break;
      }
      case RecordTable.QUOTA: {
        const role = text(precondition.role());
        if (!isIdentifierString(role)) throw invalid('a quota precondition needs a valid role');
        this.checkRole(role, 'the quota');
        revision = this.blobRevision(this.tables.find1(layout.rootQuotaWord, this.tables.stringId(role)));
        break;
      }
      case RecordTable.HOST_ATTRIBUTES:
      case RecordTable.MAINTENANCE_REQUEST: {
        const host = bytesOrNull(precondition.host(UTF8));
        if (!isText(host)) throw invalid('a host precondition needs a valid host');
        this.checkUnscoped(table === RecordTable.HOST_ATTRIBUTES ? 'host attributes' : 'maintenance requests');
        const word = table === RecordTable.HOST_ATTRIBUTES ? layout.rootHostAttributesWord : layout.rootMaintenanceWord;
        revision = this.blobRevision(this.tables.find1(word, this.tables.stringId(utf8(host!))));
        break;
      }
      case RecordTable.SCHEDULER:
        this.checkUnscoped('the scheduler metadata');
        revision = this.blobRevision(this.tables.roots[layout.rootSchedulerWord]!);
        break;
      default:
        throw invalid('unknown precondition table');
    }
    const present = revision >= 0;
    let holds: boolean;
    if (kind === PreconditionKind.ABSENT) holds = !present;
    else if (kind === PreconditionKind.PRESENT) holds = present;
    else if (kind === PreconditionKind.AT_REVISION) holds = present && revision === Number(precondition.revision());
    else {
      if (!isStatus(precondition.status())) throw invalid('unknown status in precondition');
      holds = present && status === precondition.status();
    }
    if (!holds) throw new PlanError(ErrorCode.PRECONDITION_FAILED, 'precondition failed');
  }

  // ----------------------------------------------------------------------------------------------------------
  // Write scope

  /** A record of `role` may be written (or read by a precondition) under the transaction's scope. */
  private checkRole(role: string, what: string): void {
    if (this.scope !== null && !this.scope.includes(role)) {
      throw new PlanError(ErrorCode.PERMISSION_DENIED, `${what} is of role ${role}, outside this commit's write scope`);
    }
  }

  /** The role of a stored task (row: its row before the transaction, -1: none or touched by an earlier op). */
  private checkTaskRole(row: number, id: Uint8Array): void {
    if (this.scope === null || row < 0) return;
    const record = this.tables.taskRecord(row);
    this.checkRole(this.tables.internedValue(this.tables.taskWord(record, layout.taskRoleWord)), `task ${utf8(id)}`);
  }

  /** Records without a role: no scoped transaction may touch them. */
  private checkUnscoped(what: string): void {
    if (this.scope !== null) {
      throw new PlanError(ErrorCode.PERMISSION_DENIED, `${what} belong to no role: a commit with a write scope ` +
        'cannot touch them');
    }
  }

  private blobRevision(blob: number): number {
    return blob === 0 ? -1 : this.tables.blobRevision(blob);
  }

  cronBlob(key: string[]): number {
    const t = this.tables;
    return t.find3(layout.rootCronWord, t.stringId(key[0]!), t.stringId(key[1]!), t.stringId(key[2]!));
  }

  updateRecord(key: string[]): number {
    const t = this.tables;
    return t.find4(layout.rootUpdateWord, t.stringId(key[0]!), t.stringId(key[1]!), t.stringId(key[2]!),
      t.stringId(key[3]!));
  }

  // ----------------------------------------------------------------------------------------------------------
  // Operations

  private planOp(operation: Operation): OpPlan {
    switch (operation.opType()) {
      case Op.UpsertTasks: return this.planUpsert(operation.op(upsertScratch) as UpsertTasks);
      case Op.TransitionTask: return this.planTransition(operation.op(transitionScratch) as TransitionTask);
      case Op.DeleteTasks: return this.planDelete(operation);
      default: return this.planRecordOp(operation);
    }
  }

  private countTasks(count: number): void {
    this.touches += count;
    this.taskCount += count;
    if (this.taskCount > limits.transactionTasksMax) throw invalid(`more than ${limits.transactionTasksMax} tasks`);
  }

  /** A task's status and event count as the operations so far left it: status -1 if absent. */
  private taskStatus(id: Uint8Array): { status: number; events: number; row: number } {
    const overlay = this.tasks.get(Buffer.from(id.buffer, id.byteOffset, id.length).toString('latin1'));
    if (overlay !== undefined) {
      return overlay < 0 ? { status: -1, events: 0, row: -1 } :
        { status: overlay % overlayStatuses, events: Math.floor(overlay / overlayStatuses), row: -1 };
    }
    const row = this.tables.taskRow(id);
    if (row < 0) return { status: -1, events: 0, row: -1 };
    const record = this.tables.taskRecord(row);
    return { status: this.tables.taskWord(record, layout.taskStatusWord),
      events: this.tables.taskWord(record, layout.taskEventCountWord), row };
  }

  /** Records what an operation left: a task's status and event count, or status -1 when deleted. */
  private setTaskStatus(id: Uint8Array, status: number, events: number): void {
    this.tasks.set(Buffer.from(id.buffer, id.byteOffset, id.length).toString('latin1'),
      status < 0 ? -1 : events * overlayStatuses + status);
  }

  private planUpsert(upsert: UpsertTasks): OpPlan {
    const count = upsert.tasksLength();
    this.countTasks(count);
    const tasks: TaskPlan[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      const task = this.planTask(upsert.tasks(i, taskScratch)!);
      const key = Buffer.from(task.id).toString('latin1');
      if (seen.has(key)) throw invalid(`task ${utf8(task.id)} is twice in one UpsertTasks`);
      seen.add(key);
      if (this.scope !== null) {
        // Both the role it gets and the role of the task it replaces (one an earlier op touched was checked then).
        this.checkRole(this.factsOf(task.config).role, `task ${utf8(task.id)}`);
        this.checkTaskRole(this.taskStatus(task.id).row, task.id);
      }
      tasks.push(task);
    }
    for (const task of tasks) this.setTaskStatus(task.id, task.status, task.events.length);
    return { kind: opUpsertTasks, tasks };
  }

  private planTask(task: ScheduledTask): TaskPlan {
    this.newBytes += 512; // record, id, strings and ports of one task
    const assigned = task.assignedTask();
    if (assigned === null) throw invalid('a task needs assigned_task');
    const id = bytesOrNull(assigned.taskId(UTF8));
    if (!isText(id)) throw invalid('a task id must be 1-256 bytes without control characters');
    const status = task.status();
    if (!isStatus(status)) throw invalid(`unknown status ${status}`);
    const instance = assigned.instanceId();
    if (instance < 0) throw invalid('instance_id must be >= 0');
    const inline = assigned.task();
    const config = this.configSource(inline === null ? null : inline.unpack(), assigned.configHashLength() > 0 ?
      assigned.configHashArray() : null);
    const eventCount = task.taskEventsLength();
    if (eventCount > limits.taskEventsMax) throw invalid(`a task has at most ${limits.taskEventsMax} events`);
    const events: EventPlan[] = [];
    for (let i = 0; i < eventCount; i++) {
      const event = task.taskEvents(i)!;
      if (!isStatus(event.status())) throw invalid(`unknown status ${event.status()} in an event`);
      events.push(this.event(Number(event.timestamp()), event.status(), bytesOrNull(event.message(UTF8)),
        bytesOrNull(event.scheduler(UTF8))));
    }
    const slaveHost = bytesOrNull(assigned.slaveHost(UTF8));
    return {
      id: id!, config, instance, status,
      failureCount: task.failureCount(), timesPartitioned: task.timesPartitioned(),
      slaveId: this.optionalText(assigned.slaveId(UTF8), 'slave_id'),
      slaveHost: slaveHost === null ? null : utf8(this.checkedText(slaveHost, 'slave_host')),
      ancestor: this.optionalText(task.ancestorId(UTF8), 'ancestor_id'),
      ports: this.ports(assigned.assignedPortsLength(), (i) => assigned.assignedPorts(i)!),
      events,
    };
  }

  private event(timestamp: number, status: number, message: Uint8Array | null, scheduler: Uint8Array | null):
    EventPlan {
    if (message !== null && message.length > limits.messageBytesMax) {
      throw invalid(`an event message is at most ${limits.messageBytesMax} bytes`);
    }
    this.newBytes += 48 + (message === null ? 0 : message.length);
    return { timestamp, status, message, scheduler: scheduler === null ? null : utf8(this.checkedText(scheduler, 'scheduler')) };
  }

  private checkedText(bytes: Uint8Array, field: string): Uint8Array {
    if (!isText(bytes)) throw invalid(`${field} must be at most 256 bytes without control characters`);
    return bytes;
  }

  private optionalText(value: string | Uint8Array | null, field: string): Uint8Array | null {
    const bytes = bytesOrNull(value);
    return bytes === null ? null : this.checkedText(bytes, field);
  }

  private ports(count: number, at: (i: number) => { name(e: flatbuffers.Encoding): string | Uint8Array | null; port(): number }):
    PortPlan[] {
    if (count > 1024) throw invalid('at most 1024 assigned ports');
    const ports: PortPlan[] = [];
    for (let i = 0; i < count; i++) {
      const port = at(i);
      const name = bytesOrNull(port.name(UTF8));
      if (!isText(name)) throw invalid('a port needs a name');
      ports.push({ name: name!, port: port.port() });
    }
    return ports;
  }

  /** Every input first (INVALID_ARGUMENT before any lookup), then the task, CAS, no-op, enforce, event limit. */
  private planTransition(transition: TransitionTask): TransitionPlan {
    this.countTasks(1);
    const id = bytesOrNull(transition.taskId(UTF8));
    if (!isText(id)) throw invalid('a task id must be 1-256 bytes without control characters');
    const status = transition.status();
    if (!isStatus(status)) throw invalid(`unknown status ${status}`);
    const hasExpect = transition.hasExpectStatus();
    if (hasExpect && !isStatus(transition.expectStatus())) throw invalid(`unknown status ${transition.expectStatus()}`);
    const slaveHost = bytesOrNull(transition.slaveHost(UTF8));
    const scheduler = bytesOrNull(transition.scheduler(UTF8));
    const event = this.event(Number(transition.timestamp()), status, bytesOrNull(transition.message(UTF8)), scheduler);
    const slaveId = this.optionalText(transition.slaveId(UTF8), 'slave_id');
    const host = slaveHost === null ? null : utf8(this.checkedText(slaveHost, 'slave_host'));
    const ports = transition.assignedPortsLength() > 0 ?
      this.ports(transition.assignedPortsLength(), (i) => transition.assignedPorts(i)!) : null;
    const current = this.taskStatus(id!);
    if (current.status < 0) throw new PlanError(ErrorCode.NOT_FOUND, `no task ${utf8(id!)}`);
    this.checkTaskRole(current.row, id!);
    if (hasExpect && current.status !== transition.expectStatus()) {
      throw new PlanError(ErrorCode.PRECONDITION_FAILED, `task ${utf8(id!)} is not in the expected status`);
    }
    const noop = status === current.status;
    if (!noop && transition.enforce() && !isLegalTransition(current.status, status)) {
      throw new PlanError(ErrorCode.ILLEGAL_TRANSITION, `illegal transition of ${utf8(id!)}`);
    }
    if (!noop) {
      if (current.events >= limits.taskEventsMax) {
        throw new PlanError(ErrorCode.RESOURCE_EXHAUSTED, `task ${utf8(id!)} has ${limits.taskEventsMax} events`);
      }
      this.setTaskStatus(id!, status, current.events + 1);
    }
    return {
      kind: opTransition, id: id!, row: current.row, status, noop,
      timestamp: event.timestamp, message: event.message, scheduler: event.scheduler,
      slaveId, slaveHost: host, ports,
      failureCount: transition.failureCount(), timesPartitioned: transition.timesPartitioned(),
    };
  }

  private planRecordOp(operation: Operation): OpPlan {
    this.touches++;
    const type = operation.opType();
    const unpacked = emptyStringsToNull(operation.unpack().op);
    if (unpacked === null) throw invalid(`unknown operation type ${type}`);
    switch (type) {
      case Op.SaveCronJob: return this.planSaveCron((unpacked as { job: JobConfigurationT | null }).job);
      case Op.RemoveCronJob: {
        const key = jobKeyStrings((unpacked as { key: JobKeyT | null }).key);
        this.checkRole(key[0]!, `cron job ${key.join('/')}`);
        this.records.set(`c:${key.join('/')}`, false);
        return { kind: opRemoveCron, key };
      }
      case Op.SaveJobUpdate: return this.planSaveUpdate((unpacked as { update: JobUpdateT | null }).update);
      case Op.SaveJobUpdateEvent:
      case Op.SaveJobInstanceUpdateEvent: return this.planUpdateEvent(type, unpacked as
        { key: JobUpdateKeyT | null; event: JobUpdateEventT | JobInstanceUpdateEventT | null });
      case Op.RemoveJobUpdates: {
        const keys = (unpacked as { keys: JobUpdateKeyT[] }).keys.map((k) => updateKeyStrings(k));
        if (keys.length > limits.queryKeysMax) throw invalid('too many keys');
        for (const key of keys) {
          this.checkRole(key[0]!, `job update ${key.join('/')}`);
          const name = `u:${key.join('/')}`;
          this.records.set(name, false);
          this.updateEvents.set(`${name}/e`, 0);
          this.updateEvents.set(`${name}/i`, 0);
        }
        return { kind: opRemoveUpdates, keys };
      }
      case Op.SaveQuota: {
        const { role, quota } = unpacked as { role: string | null; quota: ResourceAggregateT | null };
        if (!isIdentifierString(text(role))) throw invalid('a quota needs a valid role');
        const aggregate = quota ?? new ResourceAggregateT();
        for (const r of aggregate.resources) checkResource(r);
        this.checkRole(text(role), 'the quota');
        return { kind: opSaveQuota, role: text(role), quota: aggregate };
      }
      case Op.RemoveQuota: {
        const role = text((unpacked as { role: string | null }).role);
        if (!isIdentifierString(role)) throw invalid('RemoveQuota needs a valid role');
        this.checkRole(role, 'the quota');
        return { kind: opRemoveQuota, role };
      }
      case Op.SaveHostAttributes: return this.planHosts((unpacked as { attributes: HostAttributesT[] }).attributes);
      case Op.SaveMaintenanceRequest: {
        const request = (unpacked as { request: HostMaintenanceRequestT | null }).request;
        if (request === null || !isText(bytesOrNull(request.host))) throw invalid('a maintenance request needs a host');
        this.checkUnscoped('maintenance requests');
        return { kind: opSaveMaintenance, request };
      }
      case Op.RemoveMaintenanceRequest: {
        const host = text((unpacked as { host: string | null }).host);
        if (!isText(bytesOrNull(host))) throw invalid('RemoveMaintenanceRequest needs a host');
        this.checkUnscoped('maintenance requests');
        return { kind: opRemoveMaintenance, host };
      }
      case Op.SaveSchedulerMetadata: {
        const metadata = (unpacked as { metadata: SchedulerMetadataT | null }).metadata;
        if (metadata === null || !isText(bytesOrNull(metadata.frameworkId))) {
          throw invalid('scheduler metadata needs a framework_id');
        }
        this.checkUnscoped('the scheduler metadata');
        return { kind: opSaveScheduler, metadata };
      }
      default:
        throw invalid(`unknown operation type ${type}`);
    }
  }

  private planDelete(operation: Operation): OpPlan {
    // The ids are read as bytes, as every other operation reads them: decoding and re-encoding would turn an
    // invalid sequence into U+FFFD and name another task.
    const op = operation.op(new DeleteTasks()) as DeleteTasks;
    const count = op.taskIdsLength();
    this.countTasks(count);
    const ids: Uint8Array[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      const id = bytesOrNull(op.taskIds(i, UTF8));
      if (!isText(id)) throw invalid('a task id must be 1-256 bytes without control characters');
      const key = Buffer.from(id!).toString('latin1');
      if (seen.has(key)) throw invalid(`task ${utf8(id!)} is twice in one DeleteTasks`);
      seen.add(key);
      const current = this.taskStatus(id!);
      if (current.status < 0) {
        if (!op.ignoreMissing()) throw new PlanError(ErrorCode.NOT_FOUND, `no task ${utf8(id!)}`);
        continue;
      }
      this.checkTaskRole(current.row, id!);
      ids.push(id!);
    }
    for (const id of ids) this.setTaskStatus(id, -1, 0);
    return { kind: opDeleteTasks, ids };
  }

  private planSaveCron(job: JobConfigurationT | null): OpPlan {
    if (job === null) throw invalid('SaveCronJob needs a job');
    const key = jobKeyStrings(job.key);
    this.checkRole(key[0]!, `cron job ${key.join('/')}`);
    if (text(job.cronSchedule) === '') throw invalid('a cron job needs a cron_schedule');
    if (job.instanceCount < 1) throw invalid('a cron job needs instance_count >= 1');
    if (job.cronCollisionPolicy < 0 || job.cronCollisionPolicy > 2) throw invalid('unknown cron collision policy');
    const config = this.configSource(job.taskConfig, job.configHash.length > 0 ? Uint8Array.from(job.configHash) : null);
    const facts = this.factsOf(config);
    if (facts.role !== key[0] || facts.environment !== key[1] || facts.name !== key[2]) {
      throw invalid('a cron job\'s config must have the cron job\'s key');
    }
    this.records.set(`c:${key.join('/')}`, true);
    return { kind: opSaveCron, job, key, config };
  }

  private factsOf(config: ConfigSource): ConfigFacts {
    if (config.facts !== null) return config.facts;
    return this.tables.configFactsOf(config.hex);
  }

  private planSaveUpdate(update: JobUpdateT | null): OpPlan {
    const summary = update?.summary ?? null;
    if (update === null || summary === null) throw invalid('SaveJobUpdate needs an update with a summary');
    const key = updateKeyStrings(summary.key);
    this.checkRole(key[0]!, `job update ${key.join('/')}`);
    const instructions = update.instructions;
    if (instructions === null || (instructions.desiredState === null && instructions.initialState.length === 0)) {
      throw invalid('a job update needs a desired_state or an initial_state');
    }
    const configs: ConfigSource[] = [];
    const entries = instructions.desiredState === null ? instructions.initialState :
      [...instructions.initialState, instructions.desiredState];
    if (entries.length > limits.transactionConfigsMax) throw invalid('too many instance configs');
    for (const entry of entries) {
      configs.push(this.configSource(entry.task, entry.configHash.length > 0 ? Uint8Array.from(entry.configHash) : null));
      for (const range of entry.instances) {
        if (range.first < 0 || range.first > range.last) throw invalid('an instance range needs 0 <= first <= last');
      }
    }
    const settings = instructions.settings;
    if (settings !== null) {
      for (const range of settings.updateOnlyTheseInstances) {
        if (range.first < 0 || range.first > range.last) throw invalid('an instance range needs 0 <= first <= last');
      }
    }
    for (const m of summary.metadata) if (text(m.key) === '') throw invalid('update metadata needs a key');
    this.records.set(`u:${key.join('/')}`, true);
    return { kind: opSaveUpdate, update, key, configs };
  }

  private planUpdateEvent(type: Op, op: { key: JobUpdateKeyT | null; event: JobUpdateEventT | JobInstanceUpdateEventT | null }):
    OpPlan {
    const key = updateKeyStrings(op.key);
    this.checkRole(key[0]!, `job update ${key.join('/')}`);
    if (op.event === null) throw invalid('an update event is needed');
    const name = `u:${key.join('/')}`;
    const overlay = this.records.get(name);
    const record = this.updateRecord(key);
    const present = overlay ?? record !== 0;
    // An event older than others copies the newer list nodes, once per group (later ones change in place).
    if (record !== 0 && !this.listsCharged.has(name)) {
      this.listsCharged.add(name);
      const u32 = this.tables.view.u32;
      this.newBytes += layout.listNodeBytes * (u32[(record >>> 2) + layout.updateEventCountWord]! +
        u32[(record >>> 2) + layout.updateInstanceEventCountWord]!);
    }
    if (!present) throw new PlanError(ErrorCode.NOT_FOUND, `no job update ${key.join('/')}`);
    if (type === Op.SaveJobUpdateEvent) {
      const event = op.event as JobUpdateEventT;
      if (event.status < JobUpdateStatus.ROLLING_FORWARD || event.status > JobUpdateStatus.ROLL_BACK_AWAITING_PULSE) {
        throw invalid('unknown job update status');
      }
      this.countUpdateEvent(`${name}/e`, record, layout.updateEventCountWord);
      return { kind: opUpdateEvent, key, event };
    }
    const event = op.event as JobInstanceUpdateEventT;
    if (event.action < JobUpdateAction.INSTANCE_UPDATED || event.action > JobUpdateAction.INSTANCE_ROLLBACK_FAILED) {
      throw invalid('unknown job update action');
    }
    this.countUpdateEvent(`${name}/i`, record, layout.updateInstanceEventCountWord);
    return { kind: opInstanceEvent, key, event };
  }

  /** One more event of a kind: the count the earlier operations left (else the stored one) stays in bounds. */
  private countUpdateEvent(name: string, record: number, word: number): void {
    const count = this.updateEvents.get(name) ?? (record === 0 ? 0 : this.tables.view.u32[(record >>> 2) + word]!);
    if (count >= limits.updateEventsMax) {
      throw new PlanError(ErrorCode.RESOURCE_EXHAUSTED, `a job update has at most ${limits.updateEventsMax} events of a kind`);
    }
    this.updateEvents.set(name, count + 1);
  }

  private planHosts(hosts: HostAttributesT[]): OpPlan {
    if (hosts.length > limits.queryKeysMax) throw invalid('too many hosts');
    this.checkUnscoped('host attributes');
    const seen = new Set<string>();
    for (const host of hosts) {
      const name = text(host.host);
      if (!isText(bytesOrNull(name))) throw invalid('host attributes need a host');
      if (seen.has(name)) throw invalid(`host ${name} is twice in one SaveHostAttributes`);
      seen.add(name);
      if (host.mode < MaintenanceMode.NONE || host.mode > MaintenanceMode.DRAINED) throw invalid('unknown maintenance mode');
      for (const attribute of host.attributes) {
        if (text(attribute.name) === '' || attribute.values.length === 0) {
          throw invalid('an attribute needs a name and at least one value');
        }
      }
    }
    return { kind: opSaveHosts, hosts };
  }
}

// --------------------------------------------------------------------------------------------------------------

export function jobKeyStrings(key: JobKeyT | null): string[] {
  if (key === null) throw invalid('a job key is needed');
  const parts = [text(key.role), text(key.environment), text(key.name)];
  for (const part of parts) {
    if (!isIdentifierString(part)) throw invalid('job key parts must match ^[\\w\\-\\.]+$ (at most 128 bytes)');
  }
  return parts;
}

export function updateKeyStrings(key: JobUpdateKeyT | null): string[] {
  if (key === null) throw invalid('a job update key is needed');
  const id = text(key.id);
  if (!isIdentifierString(id)) throw invalid('a job update id must match ^[\\w\\-\\.]+$ (at most 128 bytes)');
  return [...jobKeyStrings(key.job), id];
}

/** Aggregates count cpus in millionths (docs/semantics.md, QuotaQuery). */
export const cpuUnitsPerCpu = 1_000_000;

/** A resource needs a known type and a finite, non-negative amount that is exact as a double (at most 2^53). */
function checkResource(resource: ResourceT): void {
  if (resource.type < ResourceType.NUM_CPUS || resource.type > ResourceType.NUM_GPUS) {
    throw invalid('a resource needs a valid type');
  }
  const amounts = [resource.numCpus, Number(resource.ramMb), Number(resource.diskMb), Number(resource.numGpus)];
  for (const amount of amounts) {
    if (!Number.isFinite(amount) || amount < 0 || amount > Number.MAX_SAFE_INTEGER) {
      throw invalid('a resource amount must be finite, >= 0 and at most 2^53');
    }
  }
}

/** Production x dedicated bucket and resource totals of a config. */
export function configFacts(config: TaskConfigT): ConfigFacts {
  const totals = new Float64Array(4);
  for (const resource of config.resources) {
    // Cpus are summed in millionths: integer sums stay exact through any number of adds and removes.
    if (resource.type === ResourceType.NUM_CPUS) totals[0]! += Math.round(resource.numCpus * cpuUnitsPerCpu);
    else if (resource.type === ResourceType.RAM_MB) totals[1]! += Number(resource.ramMb);
    else if (resource.type === ResourceType.DISK_MB) totals[2]! += Number(resource.diskMb);
    else if (resource.type === ResourceType.NUM_GPUS) totals[3]! += Number(resource.numGpus);
  }
  const dedicated = config.constraints.some((c) => text(c.name) === 'dedicated');
  const bucket = config.production ? (dedicated ? layout.bucketProdDedicated : layout.bucketProdShared) :
    (dedicated ? layout.bucketNonProdDedicated : layout.bucketNonProdShared);
  const job = config.job!;
  return { role: text(job.role), environment: text(job.environment), name: text(job.name), bucket, totals };
}

