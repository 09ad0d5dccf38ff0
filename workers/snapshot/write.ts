/**
 * Writes a snapshot of one pinned revision to a file (docs/formats.md, "Snapshot file"). Owner: the snapshot
 * worker (main.ts); tests and tools may run it in their own thread. It reads shared memory only: it never writes
 * the arena, and of the control block only its own slot.
 *
 * Invariants:
 * - Everything written is read from the root block of the pinned revision, under a long pin (snapshotPinMsMax):
 *   the writer goes on committing and publishing meanwhile, and reuses nothing the pin protects. The pin is
 *   checked after every chunk, and released before the rename: a snapshot whose pin expired is never installed.
 * - Memory is bounded by a few chunks: records are encoded (core/record-encoder.ts) into one reused FlatBuffers
 *   builder, and a chunk is written and the builder cleared once its payload passes the target
 *   (snapshotChunkBytesTarget).
 * - Records of one kind come in one run, in this order: configs, tasks, cron jobs, job updates, quotas, hosts,
 *   maintenance requests, the scheduler metadata, the idempotency window (oldest first). A job update whose events
 *   do not fit in the current chunk continues in the next one: a continuation entry's update has only its key.
 * - The file is installed atomically: written to `<name>.tmp`, fsynced, renamed, then the directory fsynced.
 * - Failpoints (core/failpoints.ts) are named by what is written: `snapshot.*` for a snapshot, `backup.*` for a
 *   backup (magic STRATBAK): `.write` (every write of the file), `.sync` (its fsync), `.before-rename`,
 *   `.after-rename`.
 */
import { closeSync, fdatasyncSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as flatbuffers from 'flatbuffers';
import { ArenaView } from '../../core/arena.js';
import { assert } from '../../core/assert.js';
import { TreeCursor } from '../../core/btree.js';
import { crashNow, failpoint } from '../../core/failpoints.js';
import {
  IdempotencyEntry, JobConfiguration, JobKeyT, JobUpdate, JobUpdateKeyT, JobUpdateSummaryT, JobUpdateT, RecordTable,
  SnapshotChunk, SnapshotEnd,
} from '../../core/fbs/strata.js';
import { encodeHeader, fsyncDirectory, magicBackup, magicSnapshot, type Magic } from '../../core/files.js';
import * as layout from '../../core/layout.js';
import * as limits from '../../core/limits.js';
import { RecordEncoder, type KeyedTable } from '../../core/record-encoder.js';
import {
  fourKeyShape, oneKeyShape, StoreReader, taskIdShape, threeKeyShape,
} from '../../core/store.js';
import {
  frameBytes, frameHeaderBytes, frameTypeChunk, frameTypeEnd, snapshotFileName, writeFrameHeader,
} from '../../core/snapshot-format.js';
import { pinClockMs, ReaderSlot, snapshotSlotOwner } from '../reader/pin.js';

/** One remembered idempotency outcome, as WriterCore.idempotencyEntries() gives them (oldest first). */
export interface IdempotencyRecord { clientId: string; sequence: bigint; result: Uint8Array }

export interface SnapshotWriteOptions {
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** The slot pinPublishedLong() pinned at `revision` and its root block; slot -1: pin the published revision. */
  slotIndex: number;
  root: number;
  directory: string;
  revision: number;
  term: number;
  /** The idempotency window of `revision` (WriterCore.idempotencyEntries() right after its publish). */
  idempotency: IdempotencyRecord[];
  /** Tests only: a smaller chunk target, to get many chunks from a small store. */
  chunkBytesTarget?: number;
  /** Tests only: called after each chunk is written (a test thread commits meanwhile). */
  chunkWritten?: (index: number) => void;
  /** Pacing: sleep this many times the work of each chunk (the daemon: 1; offline tools and tests: 0). */
  idleRatio?: number;
  /** A backup: its file name (default snapshot-<revision>.snap) and magic (default STRATSNP; backups STRATBAK). */
  fileName?: string;
  magic?: Magic;
  /** Tests only: the creation time to record (golden files); default Date.now(). */
  createdMs?: number;
}

export interface SnapshotWriteResult {
  path: string;
  revision: number;
  bytes: number;
  tasks: number;
  configs: number;
  chunks: number;           // chunk frames (the end frame not counted)
  ms: number;
}

/** The snapshot could not be finished; nothing was installed. */
export class SnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotError';
  }
}

