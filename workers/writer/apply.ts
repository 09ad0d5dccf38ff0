/**
 * Applies a validated plan to the tables. Owner: the writer thread only.
 * Invariants: never fails for a plan that plan.ts accepted (a failure here is a bug, and fatal); every record it
 * writes carries tables.revisionBuilding (a task stored as new also carries it as create_revision); it reports per
 * operation whether anything changed.
 */
import * as flatbuffers from 'flatbuffers';
import { assert } from '../../core/assert.js';
import {
  AttributeT, HostAttributesT, InstanceTaskConfigT, JobConfiguration, JobConfigurationT,
  JobInstanceUpdateEventT, JobUpdate, JobUpdateEventT, JobUpdateInstructionsT, JobUpdateT, QuotaT, SchedulerMetadataT,
  HostMaintenanceRequestT,
} from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import { fourKeyShape, oneKeyShape, threeKeyShape } from '../../core/store.js';
import {
  opDeleteTasks, opInstanceEvent, opRemoveCron, opRemoveMaintenance, opRemoveQuota, opRemoveUpdates, opSaveCron,
  opSaveHosts, opSaveMaintenance, opSaveQuota, opSaveScheduler, opSaveUpdate, opTransition, opUpdateEvent,
  opUpsertTasks, type ConfigSource, type OpPlan, type TaskPlan, type TransitionPlan,
} from './plan.js';
import type { ConfigInfo, EventPlan, PortPlan, Tables } from './tables.js';
import { compareUtf8, text } from '../../core/text.js';

export interface OpOutcome { noop: boolean; count: number; changed: boolean[] | null }

const builder = new flatbuffers.Builder(4096);

function packBytes(message: { pack(b: flatbuffers.Builder): flatbuffers.Offset }): Uint8Array {
  builder.clear();
  builder.finish(message.pack(builder));
  return builder.asUint8Array();
}

export class Applier {
  private readonly t: Tables;
  private readonly fresh = new Set<number>();  // list nodes written in the epoch being built (freshEpoch)
  private freshEpoch = -1;

  constructor(tables: Tables) {
    this.t = tables;
  }

  apply(op: OpPlan): OpOutcome {
    switch (op.kind) {
      case opUpsertTasks: return this.upsertTasks(op.tasks);
      case opTransition: return this.transition(op);
      case opDeleteTasks: return this.deleteTasks(op.ids);
      case opSaveCron: return this.saveCron(op.key, op.job, op.config);
      case opRemoveCron: return this.removeCron(op.key);
      case opSaveUpdate: return this.saveUpdate(op.key, op.update, op.configs);
      case opUpdateEvent: return this.updateEvent(op.key, op.event, null);
      case opInstanceEvent: return this.updateEvent(op.key, null, op.event);
      case opRemoveUpdates: return this.removeUpdates(op.keys);
      case opSaveQuota: return this.saveQuota(op.role, packBytes(new QuotaT(op.role, op.quota)));
      case opRemoveQuota: return this.removeQuota(op.role);
      case opSaveHosts: return this.saveHosts(op.hosts);
      case opSaveMaintenance: return this.saveMaintenance(op.request);
      case opRemoveMaintenance: return this.removeMaintenance(op.host);
      case opSaveScheduler: return this.saveScheduler(op.metadata);
    }
  }

  // ----------------------------------------------------------------------------------------------------------
  // Tasks

  private config(source: ConfigSource): ConfigInfo {
    return this.t.configRef(source.hex, source.canonical, source.facts);
  }

  private upsertTasks(tasks: TaskPlan[]): OpOutcome {
    for (const task of tasks) this.upsertTask(task);
    return { noop: tasks.length === 0, count: tasks.length, changed: null };
  }

