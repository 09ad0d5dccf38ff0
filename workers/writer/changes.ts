/**
 * Change records for watch streams: per committed revision, a RevisionChanges FlatBuffer (schema.fbs) holding the
 * whole records the revision created or changed, as they are after it, the keys it deleted and the configs it
 * stored first; beside the bytes, plain filter keys the main thread matches subscriptions against without decoding.
 * Owner: the writer thread. WriterCore.commit() drives a ChangeRecorder per transaction; main.ts ships a group's
 * ChangeBatch to the main thread after the group's fdatasync and publish, before its results.
 *
 * Invariants:
 * - A revision is encoded right after its transaction applied, from the writer's working roots (Tables), before
 *   the next transaction of the group changes anything: each revision carries its own state of a record.
 * - A record appears once per revision (first touch order), in `tasks` when it exists after the revision, in
 *   `tasks_deleted` (with the job it had) when it does not; the same for every keyed table. A noop op adds nothing.
 * - The bytes depend only on the store and the ops, never on the builder's history (it is cleared per revision):
 *   a replay of the log gives the very same bytes, except timestamp_ms, the wall-clock time of the encoding. That
 *   field is always written (even 0), so the layout never depends on it.
 * - Revisions enter a batch in increasing order; a batch's bytes travel in one ArrayBuffer (transferred), every
 *   revision's bytes 8-aligned in it, as a FlatBuffer needs.
 */
import * as flatbuffers from 'flatbuffers';
import { assert } from '../../core/assert.js';
import {
  JobKey, JobUpdateKey, RecordTable, RevisionChanges, TaskRef,
} from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import { addFieldInt64Number, offsetVector, RecordEncoder } from '../../core/record-encoder.js';
import { text, utf8 } from '../../core/text.js';
import type { OpOutcome } from './apply.js';
import {
  opDeleteTasks, opInstanceEvent, opRemoveCron, opRemoveMaintenance, opRemoveQuota, opRemoveUpdates, opSaveCron,
  opSaveHosts, opSaveMaintenance, opSaveQuota, opSaveScheduler, opSaveUpdate, opTransition, opUpdateEvent,
  opUpsertTasks, type OpPlan,
} from './plan.js';
import type { Tables } from './tables.js';

/**
 * What a subscription filter needs of one record of a revision. table: a RecordTable value. Strings that do not
 * apply are empty: a quota has its role only; host attributes, maintenance requests and the scheduler have none.
 * Configs have no key: they travel with the revision that names them.
 */
export interface ChangeKey { table: number; role: string; environment: string; jobName: string; taskId: string }

/** One revision's changes: its RevisionChanges bytes and the keys of its records. reset: a restored backup. */
export interface ChangeRevision { revision: number; bytes: Uint8Array; keys: ChangeKey[]; reset: boolean }

/** Writer -> main thread, before the 'results' (or 'ready', 'done') it precedes: revisions in increasing order. */
export interface ChangesMessage { kind: 'changes'; revisions: ChangeRevision[] }

const noBytes = new Uint8Array(0);
const batchBytesInitial = 64 * 1024;      // a group of a few hundred single-task revisions
const batchBytesKept = 4 * 1024 * 1024;   // a larger buffer (a burst of big revisions) is let go after its group

/** The changes of one group (or one stretch of a replay), packed in one growing buffer. */
export class ChangeBatch {
  private buffer = new Uint8Array(batchBytesInitial);
  private starts: number[] = [];
  private lengths: number[] = [];
  private revisions: ChangeRevision[] = [];
  /** Bytes held so far (main.ts ends a group past changesGroupBytesMax). */
  bytes = 0;

  add(revision: number, bytes: Uint8Array, keys: ChangeKey[], reset: boolean): void {
    const last = this.revisions.at(-1);
    assert(last === undefined || revision > last.revision, 'revisions enter a batch in increasing order');
    const start = (this.bytes + 7) & ~7;
    if (start + bytes.length > this.buffer.length) {
      const grown = new Uint8Array(Math.max(this.buffer.length * 2, start + bytes.length + batchBytesInitial));
      grown.set(this.buffer.subarray(0, this.bytes));
      this.buffer = grown;
    }
    this.buffer.set(bytes, start);
    this.bytes = start + bytes.length;
    this.starts.push(start);
    this.lengths.push(bytes.length);
    this.revisions.push({ revision, bytes: noBytes, keys, reset });
  }