function pinExpired(): SnapshotError {
  return new SnapshotError(`the snapshot's pin expired (snapshotPinMsMax ${limits.snapshotPinMsMax} ms): the writer ` +
    'reused memory it protected; nothing was installed');
}

export function writeSnapshot(options: SnapshotWriteOptions): SnapshotWriteResult {
  const startMs = performance.now();
  const slot = options.slotIndex >= 0 ? ReaderSlot.adopt(options.control, options.slotIndex) :
    new ReaderSlot(options.control, snapshotSlotOwner);
  try {
    const root = options.slotIndex >= 0 ? options.root : slot.pinLong(pinClockMs());
    const store = pinnedStore(options, slot, root);
    const path = join(options.directory, options.fileName ?? snapshotFileName(options.revision));
    const points = options.magic === magicBackup ? 'backup' : 'snapshot';
    const file = new FrameFile(`${path}.tmp`, options.revision, options.createdMs ?? Date.now(),
      options.magic ?? magicSnapshot, options.idleRatio ?? 0, points);
    try {
      const encoder = new ChunkEncoder(store, file, slot, options.chunkBytesTarget ?? limits.snapshotChunkBytesTarget,
        options.chunkWritten ?? null);
      const counts = encoder.writeAll(options.idempotency);
      if (slot.expired()) throw pinExpired();
      // Checked once the pin is known to hold (under an expired pin the walk may have read reused memory).
      assert(counts.tasks === store.roots[layout.rootTaskCountWord], 'every task written once');
      assert(counts.configs === store.roots[layout.rootConfigCountWord], 'every config written once');
      file.frame(frameTypeEnd, endPayload(options, file.createdMs, counts));
      file.sync();
      // Released before the rename: true means the pin held all along, so every byte read was of `revision`.
      if (!slot.release()) throw pinExpired();
      file.close();
      failpoint(`${points}.before-rename`);
      renameSync(`${path}.tmp`, path);
      failpoint(`${points}.after-rename`);
      fsyncDirectory(options.directory);
      return { path, revision: options.revision, bytes: file.offset, tasks: counts.tasks, configs: counts.configs,
        chunks: file.index - 1, ms: performance.now() - startMs };
    } catch (error) {
      file.discard();
      throw error;
    }
  } finally {
    slot.close();
  }
}

/** A StoreReader over the pinned root block, checked against the slot and the revision asked for. */
function pinnedStore(options: SnapshotWriteOptions, slot: ReaderSlot, root: number): StoreReader {
  const view = new ArenaView(options.arena);
  const store = new StoreReader(view, new Uint32Array(layout.rootWords));
  assert(root > 0 && (root & 7) === 0, 'a pinned root block');
  store.roots.set(view.u32.subarray(root >>> 2, (root >>> 2) + layout.rootWords));
  store.revision = view.f64[(root >>> 3) + layout.rootRevisionF64]!;
  const control = new Int32Array(options.control);
  const pinned = Atomics.load(control, layout.slotWord(slot.slot, layout.slotEpochWord));
  assert(store.roots[layout.rootEpochWord] === (pinned >>> 0), 'the root block is of the pinned epoch');
  if (store.revision !== options.revision) {
    throw new SnapshotError(`the pinned revision is ${store.revision}, not ${options.revision}: pin it in the ` +
      'writer thread right after its publish (pinPublishedLong)');
  }
  return store;
}

interface Counts {
  configs: number; tasks: number; cronJobs: number; jobUpdates: number; quotas: number; hosts: number;
  maintenance: number; idempotency: number;
}