  private upsertTask(task: TaskPlan): void {
    const t = this.t;
    const config = this.config(task.config);
    let row = t.taskRow(task.id);
    let idBlob: number;
    let createRevision = t.revisionBuilding;
    if (row >= 0) {
      const old = t.taskRecord(row);
      idBlob = t.taskWord(old, layout.taskIdWord);
      createRevision = t.view.f64[(old >>> 3) + layout.taskCreateRevisionF64]!;
      this.indexTask(old, row, false);
      this.releaseTaskParts(old);
      t.retire(old, layout.taskRecordBytes);
    } else {
      row = t.allocRow();
      idBlob = t.writeStringBlob(task.id);
      t.taskIdIndex(task.id, idBlob, row, true);
      t.taskCount++;
    }
    const record = t.allocator.alloc(layout.taskRecordBytes);
    const hostId = task.slaveHost === null ? 0 : t.intern(task.slaveHost);
    const slaveId = t.writeOptionalString(task.slaveId);
    const ancestor = t.writeOptionalString(task.ancestor);
    const ports = this.writePorts(task.ports);
    let head = 0;
    for (const event of task.events) head = this.writeEvent(head, event);
    const u32 = t.view.u32;
    const i32 = t.view.i32;
    const w = record >>> 2;
    u32[w + layout.taskIdWord] = idBlob;
    u32[w + layout.taskConfigRowWord] = config.row;
    i32[w + layout.taskInstanceWord] = task.instance;
    u32[w + layout.taskStatusWord] = task.status;
    i32[w + layout.taskFailureCountWord] = task.failureCount;
    i32[w + layout.taskTimesPartitionedWord] = task.timesPartitioned;
    u32[w + layout.taskHostWord] = hostId;
    u32[w + layout.taskSlaveIdWord] = slaveId;
    u32[w + layout.taskAncestorWord] = ancestor;
    u32[w + layout.taskPortsWord] = ports;
    u32[w + layout.taskEventsWord] = head;
    u32[w + layout.taskEventCountWord] = task.events.length;
    u32[w + layout.taskRoleWord] = config.roleId;
    u32[w + layout.taskEnvWord] = config.envId;
    u32[w + layout.taskNameWord] = config.nameId;
    u32[w + 15] = 0;
    t.view.f64[(record >>> 3) + layout.taskModRevisionF64] = t.revisionBuilding;
    t.view.f64[(record >>> 3) + layout.taskCreateRevisionF64] = createRevision;
    t.setTaskRecord(row, record);
    this.indexTask(record, row, true);
  }

  /** Adds (insert) or removes a task record's index entries and its aggregate contribution. */
  private indexTask(record: number, row: number, insert: boolean): void {
    const t = this.t;
    const role = t.taskWord(record, layout.taskRoleWord);
    const env = t.taskWord(record, layout.taskEnvWord);
    const name = t.taskWord(record, layout.taskNameWord);
    const status = t.taskWord(record, layout.taskStatusWord);
    const host = t.taskWord(record, layout.taskHostWord);
    t.jobIndex(role, env, name, row, insert);
    t.pairIndex(layout.rootStatusIndexWord, status, row, insert);
    if (host !== 0) t.pairIndex(layout.rootHostIndexWord, host, row, insert);
    t.aggTask(role, env, name, status, t.configOfRow(t.taskWord(record, layout.taskConfigRowWord)), insert ? 1 : -1);
  }

  /** Releases what only this task holds: strings, ports, events, its host, its config reference. */
  private releaseTaskParts(record: number): void {
    const t = this.t;
    t.release(t.taskWord(record, layout.taskHostWord));
    t.retireStringBlob(t.taskWord(record, layout.taskSlaveIdWord));
    t.retireStringBlob(t.taskWord(record, layout.taskAncestorWord));
    this.retirePorts(t.taskWord(record, layout.taskPortsWord));
    let node = t.taskWord(record, layout.taskEventsWord);
    for (let count = t.taskWord(record, layout.taskEventCountWord); count > 0; count--) {
      assert(node !== 0, 'event list shorter than its count');
      const u32 = t.view.u32;
      const prev = u32[(node >>> 2) + layout.eventPrevWord]!;
      t.retireStringBlob(u32[(node >>> 2) + layout.eventMessageWord]!);
      t.release(u32[(node >>> 2) + layout.eventSchedulerWord]!);
      t.retire(node, layout.eventNodeBytes);
      node = prev;
    }
    t.configUnref(t.configOfRow(t.taskWord(record, layout.taskConfigRowWord)));
  }

