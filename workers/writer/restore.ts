/**
 * Loads a snapshot (docs/formats.md, "Snapshot file") into an empty writer. Owner: the writer thread, at startup
 * (recovery = newest valid snapshot + the log after it); tests run it in their own thread.
 *
 * Invariants:
 * - The result equals the snapshot's revision exactly: every record with its recorded mod_revision (tasks also
 *   their create_revision), configs with the reference counts the snapshot states (checked), indexes and
 *   aggregates as the Applier maintains them, job update events in their recorded order, the idempotency window;
 *   then writer.revision is the snapshot's revision and the state is published once.
 * - Tasks are loaded in bulk (restore-tasks.ts: records written straight from the chunk, indexes and aggregates
 *   built once after the last task) with the same result as the Applier's. The other records go through the
 *   Applier (apply.ts) as plans, like commits, with tables.revisionBuilding set to each record's mod_revision.
 * - Tasks come before every record of a later kind (cron jobs, job updates, quotas, hosts, maintenance, the
 *   scheduler), in task id order: the bulk load is finished before the first of those (the aggregates it writes
 *   are what a cron job's adds to).
 * - Everything is applied in one epoch: trees change in place, no path is copied twice.
 * - Any damage throws FormatError naming the file and the offset of the frame; after an error the writer holds
 *   part of the snapshot and must be thrown away.
 */
import { hash as digestOf } from 'node:crypto';
import * as flatbuffers from 'flatbuffers';
import { ArenaFullError } from '../../core/arena.js';
import { assert, AssertionError } from '../../core/assert.js';
import type { CanonicalConfig } from '../../core/config.js';
import {
  HostAttributes, HostMaintenanceRequest, IdempotencyEntry, JobConfiguration, JobUpdateDetails, Quota, Resource,
  ResourceAggregateT, ResourceType, ScheduledTask, SnapshotChunk, StoredConfig, TaskConfig,
} from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import { FormatError } from '../../core/files.js';
import { text } from '../../core/text.js';
import { forEachSnapshotChunk, type ChunkPlace, type SnapshotInfo } from '../snapshot/read.js';
import { Applier } from './apply.js';
import {
  cpuUnitsPerCpu, opInstanceEvent, opSaveCron, opSaveHosts, opSaveMaintenance, opSaveQuota, opSaveScheduler,
  opSaveUpdate, opUpdateEvent, type ConfigSource, type OpPlan,
} from './plan.js';
import { TaskLoader } from './restore-tasks.js';
import type { ConfigFacts, Tables } from './tables.js';
import type { WriterCore } from './writer.js';

const UTF8 = flatbuffers.Encoding.UTF8_BYTES;

export interface SnapshotLoadResult extends SnapshotInfo {
  ms: number;
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
  const info = forEachSnapshotChunk(path, (chunk, place) => restorer.chunk(chunk, place));
  restorer.finish(info);
  tables.revisionBuilding = info.revision + 1;
  writer.revision = info.revision;
  writer.publish();
  return { ...info, ms: performance.now() - startMs };
}

/** Hands tasks to the TaskLoader, turns the other records into plans and applies them. */
class Restorer {
  private readonly writer: WriterCore;
  private readonly tables: Tables;
  private readonly applier: Applier;
  private readonly taskLoader: TaskLoader;
  private place: ChunkPlace | null = null;
  private readonly configRefs = new Map<string, number>();   // config hash (hex) -> the references the file states
  private readonly sources = new Map<string, ConfigSource>(); // one ConfigSource per stored config
  private updateKey: string[] | null = null;                 // the last job update (its continuations follow it)
  private updateRevision = 0;
  private scheduler = false;
  private readonly task = new ScheduledTask();    // reused per task: only its position is read
  private readonly stored = new StoredConfig();

  constructor(writer: WriterCore) {
    this.writer = writer;
    this.tables = writer.tables;
    this.applier = new Applier(writer.tables);
    this.taskLoader = new TaskLoader(writer.tables, (message) => this.error(message));
  }

  private error(message: string): FormatError {
    const place = this.place!;
    return new FormatError(place.path, place.offset, `chunk ${place.index}: ${message}`);
  }

  chunk(chunk: SnapshotChunk, place: ChunkPlace): void {
    this.place = place;
    try {
      this.configs(chunk);
      this.tasks(chunk);
      if (hasLaterRecords(chunk)) this.taskLoader.finish();
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
      const digest = digestOf('sha256', bytes, 'buffer'); // one call: no Hash object per config
      if (Buffer.compare(digest.subarray(0, 16), hash) !== 0) throw this.error(`config ${hex} does not match its hash`);
      if (this.configRefs.has(hex)) throw this.error(`config ${hex} is twice in the snapshot`);
      const refs = chunk.configRefs(i)!;
      if (refs < 1) throw this.error(`config ${hex} has no reference`);
      // Views of the chunk: configRef copies the bytes into the arena and keeps neither array.
      const canonical: CanonicalConfig = { bytes, hash, hashHex: hex };
      const facts = configFactsOf(chunk.bb!, bytes.byteOffset - chunk.bb!.bytes().byteOffset);
      const info = this.tables.configRef(hex, canonical, facts);
      this.configRefs.set(hex, refs);
      this.sources.set(hex, { hex, canonical: null, facts: null });
      this.taskLoader.addConfig(hash, info);
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

  // ------------------------------------------------------------------------------------------------------------
  // Tasks: in bulk (restore-tasks.ts)

  private tasks(chunk: SnapshotChunk): void {
    const count = chunk.tasksLength();
    if (count === 0) return;
    this.taskLoader.beginChunk(chunk.bb!, this.place!.revision);
    for (let i = 0; i < count; i++) this.taskLoader.task(chunk.tasks(i, this.task)!.bb_pos);
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
    this.taskLoader.finish();
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
function configFactsOf(bb: flatbuffers.ByteBuffer, position: number): ConfigFacts {
  // The chunk's own ByteBuffer at the nested buffer's start: a new ByteBuffer per config makes a TextDecoder each.
  const before = bb.position();
  bb.setPosition(position);
  const config = TaskConfig.getRootAsTaskConfig(bb);
  bb.setPosition(before);
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
  // Names as UTF-8 bytes, decoded by text() (a loop for ASCII): the accessors' own decoding is a TextDecoder call.
  for (let i = 0; i < config.constraintsLength(); i++) {
    dedicated ||= text(config.constraints(i)!.name(UTF8)) === 'dedicated';
  }
  const bucket = config.production() ? (dedicated ? layout.bucketProdDedicated : layout.bucketProdShared) :
    (dedicated ? layout.bucketNonProdDedicated : layout.bucketNonProdShared);
  return { role: text(job.role(UTF8)), environment: text(job.environment(UTF8)), name: text(job.name(UTF8)), bucket,
    totals };
}

/** Whether a chunk holds records of a kind after tasks that change the tables (idempotency entries do not). */
function hasLaterRecords(chunk: SnapshotChunk): boolean {
  return chunk.cronJobsLength() > 0 || chunk.jobUpdatesLength() > 0 || chunk.quotasLength() > 0 ||
    chunk.hostsLength() > 0 || chunk.maintenanceLength() > 0 || chunk.scheduler() !== null;
}