function endPayload(options: SnapshotWriteOptions, createdMs: number, counts: Counts): Uint8Array {
  const b = new flatbuffers.Builder(256);
  SnapshotEnd.startSnapshotEnd(b);
  SnapshotEnd.addRevision(b, BigInt(options.revision));
  SnapshotEnd.addTerm(b, BigInt(options.term));
  SnapshotEnd.addCreatedMs(b, BigInt(createdMs));
  SnapshotEnd.addConfigs(b, BigInt(counts.configs));
  SnapshotEnd.addTasks(b, BigInt(counts.tasks));
  SnapshotEnd.addCronJobs(b, BigInt(counts.cronJobs));
  SnapshotEnd.addJobUpdates(b, BigInt(counts.jobUpdates));
  SnapshotEnd.addQuotas(b, BigInt(counts.quotas));
  SnapshotEnd.addHosts(b, BigInt(counts.hosts));
  SnapshotEnd.addMaintenance(b, BigInt(counts.maintenance));
  SnapshotEnd.addIdempotency(b, BigInt(counts.idempotency));
  b.finish(SnapshotEnd.endSnapshotEnd(b));
  return b.asUint8Array();
}

// --------------------------------------------------------------------------------------------------------------

/** The file being written: header, then frames with the chained CRC. */
class FrameFile {
  readonly path: string;
  readonly createdMs: number;
  private fd: number;
  offset = 0;
  index = 0;
  private crc: number;
  private buffer = new Uint8Array(limits.snapshotChunkBytesTarget + 64 * 1024);
  private readonly idleRatio: number;
  private busySince = performance.now();
  private unsynced = 0;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));
  private readonly pointWrite: string;
  private readonly pointSync: string;

  constructor(path: string, revision: number, createdMs: number, magic: Magic, idleRatio = 0,
    points: 'snapshot' | 'backup' = 'snapshot') {
    this.path = path;
    this.createdMs = createdMs;
    this.idleRatio = idleRatio;
    this.pointWrite = `${points}.write`;
    this.pointSync = `${points}.sync`;
    this.fd = openSync(path, 'w', 0o644);
    const header = encodeHeader(magic, BigInt(revision), BigInt(createdMs));
    this.crc = header.readUInt32LE(124);
    try {
      this.write(header);
    } catch (error) {
      // The caller has no FrameFile to discard yet: the temporary file must not outlive a failed header write.
      this.discard();
      throw error;
    }
  }

  frame(type: number, payload: Uint8Array): void {
    assert(payload.length <= limits.snapshotChunkBytesMax, 'a chunk over snapshotChunkBytesMax');
    const total = frameBytes(payload.length);
    if (this.buffer.length < total) this.buffer = new Uint8Array(total + 64 * 1024);
    const out = this.buffer;
    this.crc = writeFrameHeader(out, 0, type, this.index, payload, 0, payload.length, this.crc);
    out.set(payload, frameHeaderBytes);
    out.fill(0, frameHeaderBytes + payload.length, total);
    this.write(out.subarray(0, total));
    this.index++;
    this.pace(total);
  }

  /**
   * Keeps a snapshot from crowding out the writer on a small machine: every 32 MiB the file is synced (writeback in
   * steps, not one burst that a log fdatasync would queue behind), and after each chunk the worker sleeps
   * idleRatio times the time it just worked (1: half a core at most).
   */
  private pace(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced >= 32 * 1024 * 1024) {
      fdatasyncSync(this.fd);
      this.unsynced = 0;
    }
    if (this.idleRatio <= 0) return;
    const now = performance.now();
    const sleepMs = Math.min(1000, (now - this.busySince) * this.idleRatio);
    Atomics.wait(this.sleeper, 0, 0, sleepMs);
    this.busySince = performance.now();
  }

  private write(bytes: Uint8Array): void {
    if (failpoint(this.pointWrite) === 'partial') {
      writeSync(this.fd, bytes, 0, bytes.length >>> 1);
      crashNow();
    }
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done);
    this.offset += bytes.length;
    assert((this.offset & 7) === 0, 'frames start at multiples of 8');
  }

  sync(): void {
    failpoint(this.pointSync);
    fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }

  /**
   * After a failure: the temporary file goes (best effort: a snapshot's next attempt at the same revision would
   * overwrite it, but a backup's next name differs, so a leftover would stay).
   */
  discard(): void {
    try {
      this.close();
      unlinkSync(this.path);
    } catch {
      // Already gone, or the directory failed: the error being thrown is the one that matters.
    }
  }
}