  private writeEvent(prev: number, event: EventPlan): number {
    const t = this.t;
    const message = t.writeOptionalString(event.message);
    const scheduler = event.scheduler === null ? 0 : t.intern(event.scheduler);
    const node = t.allocator.alloc(layout.eventNodeBytes);
    const u32 = t.view.u32;
    u32[(node >>> 2) + layout.eventPrevWord] = prev;
    u32[(node >>> 2) + layout.eventMessageWord] = message;
    u32[(node >>> 2) + layout.eventSchedulerWord] = scheduler;
    u32[(node >>> 2) + layout.eventStatusWord] = event.status;
    t.view.f64[(node >>> 3) + layout.eventTimestampF64] = event.timestamp;
    return node;
  }

  /** Ports blob: [u32 bytes][u32 count] then per port [i32 port][u32 name bytes][name, padded to 4]. */
  private writePorts(ports: PortPlan[]): number {
    if (ports.length === 0) return 0;
    let bytes = 8;
    for (const port of ports) bytes += 8 + ((port.name.length + 3) & ~3);
    const t = this.t;
    const blob = t.allocator.alloc(bytes);
    const u32 = t.view.u32;
    u32[blob >>> 2] = bytes;
    u32[(blob >>> 2) + 1] = ports.length;
    let at = blob + 8;
    for (const port of ports) {
      t.view.i32[at >>> 2] = port.port;
      u32[(at >>> 2) + 1] = port.name.length;
      t.view.u8.set(port.name, at + 8);
      at += 8 + ((port.name.length + 3) & ~3);
    }
    return blob;
  }

  private retirePorts(blob: number): void {
    if (blob !== 0) this.t.retire(blob, this.t.view.u32[blob >>> 2]!);
  }

  private transition(op: TransitionPlan): OpOutcome {
    if (op.noop) return { noop: true, count: 0, changed: null };
    const t = this.t;
    const row = op.row >= 0 ? op.row : t.taskRow(op.id);
    assert(row >= 0, 'transition of a missing task');
    const old = t.taskRecord(row);
    const oldStatus = t.taskWord(old, layout.taskStatusWord);
    const oldHost = t.taskWord(old, layout.taskHostWord);
    const role = t.taskWord(old, layout.taskRoleWord);
    const env = t.taskWord(old, layout.taskEnvWord);
    const name = t.taskWord(old, layout.taskNameWord);
    const config = t.configOfRow(t.taskWord(old, layout.taskConfigRowWord));
    const head = this.writeEvent(t.taskWord(old, layout.taskEventsWord),
      { timestamp: op.timestamp, status: op.status, message: op.message, scheduler: op.scheduler });
    const host = op.slaveHost === null ? oldHost : t.intern(op.slaveHost);
    const slaveId = op.slaveId === null ? -1 : t.writeStringBlob(op.slaveId);
    const ports = op.ports === null ? -1 : this.writePorts(op.ports);
    const record = t.allocator.alloc(layout.taskRecordBytes);
    const u32 = t.view.u32;
    u32.copyWithin(record >>> 2, old >>> 2, (old + layout.taskRecordBytes) >>> 2);
    const w = record >>> 2;
    u32[w + layout.taskStatusWord] = op.status;
    u32[w + layout.taskEventsWord] = head;
    u32[w + layout.taskEventCountWord]! += 1;
    u32[w + layout.taskHostWord] = host;
    if (slaveId >= 0) {
      t.retireStringBlob(u32[w + layout.taskSlaveIdWord]!);
      u32[w + layout.taskSlaveIdWord] = slaveId;
    }
    if (ports >= 0) {
      this.retirePorts(u32[w + layout.taskPortsWord]!);
      u32[w + layout.taskPortsWord] = ports;
    }
    if (op.failureCount >= 0) t.view.i32[w + layout.taskFailureCountWord] = op.failureCount;
    if (op.timesPartitioned >= 0) t.view.i32[w + layout.taskTimesPartitionedWord] = op.timesPartitioned;
    t.view.f64[(record >>> 3) + layout.taskModRevisionF64] = t.revisionBuilding;
    t.setTaskRecord(row, record);
    t.retire(old, layout.taskRecordBytes);
    t.pairIndex(layout.rootStatusIndexWord, oldStatus, row, false);
    t.pairIndex(layout.rootStatusIndexWord, op.status, row, true);
    if (host !== oldHost) {
      if (oldHost !== 0) t.pairIndex(layout.rootHostIndexWord, oldHost, row, false);
      t.pairIndex(layout.rootHostIndexWord, host, row, true);
      t.release(oldHost);
    } else if (op.slaveHost !== null) {
      t.release(host); // the same host again: intern counted it a second time, the task holds it once
    }
    t.aggMove(role, env, name, oldStatus, op.status, config);
    return { noop: false, count: 1, changed: null };
  }