  /** The batch as a message over one new ArrayBuffer (to transfer), or null when empty; the batch is then empty. */
  take(): { message: ChangesMessage; buffer: ArrayBuffer } | null {
    const revisions = this.revisions;
    if (revisions.length === 0) return null;
    const buffer = new ArrayBuffer(this.bytes);
    const all = new Uint8Array(buffer);
    all.set(this.buffer.subarray(0, this.bytes));
    for (let i = 0; i < revisions.length; i++) {
      const start = this.starts[i]!;
      revisions[i]!.bytes = all.subarray(start, start + this.lengths[i]!);
    }
    this.revisions = [];
    this.starts = [];
    this.lengths = [];
    this.bytes = 0;
    if (this.buffer.length > batchBytesKept) this.buffer = new Uint8Array(batchBytesInitial); // after a burst
    return { message: { kind: 'changes', revisions }, buffer };
  }
}

/**
 * Collects what one transaction's ops touched while the writer applies them (beforeOp / afterOp), then encodes
 * the revision (commit) or forgets it (discard: nothing changed). One per WriterCore, over its Tables.
 * Hot path (a lone transition per revision): no Map, Set, tuple or string beyond the task's id and its key.
 */
export class ChangeRecorder {
  private readonly tables: Tables;
  private readonly batch: ChangeBatch;
  private readonly clockMs: () => number;
  private readonly builder = new flatbuffers.Builder(64 * 1024);
  private readonly records: RecordEncoder;
  // Tasks the transaction touched, in op order: the id, its row when the plan knew it (else -1), and for a delete
  // the index of its job (else -1). Written by index up to taskCount: setting an array's length to 0 frees its
  // backing store, once per revision.
  private readonly taskIds: Uint8Array[] = [];
  private readonly taskRows: number[] = [];
  private readonly taskDeletes: number[] = [];
  private taskCount = 0;
  // A deleted task's job as it was before the delete: role, environment and name (3 entries per delete), as
  // strings (for its key) and as string blobs (for the bytes). The blobs stay readable until the revision is
  // encoded even when the delete released them: memory retired in the building epoch is reused only after a
  // later publish (core/arena.ts).
  private readonly deletedJobs: string[] = [];
  private readonly deletedBlobs: number[] = [];
  private readonly cronKeys: string[][] = [];
  private readonly updateKeys: string[][] = [];
  private readonly quotaRoles: string[] = [];
  private readonly hosts: string[] = [];
  private readonly maintenanceHosts: string[] = [];
  private scheduler = false;
  // What each encode* below made: the vector of present records and the vector of deleted keys (0: none).
  private presentVector = 0;
  private deletedVector = 0;
  // encodeTasks' records and TaskRefs, by index up to their counts.
  private readonly present: number[] = [];
  private readonly deleted: number[] = [];
  private presentCount = 0;
  private deletedCount = 0;

  /** clockMs: the wall clock for timestamp_ms (Date.now in the daemon). */
  constructor(tables: Tables, batch: ChangeBatch, clockMs: () => number) {
    this.tables = tables;
    this.batch = batch;
    this.clockMs = clockMs;
    this.records = new RecordEncoder(tables, this.builder);
  }

  /** Before an op applies: what a delete needs to know of the records it removes. */
  beforeOp(op: OpPlan): void {
    if (op.kind === opDeleteTasks) {
      for (const id of op.ids) this.taskDeleted(id);
    } else if (op.kind === opRemoveUpdates) {
      for (const key of op.keys) if (this.updateRecord(key) !== 0) this.updateKeys.push(key);
    }
  }

  private taskDeleted(id: Uint8Array): void {
    const t = this.tables;
    const row = t.taskRow(id);
    assert(row >= 0, 'a planned delete of a stored task');
    const record = t.taskRecord(row);
    this.touchTask(id, -1, this.deletedJobs.length);
    for (const word of jobWords) {
      const stringId = t.taskWord(record, word);
      this.deletedJobs.push(t.internedValue(stringId));
      this.deletedBlobs.push(t.stringBlob(stringId));
    }
  }