// --------------------------------------------------------------------------------------------------------------

type Kind = 'configs' | 'tasks' | 'cronJobs' | 'jobUpdates' | 'quotas' | 'hosts' | 'maintenance' | 'idempotency';

/** Encodes the records of the pinned revision into chunks and hands each chunk to the file. */
class ChunkEncoder {
  private readonly store: StoreReader;
  private readonly view: ArenaView;
  private readonly file: FrameFile;
  private readonly slot: ReaderSlot;
  private readonly target: number;
  private readonly chunkWritten: ((index: number) => void) | null;
  private readonly b = new flatbuffers.Builder(limits.snapshotChunkBytesTarget + 64 * 1024);
  private readonly lists: Record<Kind, number[]> = {
    configs: [], tasks: [], cronJobs: [], jobUpdates: [], quotas: [], hosts: [], maintenance: [], idempotency: [],
  };
  private configRefs: number[] = [];
  private scheduler = 0;
  private readonly counts: Counts = {
    configs: 0, tasks: 0, cronJobs: 0, jobUpdates: 0, quotas: 0, hosts: 0, maintenance: 0, idempotency: 0,
  };
  private readonly records: RecordEncoder;   // reset with every cleared builder (a chunk's own offsets)

  constructor(store: StoreReader, file: FrameFile, slot: ReaderSlot, target: number,
    chunkWritten: ((index: number) => void) | null) {
    this.store = store;
    this.view = store.view;
    this.file = file;
    this.slot = slot;
    this.target = target;
    this.chunkWritten = chunkWritten;
    this.records = new RecordEncoder(store, this.b);
  }