  private deleteTasks(ids: Uint8Array[]): OpOutcome {
    const t = this.t;
    for (const id of ids) {
      const row = t.taskRow(id);
      assert(row >= 0, 'delete of a missing task');
      const record = t.taskRecord(row);
      this.indexTask(record, row, false);
      const idBlob = t.taskWord(record, layout.taskIdWord);
      t.taskIdIndex(id, idBlob, row, false);
      this.releaseTaskParts(record);
      t.retireStringBlob(idBlob);
      t.retire(record, layout.taskRecordBytes);
      t.setTaskRecord(row, 0);
      t.freeRow(row);
      t.taskCount--;
    }
    return { noop: ids.length === 0, count: ids.length, changed: null };
  }

  // ----------------------------------------------------------------------------------------------------------
  // Cron jobs

  private keyIds(key: string[]): number[] {
    return key.map((part) => this.t.stringId(part));
  }

  private saveCron(key: string[], job: JobConfigurationT, source: ConfigSource): OpOutcome {
    const t = this.t;
    const config = this.config(source);
    const stored = new JobConfigurationT(job.key, job.owner, job.cronSchedule, job.cronCollisionPolicy, null,
      job.instanceCount, Array.from(t.configHash(config.blob)), 0n);
    const blob = t.writeRecordBlob(packBytes(stored));
    const ids = this.keyIds(key);
    const old = ids.includes(0) ? 0 : t.find3(layout.rootCronWord, ids[0]!, ids[1]!, ids[2]!);
    if (old !== 0) {
      this.unrefBlobConfig(old, 'cron');
      t.retireRecordBlob(old);
    } else {
      for (let i = 0; i < 3; i++) ids[i] = t.intern(key[i]!);
      t.aggCron(ids[0]!, ids[1]!, ids[2]!, 1);
    }
    t.setBlob(layout.rootCronWord, threeKeyShape, ids, blob);
    return { noop: false, count: 1, changed: null };
  }

  private unrefBlobConfig(blob: number, kind: 'cron'): void {
    const t = this.t;
    assert(kind === 'cron');
    const job = JobConfiguration.getRootAsJobConfiguration(new flatbuffers.ByteBuffer(t.blobBytes(blob)));
    const info = t.findConfig(Buffer.from(job.configHashArray()!).toString('hex'));
    assert(info !== undefined, 'cron job refers to a missing config');
    t.configUnref(info);
  }