  /** After an op applied and changed something (the writer skips noop outcomes). */
  afterOp(op: OpPlan, outcome: OpOutcome): void {
    switch (op.kind) {
      case opTransition: this.touchTask(op.id, op.row, -1); break;
      case opUpsertTasks: for (const task of op.tasks) this.touchTask(task.id, -1, -1); break;
      case opSaveCron: case opRemoveCron: this.cronKeys.push(op.key); break;
      case opSaveUpdate: case opUpdateEvent: case opInstanceEvent: this.updateKeys.push(op.key); break;
      case opSaveQuota: case opRemoveQuota: this.quotaRoles.push(op.role); break;
      case opSaveHosts:
        for (let i = 0; i < op.hosts.length; i++) if (outcome.changed![i]) this.hosts.push(text(op.hosts[i]!.host));
        break;
      case opSaveMaintenance: this.maintenanceHosts.push(text(op.request.host)); break;
      case opRemoveMaintenance: this.maintenanceHosts.push(op.host); break;
      case opSaveScheduler: this.scheduler = true; break;
      case opDeleteTasks: case opRemoveUpdates: break; // beforeOp took them
    }
  }

  private touchTask(id: Uint8Array, row: number, job: number): void {
    this.taskIds[this.taskCount] = id;
    this.taskRows[this.taskCount] = row;
    this.taskDeletes[this.taskCount] = job;
    this.taskCount++;
  }

  /** The transaction changed nothing (no revision), or its revision is encoded: forget what it touched. */
  discard(): void {
    if (this.taskCount > touchesKept) {
      // Ids are views into their transaction's bytes: many kept would keep a large transaction alive.
      this.taskIds.length = 0;
      this.taskRows.length = 0;
      this.taskDeletes.length = 0;
    }
    this.taskCount = 0;
    if (this.deletedJobs.length > 0) {
      this.deletedJobs.length = 0;
      this.deletedBlobs.length = 0;
    }
    if (this.cronKeys.length > 0) this.cronKeys.length = 0;
    if (this.updateKeys.length > 0) this.updateKeys.length = 0;
    if (this.quotaRoles.length > 0) this.quotaRoles.length = 0;
    if (this.hosts.length > 0) this.hosts.length = 0;
    if (this.maintenanceHosts.length > 0) this.maintenanceHosts.length = 0;
    this.scheduler = false;
  }

  /**
   * Encodes the revision the transaction just took, from the tables as it left them (after flushConfigs).
   * timestamp_ms is the time of this call: live, the commit's time (its fdatasync follows within the group); in a
   * replay, the replay's time, since the log does not record when a group was committed.
   */
  commit(revision: number): void {
    assert(revision === this.tables.revisionBuilding, 'a revision is encoded right after its transaction');
    const b = this.builder;
    b.clear();
    this.records.reset();
    const keys: ChangeKey[] = [];
    this.encodeTasks(keys);
    const tasks = this.presentVector;
    const tasksDeleted = this.deletedVector;
    const configs = this.encodeConfigs();
    this.encodeCronJobs(keys);
    const cronJobs = this.presentVector;
    const cronDeleted = this.deletedVector;
    this.encodeUpdates(keys);
    const updates = this.presentVector;
    const updatesDeleted = this.deletedVector;
    this.encodeKeyed(keys, RecordTable.QUOTA, layout.rootQuotaWord, this.quotaRoles);
    const quotas = this.presentVector;
    const quotasDeleted = this.deletedVector;
    this.encodeKeyed(keys, RecordTable.HOST_ATTRIBUTES, layout.rootHostAttributesWord, this.hosts);
    const hosts = this.presentVector;
    this.encodeKeyed(keys, RecordTable.MAINTENANCE_REQUEST, layout.rootMaintenanceWord, this.maintenanceHosts);
    const maintenance = this.presentVector;
    const maintenanceDeleted = this.deletedVector;
    let scheduler = 0;
    if (this.scheduler) {
      const blob = this.tables.roots[layout.rootSchedulerWord]!;
      assert(blob !== 0, 'saved scheduler metadata is stored');
      scheduler = this.records.schedulerMetadata(blob);
      keys.push({ table: RecordTable.SCHEDULER, role: '', environment: '', jobName: '', taskId: '' });
    }
    this.start(revision);
    if (tasks !== 0) RevisionChanges.addTasks(b, tasks);
    if (tasksDeleted !== 0) RevisionChanges.addTasksDeleted(b, tasksDeleted);
    if (configs !== 0) RevisionChanges.addConfigs(b, configs);
    if (cronJobs !== 0) RevisionChanges.addCronJobs(b, cronJobs);
    if (cronDeleted !== 0) RevisionChanges.addCronJobsDeleted(b, cronDeleted);
    if (updates !== 0) RevisionChanges.addJobUpdates(b, updates);
    if (updatesDeleted !== 0) RevisionChanges.addJobUpdatesDeleted(b, updatesDeleted);
    if (quotas !== 0) RevisionChanges.addQuotas(b, quotas);
    if (quotasDeleted !== 0) RevisionChanges.addQuotasDeleted(b, quotasDeleted);
    if (hosts !== 0) RevisionChanges.addHosts(b, hosts);
    if (maintenance !== 0) RevisionChanges.addMaintenance(b, maintenance);
    if (maintenanceDeleted !== 0) RevisionChanges.addMaintenanceDeleted(b, maintenanceDeleted);
    if (scheduler !== 0) RevisionChanges.addScheduler(b, scheduler);
    b.finish(RevisionChanges.endRevisionChanges(b));
    this.batch.add(revision, b.asUint8Array(), keys, false);
    this.discard();
  }

