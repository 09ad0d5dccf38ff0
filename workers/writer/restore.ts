/**
 * Loads a snapshot (docs/formats.md, "Snapshot file") into an empty writer. Owner: the writer thread, at startup
 * (recovery = newest valid snapshot + the log after it); tests run it in their own thread.
 *
 * Invariants:
 * - The result equals the snapshot's revision exactly: every record with its recorded mod_revision (tasks also
 *   their create_revision), configs with the reference counts the snapshot states (checked), indexes and
 *   aggregates as the Applier maintains them, job update events in their recorded order, the idempotency window;
 *   then writer.revision is the snapshot's revision and the state is published once.
 * - Records go through the Applier (apply.ts) as plans, like commits, with two restore hooks: tables.revisionBuilding
 *   is set to each record's mod_revision and tables.revisionCreate to each task's create_revision.
 * - Everything is applied in one epoch: trees change in place, no path is copied twice.
 * - Any damage throws FormatError naming the file and the offset of the frame; after an error the writer holds
 *   part of the snapshot and must be thrown away.
 */
import { createHash } from 'node:crypto';
import * as flatbuffers from 'flatbuffers';
import { ArenaFullError } from '../../core/arena.js';
import { assert, AssertionError } from '../../core/assert.js';
import type { CanonicalConfig } from '../../core/config.js';
import {
  AssignedTask, HostAttributes, HostMaintenanceRequest, IdempotencyEntry, JobConfiguration, JobUpdateDetails, Port,
  Quota, Resource, ResourceAggregateT, ResourceType, ScheduledTask, SnapshotChunk, StoredConfig, TaskConfig, TaskEvent,
} from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import { FormatError } from '../../core/files.js';
import { text } from '../../core/text.js';
import { forEachSnapshotChunk, type ChunkPlace, type SnapshotInfo } from '../snapshot/read.js';
import { Applier } from './apply.js';
import {
  cpuUnitsPerCpu, opInstanceEvent, opSaveCron, opSaveHosts, opSaveMaintenance, opSaveQuota, opSaveScheduler,
  opSaveUpdate, opUpdateEvent, opUpsertTasks, type ConfigSource, type OpPlan, type TaskPlan,
} from './plan.js';
import type { ConfigFacts, EventPlan, PortPlan, Tables } from './tables.js';
import type { WriterCore } from './writer.js';

export interface SnapshotLoadResult extends SnapshotInfo {
  ms: number;
}

const UTF8 = flatbuffers.Encoding.UTF8_BYTES;
// vtable offsets of the string fields read by position (schema.fbs field index i: 4 + 2 i).
const eventSchedulerField = 10;        // TaskEvent.scheduler
const assignedSlaveHostField = 8;      // AssignedTask.slave_host
const assignedConfigHashField = 16;    // AssignedTask.config_hash
const eventTimestampField = 4;         // TaskEvent.timestamp
const taskModRevisionField = 16;       // ScheduledTask.mod_revision
const taskCreateRevisionField = 18;    // ScheduledTask.create_revision

/** A long field as a number (exact to 2^53, as revisions and timestamps are), without a BigInt per read. */
function int64Field(bb: flatbuffers.ByteBuffer, table: number, field: number): number {
  const offset = bb.__offset(table, field);
  if (offset === 0) return 0;
  return bb.readInt32(table + offset + 4) * 4294967296 + bb.readUint32(table + offset);
}

function sameHash(hash: Uint8Array, bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < 16; i++) if (hash[i] !== bytes[at + i]) return false;
  return true;
}

/**
 * Loads the snapshot at `path` into `writer`, which must be empty (just constructed), and publishes it.
 * Throws FormatError for a damaged or incomplete file.
 */