  private removeCron(key: string[]): OpOutcome {
    const t = this.t;
    const ids = this.keyIds(key);
    const old = ids.includes(0) ? 0 : t.find3(layout.rootCronWord, ids[0]!, ids[1]!, ids[2]!);
    if (old === 0) return { noop: true, count: 0, changed: null };
    this.unrefBlobConfig(old, 'cron');
    t.retireRecordBlob(old);
    t.setBlob(layout.rootCronWord, threeKeyShape, ids, 0);
    t.aggCron(ids[0]!, ids[1]!, ids[2]!, -1);
    for (const id of ids) t.release(id);
    return { noop: false, count: 1, changed: null };
  }

  // ----------------------------------------------------------------------------------------------------------
  // Job updates

  private updateRecordOf(ids: number[]): number {
    return ids.includes(0) ? 0 : this.t.find4(layout.rootUpdateWord, ids[0]!, ids[1]!, ids[2]!, ids[3]!);
  }

  /** The configs an update blob refers to (desired and initial states). */
  private updateConfigs(blob: number): ConfigInfo[] {
    const t = this.t;
    const update = JobUpdate.getRootAsJobUpdate(new flatbuffers.ByteBuffer(t.blobBytes(blob))).unpack();
    const instructions = update.instructions!;
    const entries = instructions.desiredState === null ? instructions.initialState :
      [...instructions.initialState, instructions.desiredState];
    return entries.map((entry) => {
      const info = t.findConfig(Buffer.from(entry.configHash).toString('hex'));
      assert(info !== undefined, 'update refers to a missing config');
      return info;
    });
  }

  private saveUpdate(key: string[], update: JobUpdateT, sources: ConfigSource[]): OpOutcome {
    const t = this.t;
    const configs = sources.map((source) => this.config(source));
    const instructions = update.instructions!;
    let index = 0;
    const byHash = (entry: InstanceTaskConfigT): InstanceTaskConfigT =>
      new InstanceTaskConfigT(null, entry.instances, Array.from(t.configHash(configs[index++]!.blob)));
    const initial = instructions.initialState.map(byHash);
    const desired = instructions.desiredState === null ? null : byHash(instructions.desiredState);
    const summary = update.summary!;
    summary.state = null;
    const stored = new JobUpdateT(summary, new JobUpdateInstructionsT(initial, desired, instructions.settings));
    const blob = t.writeRecordBlob(packBytes(stored));
    const ids = this.keyIds(key);
    const old = this.updateRecordOf(ids);
    const record = t.allocator.alloc(layout.updateRecordBytes);
    const u32 = t.view.u32;
    if (old !== 0) {
      u32.copyWithin(record >>> 2, old >>> 2, (old + layout.updateRecordBytes) >>> 2);
      const oldBlob = u32[(old >>> 2) + layout.updateBlobWord]!;
      for (const info of this.updateConfigs(oldBlob)) t.configUnref(info);
      t.retireRecordBlob(oldBlob);
      t.retire(old, layout.updateRecordBytes);
    } else {
      for (let i = 0; i < 4; i++) ids[i] = t.intern(key[i]!);
      u32.fill(0, record >>> 2, (record + layout.updateRecordBytes) >>> 2);
      u32[(record >>> 2) + layout.updateIdStringWord] = ids[3]!;
    }
    t.view.u32[(record >>> 2) + layout.updateBlobWord] = blob;
    t.view.f64[(record >>> 3) + layout.updateModRevisionF64] = t.revisionBuilding;
    t.setBlob(layout.rootUpdateWord, fourKeyShape, ids, record);
    return { noop: false, count: 1, changed: null };
  }