  /** A committed staged backup replaced the whole state at `revision`: only the revision and reset. */
  reset(revision: number): void {
    const b = this.builder;
    b.clear();
    this.records.reset();
    this.start(revision);
    RevisionChanges.addReset(b, true);
    b.finish(RevisionChanges.endRevisionChanges(b));
    this.batch.add(revision, b.asUint8Array(), [], true);
  }

  private start(revision: number): void {
    const b = this.builder;
    RevisionChanges.startRevisionChanges(b);
    addFieldInt64Number(b, revisionChangesRevisionField, revision);
    // Written even when 0: the bytes' layout never depends on the clock.
    addFieldInt64Number(b, revisionChangesTimestampField, this.clockMs(), true);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Each encode* sets presentVector and deletedVector and adds one key per record.

  private vectors(present: number, deleted: number): void {
    this.presentVector = present;
    this.deletedVector = deleted;
  }

  /** Tasks once each (first touch order); one that is gone after the revision as a TaskRef with its last job. */
  private encodeTasks(keys: ChangeKey[]): void {
    const count = this.taskCount;
    if (count === 0) return this.vectors(0, 0);
    this.presentCount = 0;
    this.deletedCount = 0;
    if (this.deletedJobs.length === 0) this.encodeTouchedRows(keys, count);
    else this.encodeTouchedIds(keys, count);
    // RevisionChanges.createTasksVector and createTasksDeletedVector, over the scratch arrays' first entries.
    const b = this.builder;
    this.vectors(this.presentCount === 0 ? 0 : offsetVector(b, this.present, this.presentCount),
      this.deletedCount === 0 ? 0 : offsetVector(b, this.deleted, this.deletedCount));
    if (count > touchesKept) {
      this.present.length = 0;
      this.deleted.length = 0;
    }
  }

  /**
   * No task was deleted: every touched task is stored, and its row names it (a row is reused only after a delete),
   * so rows known from the plan save the id lookups, and duplicates are found by row.
   */
  private encodeTouchedRows(keys: ChangeKey[], count: number): void {
    const t = this.tables;
    const ids = this.taskIds;
    const rows = this.taskRows;
    for (let i = 0; i < count; i++) if (rows[i]! < 0) rows[i] = t.taskRow(ids[i]!);
    const seen = count > 1 ? new Set<number>() : null;
    for (let i = 0; i < count; i++) {
      const row = rows[i]!;
      assert(row >= 0, 'a touched task that no op deleted is stored');
      if (seen !== null) {
        if (seen.has(row)) continue;
        seen.add(row);
      }
      this.presentTask(keys, row, ids[i]!);
    }
  }

  /** Some task was deleted: the final state of each id decides (stored: the record; gone: a TaskRef). */
  private encodeTouchedIds(keys: ChangeKey[], count: number): void {
    const t = this.tables;
    const [ids, deletes] = uniqueTasks(this.taskIds, this.taskDeletes, count);
    for (let i = 0; i < ids.length; i++) {
      const row = t.taskRow(ids[i]!);
      if (row >= 0) this.presentTask(keys, row, ids[i]!);
      else this.deletedTask(keys, ids[i]!, deletes[i]!);
    }
  }

  private presentTask(keys: ChangeKey[], row: number, id: Uint8Array): void {
    const t = this.tables;
    const record = t.taskRecord(row);
    this.present[this.presentCount++] = this.records.task(record);
    keys.push({ table: RecordTable.TASK, role: t.internedValue(t.taskWord(record, layout.taskRoleWord)),
      environment: t.internedValue(t.taskWord(record, layout.taskEnvWord)),
      jobName: t.internedValue(t.taskWord(record, layout.taskNameWord)), taskId: utf8(id) });
  }

  private deletedTask(keys: ChangeKey[], id: Uint8Array, job: number): void {
    assert(job >= 0, 'a touched task that is gone was deleted');
    const b = this.builder;
    const blobs = this.deletedBlobs;
    const idOffset = b.createString(id);
    const jobOffset = JobKey.createJobKey(b, this.records.blobString(blobs[job]!),
      this.records.blobString(blobs[job + 1]!), this.records.blobString(blobs[job + 2]!));
    TaskRef.startTaskRef(b);
    TaskRef.addTaskId(b, idOffset);
    TaskRef.addJob(b, jobOffset);
    this.deleted[this.deletedCount++] = TaskRef.endTaskRef(b);
    const names = this.deletedJobs;
    keys.push({ table: RecordTable.TASK, role: names[job]!, environment: names[job + 1]!, jobName: names[job + 2]!,
      taskId: utf8(id) });
  }

  /** The configs this transaction stored first and still holds (one stored and dropped in it is left out). */
  private encodeConfigs(): number {
    const t = this.tables;
    if (t.configsNew.length === 0) return 0;
    const offsets: number[] = [];
    for (const hex of t.configsNew) {
      const info = t.findConfig(hex);
      if (info !== undefined) offsets.push(this.records.storedConfig(info.blob));
    }
    return offsets.length === 0 ? 0 : RevisionChanges.createConfigsVector(this.builder, offsets);
  }

  private encodeCronJobs(keys: ChangeKey[]): void {
    if (this.cronKeys.length === 0) return this.vectors(0, 0);
    const t = this.tables;
    const b = this.builder;
    const present: number[] = [];
    const deleted: number[] = [];
    for (const key of unique(this.cronKeys)) {
      const ids = [t.stringId(key[0]!), t.stringId(key[1]!), t.stringId(key[2]!)];
      const blob = ids.includes(0) ? 0 : t.find3(layout.rootCronWord, ids[0]!, ids[1]!, ids[2]!);
      if (blob !== 0) present.push(this.records.keyedRecord(RecordTable.CRON_JOB, blob));
      else deleted.push(jobKey(b, key));
      keys.push({ table: RecordTable.CRON_JOB, role: key[0]!, environment: key[1]!, jobName: key[2]!, taskId: '' });
    }
    this.vectors(present.length === 0 ? 0 : RevisionChanges.createCronJobsVector(b, present),
      deleted.length === 0 ? 0 : RevisionChanges.createCronJobsDeletedVector(b, deleted));
  }

  private updateRecord(key: string[]): number {
    const t = this.tables;
    const ids = [t.stringId(key[0]!), t.stringId(key[1]!), t.stringId(key[2]!), t.stringId(key[3]!)];
    return ids.includes(0) ? 0 : t.find4(layout.rootUpdateWord, ids[0]!, ids[1]!, ids[2]!, ids[3]!);
  }

  private encodeUpdates(keys: ChangeKey[]): void {
    if (this.updateKeys.length === 0) return this.vectors(0, 0);
    const b = this.builder;
    const present: number[] = [];
    const deleted: number[] = [];
    for (const key of unique(this.updateKeys)) {
      const record = this.updateRecord(key);
      if (record !== 0) present.push(this.records.jobUpdate(record));
      else deleted.push(JobUpdateKey.createJobUpdateKey(b, jobKey(b, key), b.createString(key[3]!)));
      keys.push({ table: RecordTable.JOB_UPDATE, role: key[0]!, environment: key[1]!, jobName: key[2]!, taskId: '' });
    }
    this.vectors(present.length === 0 ? 0 : RevisionChanges.createJobUpdatesVector(b, present),
      deleted.length === 0 ? 0 : RevisionChanges.createJobUpdatesDeletedVector(b, deleted));
  }

  /** Quotas (by role), host attributes and maintenance requests (by host): present records, then deleted names. */
  private encodeKeyed(keys: ChangeKey[], table: RecordTable.QUOTA | RecordTable.HOST_ATTRIBUTES |
    RecordTable.MAINTENANCE_REQUEST, rootWord: number, names: string[]): void {
    if (names.length === 0) return this.vectors(0, 0);
    const t = this.tables;
    const b = this.builder;
    const present: number[] = [];
    const deleted: number[] = [];
    for (const name of unique(names)) {
      const id = t.stringId(name);
      const blob = id === 0 ? 0 : t.find1(rootWord, id);
      if (blob !== 0) present.push(this.records.keyedRecord(table, blob));
      else deleted.push(b.createString(name));
      assert(blob !== 0 || table !== RecordTable.HOST_ATTRIBUTES, 'host attributes are never deleted');
      keys.push({ table, role: table === RecordTable.QUOTA ? name : '', environment: '', jobName: '', taskId: '' });
    }
    this.vectors(present.length === 0 ? 0 : table === RecordTable.QUOTA ?
      RevisionChanges.createQuotasVector(b, present) : table === RecordTable.HOST_ATTRIBUTES ?
        RevisionChanges.createHostsVector(b, present) : RevisionChanges.createMaintenanceVector(b, present),
    deleted.length === 0 ? 0 : table === RecordTable.QUOTA ?
      RevisionChanges.createQuotasDeletedVector(b, deleted) : RevisionChanges.createMaintenanceDeletedVector(b, deleted));
  }
}

const jobWords = [layout.taskRoleWord, layout.taskEnvWord, layout.taskNameWord];
const revisionChangesRevisionField = 0;   // RevisionChanges.revision (schema.fbs field order)
const revisionChangesTimestampField = 1;  // RevisionChanges.timestamp_ms
/** Scratch entries kept between revisions (the common revision touches one task); beyond, the arrays are cut. */
const touchesKept = 64;

/** Task ids once each, in first-touch order, each with its last delete's job (-1: never deleted). */
function uniqueTasks(ids: Uint8Array[], deletes: number[], count: number): [Uint8Array[], number[]] {
  const at = new Map<string, number>();
  const outIds: Uint8Array[] = [];
  const outDeletes: number[] = [];
  for (let i = 0; i < count; i++) {
    const name = latin1(ids[i]!);
    const index = at.get(name);
    if (index === undefined) {
      at.set(name, outIds.length);
      outIds.push(ids[i]!);
      outDeletes.push(deletes[i]!);
    } else if (deletes[i]! >= 0) {
      outDeletes[index] = deletes[i]!;
    }
  }
  return [outIds, outDeletes];
}

function latin1(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.length).toString('latin1');
}

function jobKey(b: flatbuffers.Builder, key: string[]): number {
  return JobKey.createJobKey(b, b.createString(key[0]!), b.createString(key[1]!), b.createString(key[2]!));
}

/** Keys (or names) once each, in first-seen order. */
function unique<T extends string | string[]>(keys: T[]): T[] {
  if (keys.length < 2) return keys;
  const seen = new Set<string>();
  const out: T[] = [];
  for (const key of keys) {
    const name = typeof key === 'string' ? key : key.join('\u0000');
    if (seen.has(name)) continue;
    seen.add(name);
    out.push(key);
  }
  return out;
}