export function loadSnapshot(writer: WriterCore, path: string): SnapshotLoadResult {
  const startMs = performance.now();
  const tables = writer.tables;
  assert(writer.revision === 0 && tables.taskCount === 0 && tables.configCount === 0 && tables.internedCount() === 0,
    'a snapshot loads into an empty writer');
  const restorer = new Restorer(writer);
  let info: SnapshotInfo;
  try {
    info = forEachSnapshotChunk(path, (chunk, place) => restorer.chunk(chunk, place));
    restorer.finish(info);
  } finally {
    tables.revisionCreate = 0;
  }
  tables.revisionBuilding = info.revision + 1;
  writer.revision = info.revision;
  writer.publish();
  return { ...info, ms: performance.now() - startMs };
}

/** Turns chunks into plans and applies them. */
class Restorer {
  private readonly writer: WriterCore;
  private readonly tables: Tables;
  private readonly applier: Applier;
  private place: ChunkPlace | null = null;
  private readonly configRefs = new Map<string, number>();   // config hash (hex) -> the references the file states
  private readonly sources = new Map<string, ConfigSource>(); // one ConfigSource per stored config
  private updateKey: string[] | null = null;                 // the last job update (its continuations follow it)
  private updateRevision = 0;
  private scheduler = false;
  // Reused per task: the FlatBuffers accessors and the plan of one upsert.
  private readonly task = new ScheduledTask();
  private readonly assigned = new AssignedTask();
  private readonly event = new TaskEvent();
  private readonly port = new Port();
  private readonly stored = new StoredConfig();
  private readonly single: TaskPlan[] = [];
  private readonly upsert: OpPlan = { kind: opUpsertTasks, tasks: this.single };
  private readonly sourcesByWord = new Map<number, { hash: Uint8Array; source: ConfigSource }>(); // first i32 word
  // Interned strings (hosts, scheduler names) are written once per chunk and shared: decoded once per chunk too,
  // by their position in the chunk (the same string object also makes the intern map's lookups cheaper).
  private readonly strings = new Map<number, string>();

  constructor(writer: WriterCore) {
    this.writer = writer;
    this.tables = writer.tables;
    this.applier = new Applier(writer.tables);
  }

  private error(message: string): FormatError {
    const place = this.place!;
    return new FormatError(place.path, place.offset, `chunk ${place.index}: ${message}`);
  }

  chunk(chunk: SnapshotChunk, place: ChunkPlace): void {
    this.place = place;
    this.strings.clear();
    try {
      this.configs(chunk);
      this.tasks(chunk);
      this.records(chunk);
      this.updates(chunk);
      this.idempotency(chunk);
    } catch (error) {
      // A bug, a full arena or a named damage pass as they are; anything else is a record that cannot be read.
      if (error instanceof FormatError || error instanceof AssertionError || error instanceof ArenaFullError) throw error;
      throw this.error(`a record cannot be read: ${(error as Error)?.message ?? String(error)}`);
    }
  }