  private updateEvent(key: string[], event: JobUpdateEventT | null, instanceEvent: JobInstanceUpdateEventT | null):
    OpOutcome {
    const t = this.t;
    const ids = this.keyIds(key);
    const old = this.updateRecordOf(ids);
    assert(old !== 0, 'event for a missing update');
    const headWord = event !== null ? layout.updateEventsWord : layout.updateInstanceEventsWord;
    const countWord = event !== null ? layout.updateEventCountWord : layout.updateInstanceEventCountWord;
    const bytes = event !== null ? packBytes(event) : packBytes(instanceEvent!);
    const timestamp = Number(event !== null ? event.timestampMs : instanceEvent!.timestampMs);
    const blob = t.writeRecordBlob(bytes);
    const record = t.allocator.alloc(layout.updateRecordBytes);
    const u32 = t.view.u32;
    u32.copyWithin(record >>> 2, old >>> 2, (old + layout.updateRecordBytes) >>> 2);
    u32[(record >>> 2) + headWord] = this.insertSorted(u32[(old >>> 2) + headWord]!, blob, timestamp);
    t.view.u32[(record >>> 2) + countWord]! += 1;
    t.view.f64[(record >>> 3) + layout.updateModRevisionF64] = t.revisionBuilding;
    t.retire(old, layout.updateRecordBytes);
    t.setBlob(layout.rootUpdateWord, fourKeyShape, ids, record);
    return { noop: false, count: 1, changed: null };
  }

  /**
   * Inserts into a newest-first list ordered by timestamp (equal timestamps: the later insert first). Nodes newer
   * than the new one are copied (the list is persistent: older revisions keep theirs).
   */
  private insertSorted(head: number, blob: number, timestamp: number): number {
    const t = this.t;
    if (this.freshEpoch !== t.epoch) {
      this.fresh.clear();
      this.freshEpoch = t.epoch;
    }
    const newer: number[] = [];
    let node = head;
    while (node !== 0 && t.view.f64[(node >>> 3) + layout.listTimestampF64]! > timestamp) {
      newer.push(node);
      node = t.view.u32[(node >>> 2) + layout.listPrevWord]!;
    }
    let prev = this.listNode(node, blob, timestamp);
    for (let i = newer.length - 1; i >= 0; i--) {
      const old = newer[i]!;
      if (this.fresh.has(old)) {
        // Written in this epoch: no reader can reach it yet, so it changes in place and the newer nodes above it
        // keep pointing at it. A group of old-timestamp events copies each list node at most once.
        t.view.u32[(old >>> 2) + layout.listPrevWord] = prev;
        return head;
      }
      prev = this.listNode(prev, t.view.u32[(old >>> 2) + layout.listBlobWord]!,
        t.view.f64[(old >>> 3) + layout.listTimestampF64]!);
      t.retire(old, layout.listNodeBytes);
    }
    return prev;
  }

  private listNode(prev: number, blob: number, timestamp: number): number {
    const t = this.t;
    const node = t.allocator.alloc(layout.listNodeBytes);
    t.view.u32[(node >>> 2) + layout.listPrevWord] = prev;
    t.view.u32[(node >>> 2) + layout.listBlobWord] = blob;
    t.view.f64[(node >>> 3) + layout.listTimestampF64] = timestamp;
    this.fresh.add(node);
    return node;
  }

  private retireList(head: number, count: number): void {
    const t = this.t;
    let node = head;
    for (; count > 0; count--) {
      assert(node !== 0, 'list shorter than its count');
      const prev = t.view.u32[(node >>> 2) + layout.listPrevWord]!;
      t.retireRecordBlob(t.view.u32[(node >>> 2) + layout.listBlobWord]!);
      t.retire(node, layout.listNodeBytes);
      node = prev;
    }
  }

  private removeUpdates(keys: string[][]): OpOutcome {
    const t = this.t;
    let count = 0;
    for (const key of keys) {
      const ids = this.keyIds(key);
      const old = this.updateRecordOf(ids);
      if (old === 0) continue;
      const u32 = t.view.u32;
      const w = old >>> 2;
      for (const info of this.updateConfigs(u32[w + layout.updateBlobWord]!)) t.configUnref(info);
      t.retireRecordBlob(u32[w + layout.updateBlobWord]!);
      this.retireList(u32[w + layout.updateEventsWord]!, u32[w + layout.updateEventCountWord]!);
      this.retireList(t.view.u32[w + layout.updateInstanceEventsWord]!, t.view.u32[w + layout.updateInstanceEventCountWord]!);
      t.retire(old, layout.updateRecordBytes);
      t.setBlob(layout.rootUpdateWord, fourKeyShape, ids, 0);
      for (const id of ids) t.release(id);
      count++;
    }
    return { noop: count === 0, count, changed: null };
  }