  writeAll(idempotency: IdempotencyRecord[]): Counts {
    const refs = this.configReferences();
    this.configs(refs);
    this.tasks();
    this.keyedRecords('cronJobs', layout.rootCronWord, threeKeyShape);
    this.updates();
    this.keyedRecords('quotas', layout.rootQuotaWord, oneKeyShape);
    this.keyedRecords('hosts', layout.rootHostAttributesWord, oneKeyShape);
    this.keyedRecords('maintenance', layout.rootMaintenanceWord, oneKeyShape);
    this.schedulerMetadata();
    for (const entry of idempotency) this.idempotencyEntry(entry);
    this.flush();
    return this.counts;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Chunks

  private add(kind: Kind, offset: number): void {
    this.lists[kind].push(offset);
    this.counts[kind]++;
  }

  private flushIfFull(): void {
    if (this.b.offset() >= this.target) this.flush();
  }

  /** Finishes the chunk being built (if it holds anything), writes it, checks the pin. */
  private flush(): void {
    const b = this.b;
    const lists = this.lists;
    if (b.offset() === 0 && this.scheduler === 0) return;
    const vector = (kind: Kind, create: (b: flatbuffers.Builder, data: number[]) => number): number =>
      lists[kind].length === 0 ? 0 : create(b, lists[kind]);
    const configs = vector('configs', SnapshotChunk.createConfigsVector);
    const refs = this.configRefs.length === 0 ? 0 : SnapshotChunk.createConfigRefsVector(b, this.configRefs);
    const tasks = vector('tasks', SnapshotChunk.createTasksVector);
    const cron = vector('cronJobs', SnapshotChunk.createCronJobsVector);
    const updates = vector('jobUpdates', SnapshotChunk.createJobUpdatesVector);
    const quotas = vector('quotas', SnapshotChunk.createQuotasVector);
    const hosts = vector('hosts', SnapshotChunk.createHostsVector);
    const maintenance = vector('maintenance', SnapshotChunk.createMaintenanceVector);
    const idempotency = vector('idempotency', SnapshotChunk.createIdempotencyVector);
    SnapshotChunk.startSnapshotChunk(b);
    if (configs !== 0) SnapshotChunk.addConfigs(b, configs);
    if (refs !== 0) SnapshotChunk.addConfigRefs(b, refs);
    if (tasks !== 0) SnapshotChunk.addTasks(b, tasks);
    if (cron !== 0) SnapshotChunk.addCronJobs(b, cron);
    if (updates !== 0) SnapshotChunk.addJobUpdates(b, updates);
    if (quotas !== 0) SnapshotChunk.addQuotas(b, quotas);
    if (hosts !== 0) SnapshotChunk.addHosts(b, hosts);
    if (maintenance !== 0) SnapshotChunk.addMaintenance(b, maintenance);
    if (this.scheduler !== 0) SnapshotChunk.addScheduler(b, this.scheduler);
    if (idempotency !== 0) SnapshotChunk.addIdempotency(b, idempotency);
    b.finish(SnapshotChunk.endSnapshotChunk(b));
    this.file.frame(frameTypeChunk, b.asUint8Array());
    b.clear();
    for (const kind of Object.keys(lists) as Kind[]) lists[kind].length = 0;
    this.configRefs = [];
    this.scheduler = 0;
    this.records.reset();
    if (this.slot.expired()) throw pinExpired();
    this.chunkWritten?.(this.file.index - 1);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Configs

  /** References per config row: each task, cron job and instance config of a job update counts one. */
  private configReferences(): number[] {
    const store = this.store;
    const refs: number[] = [];
    const count = (row: number): void => {
      while (refs.length <= row) refs.push(0);
      refs[row]! += 1;
    };
    const cursor = new TreeCursor(this.view, taskIdShape);
    for (let ok = cursor.seek(store.roots[layout.rootTaskIdTreeWord]!, null, taskIdShape); ok; ok = cursor.next()) {
      count(store.taskWord(store.taskRecord(cursor.value(0)), layout.taskConfigRowWord));
    }
    this.walk(layout.rootCronWord, threeKeyShape, (blob) => {
      const job = JobConfiguration.getRootAsJobConfiguration(new flatbuffers.ByteBuffer(store.blobBytes(blob)));
      count(this.configRow(job.configHashArray()));
    });
    this.walk(layout.rootUpdateWord, fourKeyShape, (record) => {
      const blob = this.view.u32[(record >>> 2) + layout.updateBlobWord]!;
      const instructions = JobUpdate.getRootAsJobUpdate(new flatbuffers.ByteBuffer(store.blobBytes(blob))).instructions();
      assert(instructions !== null, 'a stored update has instructions');
      for (let i = 0; i < instructions.initialStateLength(); i++) {
        count(this.configRow(instructions.initialState(i)!.configHashArray()));
      }
      const desired = instructions.desiredState();
      if (desired !== null) count(this.configRow(desired.configHashArray()));
    });
    return refs;
  }

  private configRow(hash: Uint8Array | null): number {
    assert(hash !== null && hash.length === 16, 'a stored reference names a config by its hash');
    const word = (i: number): number =>
      ((hash[i]! << 24) | (hash[i + 1]! << 16) | (hash[i + 2]! << 8) | hash[i + 3]!) >>> 0;
    const row = this.store.find4(layout.rootConfigHashWord, word(0), word(4), word(8), word(12));
    assert(row !== 0, 'a reference to a stored config');
    return row;
  }

  private configs(refs: number[]): void {
    const store = this.store;
    const cursor = new TreeCursor(this.view, fourKeyShape);
    for (let ok = cursor.seek(store.roots[layout.rootConfigHashWord]!, null, fourKeyShape); ok; ok = cursor.next()) {
      const row = cursor.value(0);
      const blob = store.configBlob(row);
      assert((refs[row] ?? 0) > 0, 'a stored config is referenced');
      this.add('configs', this.records.storedConfig(blob));
      this.configRefs.push(refs[row]!);
      this.flushIfFull();
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Tasks

  private tasks(): void {
    const store = this.store;
    const cursor = new TreeCursor(this.view, taskIdShape);
    for (let ok = cursor.seek(store.roots[layout.rootTaskIdTreeWord]!, null, taskIdShape); ok; ok = cursor.next()) {
      this.add('tasks', this.records.task(store.taskRecord(cursor.value(0))));
      this.flushIfFull();
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Small tables: cron jobs, quotas, hosts, maintenance (record blobs), job updates, the scheduler

  /** Visits the values of a table's tree in key order. */
  private walk(rootWord: number, shape: typeof oneKeyShape, visit: (value: number) => void): void {
    const cursor = new TreeCursor(this.view, shape);
    for (let ok = cursor.seek(this.store.roots[rootWord]!, null, shape); ok; ok = cursor.next()) visit(cursor.value(0));
  }

  /** Every record blob of a keyed table, with its mod_revision (RecordEncoder.keyedRecord). */
  private keyedRecords(kind: 'cronJobs' | 'quotas' | 'hosts' | 'maintenance', rootWord: number,
    shape: typeof oneKeyShape): void {
    const table: KeyedTable = kind === 'cronJobs' ? RecordTable.CRON_JOB : kind === 'quotas' ? RecordTable.QUOTA :
      kind === 'hosts' ? RecordTable.HOST_ATTRIBUTES : RecordTable.MAINTENANCE_REQUEST;
    this.walk(rootWord, shape, (blob) => {
      this.add(kind, this.records.keyedRecord(table, blob));
      this.flushIfFull();
    });
  }

  private schedulerMetadata(): void {
    const blob = this.store.roots[layout.rootSchedulerWord]!;
    if (blob === 0) return;
    this.scheduler = this.records.schedulerMetadata(blob);
  }

  private updates(): void {
    this.walk(layout.rootUpdateWord, fourKeyShape, (record) => {
      this.update(record);
      this.counts.jobUpdates++;
    });
  }

  /**
   * One job update: its entry holds the update and as many events as fit in the chunk (update events, then
   * instance events, each kind oldest first); the rest continue in entries of the next chunks, whose update has
   * only summary.key (no instructions). The stored update is written as stored: without its derived state.
   */
  private update(record: number): void {
    const b = this.b;
    const records = this.records;
    const { update: stored, modRevision, events, instanceEvents } = records.updateParts(record);
    const key = stored.summary!.key!;
    let next = 0;     // index into events, then instance events
    const total = events.length + instanceEvents.length;
    for (let first = true; first || next < total; first = false) {
      const update = first ? stored : new JobUpdateT(new JobUpdateSummaryT(
        new JobUpdateKeyT(new JobKeyT(key.job!.role, key.job!.environment, key.job!.name), key.id)), null);
      const updateOffset = update.pack(b);
      const updateEvents: number[] = [];
      const instanceOffsets: number[] = [];
      while (next < total && (updateEvents.length + instanceOffsets.length === 0 || b.offset() < this.target)) {
        if (next < events.length) updateEvents.push(records.updateEvent(events[next]!));
        else instanceOffsets.push(records.instanceUpdateEvent(instanceEvents[next - events.length]!));
        next++;
      }
      this.lists.jobUpdates.push(records.updateDetails(updateOffset, updateEvents, instanceOffsets, modRevision));
      if (next < total) this.flush();
    }
    this.flushIfFull();
  }

  private idempotencyEntry(entry: IdempotencyRecord): void {
    const b = this.b;
    const client = b.createString(entry.clientId);
    const result = b.createByteVector(entry.result);
    this.add('idempotency', IdempotencyEntry.createIdempotencyEntry(b, client, entry.sequence, result));
    this.flushIfFull();
  }
}