  /** Checks the revision a record carries: 1 .. the snapshot's revision. */
  private revision(value: bigint | number, what: string): number {
    const revision = Number(value);
    if (!(revision >= 1 && revision <= this.place!.revision)) {
      throw this.error(`${what} has revision ${value}, outside 1..${this.place!.revision}`);
    }
    return revision;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Configs: stored with one placeholder reference each, dropped in finish() once every record took its own.

  private configs(chunk: SnapshotChunk): void {
    const count = chunk.configsLength();
    if (count !== chunk.configRefsLength()) throw this.error('configs and config_refs differ in length');
    for (let i = 0; i < count; i++) {
      const stored = chunk.configs(i, this.stored)!;
      const hash = stored.hashArray();
      const bytes = stored.bytesArray();
      if (hash === null || hash.length !== 16 || bytes === null) throw this.error(`config ${i} has no hash or bytes`);
      const hex = Buffer.from(hash).toString('hex');
      const digest = createHash('sha256').update(bytes).digest();
      if (Buffer.compare(digest.subarray(0, 16), hash) !== 0) throw this.error(`config ${hex} does not match its hash`);
      if (this.configRefs.has(hex)) throw this.error(`config ${hex} is twice in the snapshot`);
      const refs = chunk.configRefs(i)!;
      if (refs < 1) throw this.error(`config ${hex} has no reference`);
      const canonical: CanonicalConfig = { bytes: bytes.slice(), hash: hash.slice(), hashHex: hex };
      this.tables.configRef(hex, canonical, configFactsOf(canonical.bytes));
      this.configRefs.set(hex, refs);
      const source: ConfigSource = { hex, canonical: null, facts: null };
      this.sources.set(hex, source);
      const word = new DataView(hash.buffer, hash.byteOffset, 4).getInt32(0, true);
      if (!this.sourcesByWord.has(word)) this.sourcesByWord.set(word, { hash: canonical.hash, source });
    }
  }

  /** The stored config a record names by hash. */
  private source(hash: Uint8Array | null): ConfigSource {
    if (hash === null || hash.length !== 16) throw this.error('a record without a 16-byte config hash');
    const hex = Buffer.from(hash.buffer, hash.byteOffset, 16).toString('hex');
    const source = this.sources.get(hex);
    if (source === undefined) throw this.error(`a record names config ${hex}, which the snapshot does not hold`);
    return source;
  }

  /**
   * A task's config, without a hex string per task: by the hash's first word, checked against the whole hash
   * (a collision of first words falls back to the hex lookup).
   */
  private taskSource(assigned: AssignedTask): ConfigSource {
    const bb = assigned.bb!;
    const offset = bb.__offset(assigned.bb_pos, assignedConfigHashField);
    if (offset !== 0 && bb.__vector_len(assigned.bb_pos + offset) === 16) {
      const position = bb.__vector(assigned.bb_pos + offset);
      const entry = this.sourcesByWord.get(bb.readInt32(position));
      if (entry !== undefined && sameHash(entry.hash, bb.bytes(), position)) return entry.source;
    }
    return this.source(assigned.configHashArray());
  }

  // ------------------------------------------------------------------------------------------------------------
  // Tasks

  private tasks(chunk: SnapshotChunk): void {
    const tables = this.tables;
    const count = chunk.tasksLength();
    for (let i = 0; i < count; i++) {
      const task = chunk.tasks(i, this.task)!;
      const plan = this.taskPlan(task);
      const modRevision = this.revision(int64Field(task.bb!, task.bb_pos, taskModRevisionField), 'a task');
      const createRevision = this.revision(int64Field(task.bb!, task.bb_pos, taskCreateRevisionField),
        'a task\'s creation');
      if (createRevision > modRevision) throw this.error(`task ${text(plan.id)} was created after its last change`);
      // A task twice would replace itself: finish() finds the task count short of the end chunk's.
      tables.revisionBuilding = modRevision;
      tables.revisionCreate = createRevision;
      this.single[0] = plan;
      this.applier.apply(this.upsert);
    }
    this.single.length = 0;
    tables.revisionCreate = 0;
  }

  private taskPlan(task: ScheduledTask): TaskPlan {
    const assigned = task.assignedTask(this.assigned);
    if (assigned === null) throw this.error('a task without assigned_task');
    const id = assigned.taskId(UTF8) as Uint8Array | null;
    if (id === null || id.length === 0) throw this.error('a task without an id');
    const eventCount = task.taskEventsLength();
    const events: EventPlan[] = new Array(eventCount);
    for (let j = 0; j < eventCount; j++) {
      const event = task.taskEvents(j, this.event)!;
      events[j] = { timestamp: int64Field(event.bb!, event.bb_pos, eventTimestampField), status: event.status(),
        message: bytesOrNull(event.message(UTF8) as Uint8Array | null),
        scheduler: this.sharedString(event.bb!, event.bb_pos, eventSchedulerField) };
    }
    const portCount = assigned.assignedPortsLength();
    const ports: PortPlan[] = new Array(portCount);
    for (let j = 0; j < portCount; j++) {
      const port = assigned.assignedPorts(j, this.port)!;
      ports[j] = { name: port.name(UTF8) as Uint8Array, port: port.port() };
    }
    return {
      id, config: this.taskSource(assigned), instance: assigned.instanceId(), status: task.status(),
      failureCount: task.failureCount(), timesPartitioned: task.timesPartitioned(),
      slaveId: bytesOrNull(assigned.slaveId(UTF8) as Uint8Array | null),
      slaveHost: this.sharedString(assigned.bb!, assigned.bb_pos, assignedSlaveHostField),
      ancestor: bytesOrNull(task.ancestorId(UTF8) as Uint8Array | null),
      ports, events,
    };
  }

  /** A string field (at `field` of the table at `table`), decoded once per chunk; null when absent or empty. */
  private sharedString(bb: flatbuffers.ByteBuffer, table: number, field: number): string | null {
    const offset = bb.__offset(table, field);
    if (offset === 0) return null;
    const target = table + offset + bb.readInt32(table + offset);
    let value = this.strings.get(target);
    if (value === undefined) {
      value = bb.__string(table + offset) as string;
      this.strings.set(target, value);
    }
    return value === '' ? null : value;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Cron jobs, quotas, hosts, maintenance, scheduler: one plan per record, at its own revision

  private apply(modRevision: bigint, what: string, plan: OpPlan): void {
    this.tables.revisionBuilding = this.revision(modRevision, what);
    this.applier.apply(plan);
  }

  private records(chunk: SnapshotChunk): void {
    for (let i = 0; i < chunk.cronJobsLength(); i++) {
      const job = chunk.cronJobs(i, new JobConfiguration())!.unpack();
      const key = job.key;
      if (key === null) throw this.error('a cron job without a key');
      this.apply(job.modRevision, 'a cron job', { kind: opSaveCron, job,
        config: this.source(Uint8Array.from(job.configHash)),
        key: [text(key.role), text(key.environment), text(key.name)] });
    }
    for (let i = 0; i < chunk.quotasLength(); i++) {
      const quota = chunk.quotas(i, new Quota())!.unpack();
      this.apply(quota.modRevision, 'a quota', { kind: opSaveQuota, role: text(quota.role),
        quota: quota.quota ?? new ResourceAggregateT() });
    }
    for (let i = 0; i < chunk.hostsLength(); i++) {
      const host = chunk.hosts(i, new HostAttributes())!.unpack();
      this.apply(host.modRevision, 'host attributes', { kind: opSaveHosts, hosts: [host] });
    }
    for (let i = 0; i < chunk.maintenanceLength(); i++) {
      const request = chunk.maintenance(i, new HostMaintenanceRequest())!.unpack();
      this.apply(request.modRevision, 'a maintenance request', { kind: opSaveMaintenance, request });
    }
    const scheduler = chunk.scheduler();
    if (scheduler !== null) {
      if (this.scheduler) throw this.error('the scheduler metadata is twice in the snapshot');
      this.scheduler = true;
      const metadata = scheduler.unpack();
      this.apply(metadata.modRevision, 'the scheduler metadata', { kind: opSaveScheduler, metadata });
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Job updates: the update, then its events in file order (oldest first), which rebuilds the same lists.

  private updates(chunk: SnapshotChunk): void {
    for (let i = 0; i < chunk.jobUpdatesLength(); i++) {
      const details = chunk.jobUpdates(i, new JobUpdateDetails())!.unpack();
      const update = details.update;
      const key = update?.summary?.key ?? null;
      if (update === null || key === null || key.job === null) throw this.error('a job update without a key');
      const keyStrings = [text(key.job.role), text(key.job.environment), text(key.job.name), text(key.id)];
      if (update.instructions === null) {
        // A continuation: more events of the update just before it.
        const last = this.updateKey;
        if (last === null || last.join('\u0000') !== keyStrings.join('\u0000')) {
          throw this.error(`events of job update ${keyStrings.join('/')} do not follow the update`);
        }
      } else {
        const instructions = update.instructions;
        const entries = instructions.desiredState === null ? instructions.initialState :
          [...instructions.initialState, instructions.desiredState];
        const configs = entries.map((entry) => this.source(Uint8Array.from(entry.configHash)));
        this.apply(details.modRevision, 'a job update', { kind: opSaveUpdate, key: keyStrings, update, configs });
        this.updateKey = keyStrings;
        this.updateRevision = Number(details.modRevision);
      }
      if (Number(details.modRevision) !== this.updateRevision) {
        throw this.error('the entries of a job update differ in revision');
      }
      for (const event of details.updateEvents) {
        this.apply(details.modRevision, 'a job update', { kind: opUpdateEvent, key: keyStrings, event });
      }
      for (const event of details.instanceEvents) {
        this.apply(details.modRevision, 'a job update', { kind: opInstanceEvent, key: keyStrings, event });
      }
    }
  }

  private idempotency(chunk: SnapshotChunk): void {
    const entry = new IdempotencyEntry();
    for (let i = 0; i < chunk.idempotencyLength(); i++) {
      chunk.idempotency(i, entry);
      const client = text(entry.clientId());
      const result = entry.resultArray();
      if (client === '' || result === null) throw this.error('an idempotency entry without a client or a result');
      this.writer.restoreIdempotency(client, entry.sequence(), result.slice());
    }
  }

  /** Drops the placeholder references and checks every config's count against the file; checks the totals. */
  finish(info: SnapshotInfo): void {
    const tables = this.tables;
    const fail = (message: string) => new FormatError(info.path, info.endOffset, message);
    for (const [hex, expected] of this.configRefs) {
      const config = tables.findConfig(hex)!;
      tables.configUnref(config);
      if (config.refs !== expected) {
        throw fail(`config ${hex} has ${config.refs} references in the snapshot's records, ` +
          `the snapshot states ${expected}`);
      }
    }
    tables.flushConfigs();
    if (tables.taskCount !== info.counts.tasks) {
      throw fail(`${tables.taskCount} tasks loaded, ${info.counts.tasks} counted (a task id twice?)`);
    }
    if (tables.configCount !== info.counts.configs) {
      throw fail(`${tables.configCount} configs loaded, ${info.counts.configs} counted`);
    }
  }
}

/**
 * What the aggregates need of a config (plan.ts configFacts, same rules), read through the accessors: a snapshot
 * of 1M tasks holds ~20k configs, and unpacking each whole (executor data and all) was most of their load time.
 * The round-trip test compares the aggregates (quota consumption, job summaries) this feeds.
 */
function configFactsOf(bytes: Uint8Array): ConfigFacts {
  const config = TaskConfig.getRootAsTaskConfig(new flatbuffers.ByteBuffer(bytes));
  const job = config.job();
  if (job === null) throw new Error('a config without a job key');
  const totals = new Float64Array(4);
  const resource = new Resource();
  for (let i = 0; i < config.resourcesLength(); i++) {
    config.resources(i, resource);
    const type = resource.type();
    if (type === ResourceType.NUM_CPUS) totals[0]! += Math.round(resource.numCpus() * cpuUnitsPerCpu);
    else if (type === ResourceType.RAM_MB) totals[1]! += Number(resource.ramMb());
    else if (type === ResourceType.DISK_MB) totals[2]! += Number(resource.diskMb());
    else if (type === ResourceType.NUM_GPUS) totals[3]! += Number(resource.numGpus());
  }
  let dedicated = false;
  for (let i = 0; i < config.constraintsLength(); i++) dedicated ||= text(config.constraints(i)!.name()) === 'dedicated';
  const bucket = config.production() ? (dedicated ? layout.bucketProdDedicated : layout.bucketProdShared) :
    (dedicated ? layout.bucketNonProdDedicated : layout.bucketNonProdShared);
  return { role: text(job.role()), environment: text(job.environment()), name: text(job.name()), bucket, totals };
}

function bytesOrNull(bytes: Uint8Array | null): Uint8Array | null {
  return bytes === null || bytes.length === 0 ? null : bytes;
}

