/**
 * Encodes stored records as the FlatBuffers tables results carry: tasks (config by config_hash, mod and create
 * revision set), stored configs, cron jobs, quotas, host attributes, maintenance requests, the scheduler metadata
 * (each with its mod_revision) and job updates with their events. Owner: any thread that reads a StoreReader: the
 * snapshot worker (workers/snapshot/write.ts) and the writer's change records (workers/writer/changes.ts).
 *
 * Invariants:
 * - Reads only through `store` (a pinned revision, or the writer's working roots), never writes the arena.
 * - Everything goes into the one builder it was given; the caller finishes the table that holds the offsets.
 *   Interned strings and config hash vectors are written once per buffer: call reset() whenever the builder is
 *   cleared, since the offsets remembered before are then meaningless.
 * - The same store contents and the same calls give the same bytes (snapshots are golden-tested, and a replayed
 *   revision's change record must equal the live one).
 * - Tasks are encoded with the static builder API (no object per task: the writer encodes one per transition);
 *   the small record kinds go through the object API, as they are stored as FlatBuffers already.
 */
import * as flatbuffers from 'flatbuffers';
import { assert } from './assert.js';
import type { ArenaView } from './arena.js';
import {
  AssignedTask, HostAttributes, HostMaintenanceRequest, JobConfiguration, JobInstanceUpdateEvent, JobUpdate,
  JobUpdateDetails, JobUpdateEvent, JobUpdateStateT, JobUpdateStatus, type JobUpdateT, Port, Quota, RecordTable,
  ScheduledTask, SchedulerMetadata, StoredConfig, TaskEvent,
} from './fbs/strata.js';
import * as layout from './layout.js';
import * as limits from './limits.js';
import type { StoreReader } from './store.js';

/** The record kinds stored as one FlatBuffers blob under a key (their mod_revision is in the blob header). */
export type KeyedTable = RecordTable.CRON_JOB | RecordTable.QUOTA | RecordTable.HOST_ATTRIBUTES |
  RecordTable.MAINTENANCE_REQUEST;

/** A stored job update's parts: the update as stored (no state), its revision, its events' blobs oldest first. */
export interface UpdateParts {
  update: JobUpdateT;
  modRevision: bigint;
  events: number[];
  instanceEvents: number[];
}

export class RecordEncoder {
  readonly store: StoreReader;
  readonly builder: flatbuffers.Builder;
  private readonly view: ArenaView;
  // Offsets written into the buffer being built: interned strings by string id, config hash vectors by config row.
  // An entry counts only if its generation is the buffer's (reset() starts a new one: nothing to clear).
  private readonly sharedStrings = new OffsetCache();
  private readonly hashVectors = new OffsetCache();
  // Scratch, written by index up to a count (never truncated: setting length to 0 frees the backing store).
  private readonly eventNodes: number[] = [];
  private readonly eventOffsets: number[] = [];
  private readonly portOffsets: number[] = [];

  constructor(store: StoreReader, builder: flatbuffers.Builder) {
    this.store = store;
    this.builder = builder;
    this.view = store.view;
  }