  // ----------------------------------------------------------------------------------------------------------
  // Quotas, hosts, maintenance, scheduler

  /** Replaces (or creates) a blob keyed by one interned string; bytes equal to the stored ones are a no-op. */
  private saveKeyed(rootWord: number, name: string, bytes: Uint8Array, skipIdentical: boolean): boolean {
    const t = this.t;
    let id = t.stringId(name);
    const old = id === 0 ? 0 : t.find1(rootWord, id);
    if (old !== 0 && skipIdentical && Buffer.compare(t.blobBytes(old), bytes) === 0) return false;
    const blob = t.writeRecordBlob(bytes);
    if (old !== 0) t.retireRecordBlob(old);
    else id = t.intern(name);
    t.setBlob(rootWord, oneKeyShape, [id], blob);
    return true;
  }

  private removeKeyed(rootWord: number, name: string): OpOutcome {
    const t = this.t;
    const id = t.stringId(name);
    const old = id === 0 ? 0 : t.find1(rootWord, id);
    if (old === 0) return { noop: true, count: 0, changed: null };
    t.retireRecordBlob(old);
    t.setBlob(rootWord, oneKeyShape, [id], 0);
    t.release(id);
    return { noop: false, count: 1, changed: null };
  }

  private saveQuota(role: string, bytes: Uint8Array): OpOutcome {
    this.saveKeyed(layout.rootQuotaWord, role, bytes, false);
    return { noop: false, count: 1, changed: null };
  }

  private removeQuota(role: string): OpOutcome {
    return this.removeKeyed(layout.rootQuotaWord, role);
  }

  private saveHosts(hosts: HostAttributesT[]): OpOutcome {
    const changed: boolean[] = [];
    let count = 0;
    for (const host of hosts) {
      const canonical = canonicalHost(host);
      const did = this.saveKeyed(layout.rootHostAttributesWord, text(host.host), packBytes(canonical), true);
      changed.push(did);
      if (did) count++;
    }
    return { noop: count === 0, count, changed };
  }

  private saveMaintenance(request: HostMaintenanceRequestT): OpOutcome {
    request.modRevision = 0n;
    this.saveKeyed(layout.rootMaintenanceWord, text(request.host), packBytes(request), false);
    return { noop: false, count: 1, changed: null };
  }

  private removeMaintenance(host: string): OpOutcome {
    return this.removeKeyed(layout.rootMaintenanceWord, host);
  }

  private saveScheduler(metadata: SchedulerMetadataT): OpOutcome {
    const t = this.t;
    metadata.modRevision = 0n;
    const bytes = packBytes(metadata);
    const old = t.roots[layout.rootSchedulerWord]!;
    if (old !== 0 && Buffer.compare(t.blobBytes(old), bytes) === 0) return { noop: true, count: 0, changed: null };
    const blob = t.writeRecordBlob(bytes);
    t.retireRecordBlob(old);
    t.roots[layout.rootSchedulerWord] = blob;
    return { noop: false, count: 1, changed: null };
  }
}

/** Host attributes with attributes sorted by name and values sorted and de-duplicated; no revision. */
export function canonicalHost(host: HostAttributesT): HostAttributesT {
  const byName = new Map<string, Set<string>>();
  for (const attribute of host.attributes) {
    const name = text(attribute.name);
    const values = byName.get(name) ?? new Set<string>();
    for (const value of attribute.values) values.add(text(value));
    byName.set(name, values);
  }
  const names = [...byName.keys()].sort(compareUtf8);
  const attributes = names.map((name) => new AttributeT(name, [...byName.get(name)!].sort(compareUtf8)));
  const slaveId = text(host.slaveId);
  return new HostAttributesT(text(host.host), attributes, host.mode, slaveId === '' ? null : slaveId, 0n);
}