  /** Forgets the offsets of the buffer built so far: call it with every builder.clear(). */
  reset(): void {
    this.sharedStrings.forget();
    this.hashVectors.forget();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Strings and configs

  /** A string of the arena (a string blob) into the buffer. */
  blobString(blob: number): number {
    const length = this.view.u32[blob >>> 2]!;
    return this.builder.createString(this.view.u8.subarray(blob + 4, blob + 4 + length));
  }

  /** An interned string, once per buffer. */
  shared(id: number): number {
    let offset = this.sharedStrings.get(id);
    if (offset === 0) {
      offset = this.blobString(this.store.stringBlob(id));
      this.sharedStrings.set(id, offset);
    }
    return offset;
  }

  /** A config blob as a StoredConfig: its hash and its canonical TaskConfig bytes (a nested buffer). */
  storedConfig(blob: number): number {
    const b = this.builder;
    const hash = b.createByteVector(this.store.configHash(blob));
    const bytes = this.store.configBytes(blob);
    b.prep(8, bytes.length); // the nested TaskConfig buffer starts 8-aligned, as FlatBuffers readers expect
    const nested = b.createByteVector(bytes);
    return StoredConfig.createStoredConfig(b, hash, nested);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Tasks

  /** A task record as a ScheduledTask: config by hash, events oldest first, mod and create revision. */
  task(record: number): number {
    const b = this.builder;
    const view = this.view;
    const u32 = view.u32;
    const w = record >>> 2;
    const configRow = u32[w + layout.taskConfigRowWord]!;
    let hash = this.hashVectors.get(configRow);
    if (hash === 0) {
      hash = b.createByteVector(this.store.configHash(this.store.configBlob(configRow)));
      this.hashVectors.set(configRow, hash);
    }
    const id = this.blobString(u32[w + layout.taskIdWord]!);
    const slaveId = u32[w + layout.taskSlaveIdWord]! === 0 ? 0 : this.blobString(u32[w + layout.taskSlaveIdWord]!);
    const host = u32[w + layout.taskHostWord]! === 0 ? 0 : this.shared(u32[w + layout.taskHostWord]!);
    const ports = this.ports(u32[w + layout.taskPortsWord]!);
    const events = this.events(u32[w + layout.taskEventsWord]!, u32[w + layout.taskEventCountWord]!);
    const ancestor = u32[w + layout.taskAncestorWord]! === 0 ? 0 : this.blobString(u32[w + layout.taskAncestorWord]!);
    AssignedTask.startAssignedTask(b);
    AssignedTask.addTaskId(b, id);
    if (slaveId !== 0) AssignedTask.addSlaveId(b, slaveId);
    if (host !== 0) AssignedTask.addSlaveHost(b, host);
    if (ports !== 0) AssignedTask.addAssignedPorts(b, ports);
    AssignedTask.addInstanceId(b, view.i32[w + layout.taskInstanceWord]!);
    AssignedTask.addConfigHash(b, hash);
    const assigned = AssignedTask.endAssignedTask(b);
    ScheduledTask.startScheduledTask(b);
    ScheduledTask.addAssignedTask(b, assigned);
    ScheduledTask.addStatus(b, u32[w + layout.taskStatusWord]!);
    ScheduledTask.addFailureCount(b, view.i32[w + layout.taskFailureCountWord]!);
    ScheduledTask.addTimesPartitioned(b, view.i32[w + layout.taskTimesPartitionedWord]!);
    if (events !== 0) ScheduledTask.addTaskEvents(b, events);
    if (ancestor !== 0) ScheduledTask.addAncestorId(b, ancestor);
    addFieldInt64Number(b, scheduledTaskModRevisionField, view.f64[(record >>> 3) + layout.taskModRevisionF64]!);
    addFieldInt64Number(b, scheduledTaskCreateRevisionField, view.f64[(record >>> 3) + layout.taskCreateRevisionF64]!);
    return ScheduledTask.endScheduledTask(b);
  }

  /** Ports blob: [u32 bytes][u32 count] then per port [i32 port][u32 name bytes][name, padded to 4]. */
  private ports(blob: number): number {
    if (blob === 0) return 0;
    const b = this.builder;
    const view = this.view;
    const count = view.u32[(blob >>> 2) + 1]!;
    assert(count <= 1024, 'at most 1024 ports');
    const offsets = this.portOffsets;
    let at = blob + 8;
    for (let i = 0; i < count; i++) {
      const length = view.u32[(at >>> 2) + 1]!;
      const name = b.createString(view.u8.subarray(at + 8, at + 8 + length));
      offsets[i] = Port.createPort(b, name, view.i32[at >>> 2]!);
      at += 8 + ((length + 3) & ~3);
    }
    return offsetVector(b, offsets, count);
  }

  /** A task's events, oldest first (the list is newest first). */
  private events(head: number, count: number): number {
    if (count === 0) return 0;
    assert(count <= limits.taskEventsMax, 'at most taskEventsMax events');
    const b = this.builder;
    const view = this.view;
    const nodes = this.eventNodes;
    let node = head;
    for (let i = 0; i < count; i++) {
      assert(node !== 0, 'an event list as long as its count');
      nodes[i] = node;
      node = view.u32[(node >>> 2) + layout.eventPrevWord]!;
    }
    const offsets = this.eventOffsets;
    for (let i = count - 1; i >= 0; i--) {
      const w = nodes[i]! >>> 2;
      const message = view.u32[w + layout.eventMessageWord]! === 0 ? 0 :
        this.blobString(view.u32[w + layout.eventMessageWord]!);
      const scheduler = view.u32[w + layout.eventSchedulerWord]! === 0 ? 0 :
        this.shared(view.u32[w + layout.eventSchedulerWord]!);
      TaskEvent.startTaskEvent(b);
      addFieldInt64Number(b, taskEventTimestampField, view.f64[(nodes[i]! >>> 3) + layout.eventTimestampF64]!);
      TaskEvent.addStatus(b, view.u32[w + layout.eventStatusWord]!);
      if (message !== 0) TaskEvent.addMessage(b, message);
      if (scheduler !== 0) TaskEvent.addScheduler(b, scheduler);
      offsets[count - 1 - i] = TaskEvent.endTaskEvent(b);
    }
    return offsetVector(b, offsets, count);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Keyed records and the scheduler metadata

  /** A record blob re-encoded with its mod_revision (the stored bytes leave it out). */
  keyedRecord(table: KeyedTable, blob: number): number {
    const bytes = new flatbuffers.ByteBuffer(this.store.blobBytes(blob));
    const record = table === RecordTable.CRON_JOB ? JobConfiguration.getRootAsJobConfiguration(bytes).unpack() :
      table === RecordTable.QUOTA ? Quota.getRootAsQuota(bytes).unpack() :
        table === RecordTable.HOST_ATTRIBUTES ? HostAttributes.getRootAsHostAttributes(bytes).unpack() :
          HostMaintenanceRequest.getRootAsHostMaintenanceRequest(bytes).unpack();
    record.modRevision = BigInt(this.store.blobRevision(blob));
    return record.pack(this.builder);
  }

  schedulerMetadata(blob: number): number {
    const metadata = SchedulerMetadata.getRootAsSchedulerMetadata(
      new flatbuffers.ByteBuffer(this.store.blobBytes(blob))).unpack();
    metadata.modRevision = BigInt(this.store.blobRevision(blob));
    return metadata.pack(this.builder);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Job updates

  /** An update record's parts, for a caller that lays its events out itself (the snapshot splits long lists). */
  updateParts(record: number): UpdateParts {
    const view = this.view;
    const w = record >>> 2;
    const update = JobUpdate.getRootAsJobUpdate(new flatbuffers.ByteBuffer(
      this.store.blobBytes(view.u32[w + layout.updateBlobWord]!))).unpack();
    return {
      update,
      modRevision: BigInt(view.f64[(record >>> 3) + layout.updateModRevisionF64]!),
      events: this.listBlobs(view.u32[w + layout.updateEventsWord]!, view.u32[w + layout.updateEventCountWord]!),
      instanceEvents: this.listBlobs(view.u32[w + layout.updateInstanceEventsWord]!,
        view.u32[w + layout.updateInstanceEventCountWord]!),
    };
  }

  updateEvent(blob: number): number {
    return JobUpdateEvent.getRootAsJobUpdateEvent(new flatbuffers.ByteBuffer(this.store.blobBytes(blob)))
      .unpack().pack(this.builder);
  }

  instanceUpdateEvent(blob: number): number {
    return JobInstanceUpdateEvent.getRootAsJobInstanceUpdateEvent(new flatbuffers.ByteBuffer(this.store.blobBytes(blob)))
      .unpack().pack(this.builder);
  }

  /** A JobUpdateDetails of an update and event offsets written before (empty lists are left out). */
  updateDetails(update: number, events: number[], instanceEvents: number[], modRevision: bigint): number {
    const b = this.builder;
    const eventsVector = events.length === 0 ? 0 : JobUpdateDetails.createUpdateEventsVector(b, events);
    const instanceVector = instanceEvents.length === 0 ? 0 :
      JobUpdateDetails.createInstanceEventsVector(b, instanceEvents);
    JobUpdateDetails.startJobUpdateDetails(b);
    JobUpdateDetails.addUpdate(b, update);
    if (eventsVector !== 0) JobUpdateDetails.addUpdateEvents(b, eventsVector);
    if (instanceVector !== 0) JobUpdateDetails.addInstanceEvents(b, instanceVector);
    JobUpdateDetails.addModRevision(b, modRevision);
    return JobUpdateDetails.endJobUpdateDetails(b);
  }

  /**
   * A whole job update as JobUpdateQuery gives it: every event (oldest first) and the state the store derives
   * from them (summary.state: the last update event's status, the first one's time, the newest event's time).
   */
  jobUpdate(record: number): number {
    const parts = this.updateParts(record);
    const events = parts.events;
    const instanceEvents = parts.instanceEvents;
    const first = events.length === 0 ? null : this.eventOf(events[0]!);
    const last = events.length === 0 ? null : this.eventOf(events[events.length - 1]!);
    const lastInstance = instanceEvents.length === 0 ? null :
      JobInstanceUpdateEvent.getRootAsJobInstanceUpdateEvent(new flatbuffers.ByteBuffer(
        this.store.blobBytes(instanceEvents[instanceEvents.length - 1]!)));
    let modified = last?.timestampMs() ?? 0n;
    if (lastInstance !== null && lastInstance.timestampMs() > modified) modified = lastInstance.timestampMs();
    parts.update.summary!.state = new JobUpdateStateT(last?.status() ?? JobUpdateStatus.ROLLING_FORWARD,
      first?.timestampMs() ?? 0n, modified);
    const update = parts.update.pack(this.builder);
    const eventOffsets: number[] = [];
    for (const blob of events) eventOffsets.push(this.updateEvent(blob));
    const instanceOffsets: number[] = [];
    for (const blob of instanceEvents) instanceOffsets.push(this.instanceUpdateEvent(blob));
    return this.updateDetails(update, eventOffsets, instanceOffsets, parts.modRevision);
  }

  private eventOf(blob: number): JobUpdateEvent {
    return JobUpdateEvent.getRootAsJobUpdateEvent(new flatbuffers.ByteBuffer(this.store.blobBytes(blob)));
  }

  /** The blobs of a newest-first list, oldest first. */
  listBlobs(head: number, count: number): number[] {
    assert(count <= limits.updateEventsMax, 'at most updateEventsMax events of a kind');
    const u32 = this.view.u32;
    const blobs: number[] = new Array(count);
    let node = head;
    for (let i = count - 1; i >= 0; i--) {
      assert(node !== 0, 'a list as long as its count');
      blobs[i] = u32[(node >>> 2) + layout.listBlobWord]!;
      node = u32[(node >>> 2) + layout.listPrevWord]!;
    }
    return blobs;
  }
}

/**
 * A vector of the first `count` offsets, as the generated create*Vector functions write one (4-byte elements, in
 * order): for scratch arrays longer than what they hold.
 */
export function offsetVector(b: flatbuffers.Builder, offsets: number[], count: number): number {
  b.startVector(4, count, 4);
  for (let i = count - 1; i >= 0; i--) b.addOffset(offsets[i]!);
  return b.endVector();
}

/**
 * Offsets by a small dense key (string id, config row), valid for one buffer: typed arrays indexed by the key, each
 * entry stamped with the generation it was written in (an f64 count: it never wraps). No Map: the writer starts a
 * buffer per revision, and a Map's clear() allocates a new table each time.
 */
class OffsetCache {
  private offsets = new Int32Array(256);
  private generations = new Float64Array(256);
  private generation = 1;

  forget(): void {
    this.generation++;
  }

  /** The offset written for `key` in this buffer, or 0 (no FlatBuffers offset is 0). */
  get(key: number): number {
    return key < this.offsets.length && this.generations[key] === this.generation ? this.offsets[key]! : 0;
  }

  set(key: number, offset: number): void {
    assert(key >= 0 && offset > 0);
    if (key >= this.offsets.length) {
      const length = Math.max(this.offsets.length * 2, key + 1);
      const offsets = new Int32Array(length);
      offsets.set(this.offsets);
      const generations = new Float64Array(length);
      generations.set(this.generations);
      this.offsets = offsets;
      this.generations = generations;
    }
    this.offsets[key] = offset;
    this.generations[key] = this.generation;
  }
}

// Slots of the long fields written from doubles (schema.fbs field order; a field is never renumbered).
const taskEventTimestampField = 0;          // TaskEvent.timestamp
const scheduledTaskModRevisionField = 6;    // ScheduledTask.mod_revision
const scheduledTaskCreateRevisionField = 7; // ScheduledTask.create_revision

/**
 * What a generated add<Field>(b, BigInt(value)) writes for a long field, from an integral double (the store keeps
 * revisions and timestamps as f64): the same bytes, without the generated path's BigInt work (a BigInt('0')
 * default and three BigInt operations per field: a third of a task's encoding). A 0 is left out, as the default
 * is, unless `always`.
 */
export function addFieldInt64Number(b: flatbuffers.Builder, field: number, value: number, always = false): void {
  assert(Number.isInteger(value), 'a long field from an integral double');
  if (value === 0 && !always) return;
  b.prep(8, 0);
  b.writeInt32(Math.floor(value / 4294967296) | 0); // the high word first: the builder writes backwards
  b.writeInt32((value >>> 0) | 0);                   // the low word, two's complement (>>> is modulo 2^32)
  b.slot(field);
}
