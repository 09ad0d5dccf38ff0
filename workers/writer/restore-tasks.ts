/**
 * The tasks of a snapshot, loaded in bulk. Owner: the writer thread, at startup (restore.ts); tests run it in
 * their own thread.
 *
 * Invariants:
 * - Tasks arrive in task id order (the snapshot's order, docs/formats.md), strictly increasing: an id out of
 *   order or twice is a FormatError. Task i of the file gets row i.
 * - The result equals storing each task as new through the Applier (apply.ts upsertTask), as the load did before:
 *   the same records, rows, interned string ids (interned in the same order: a task's host, then its events'
 *   schedulers), config reference counts, index entries and aggregates (restore-jobs.ts: the same sums, bit for
 *   bit). Only the arena layout differs: the rows trie and the indexes are built bottom-up from sorted keys once
 *   every task is read (core/btree.ts treeBuild, core/radix.ts radixBuild: fuller nodes), and each aggregate block
 *   is written once.
 * - Until finish(), the rows trie, the task indexes and the aggregates are not in the tables: nothing may read or
 *   change them in between (restore.ts calls finish() before any record of a later kind, and at the end).
 * - No object, array or string is made per task: a task's bytes go from the chunk straight into the arena; strings
 *   that are interned (hosts, scheduler names) are found by their bytes and decoded only the first time.
 */
import * as flatbuffers from 'flatbuffers';
import { assert } from '../../core/assert.js';
import { stringBlobBytes, type ArenaView } from '../../core/arena.js';
import { treeBuild } from '../../core/btree.js';
import type { FormatError } from '../../core/files.js';
import * as layout from '../../core/layout.js';
import { radixBuild } from '../../core/radix.js';
import { pairShape, taskIdShape } from '../../core/store.js';
import { text } from '../../core/text.js';
import { grownU32, TaskJobs } from './restore-jobs.js';
import { BytesTable, hashBytes, WordKeyTable, PositionCache } from './restore-lookup.js';
import type { ConfigInfo, Tables } from './tables.js';

// vtable offsets of the fields read (schema.fbs field index i: 4 + 2 i).
const taskAssignedField = 4;           // ScheduledTask.assigned_task
const taskStatusField = 6;             // ScheduledTask.status (byte)
const taskFailureCountField = 8;
const taskTimesPartitionedField = 10;
const taskEventsField = 12;
const taskAncestorField = 14;
const taskModRevisionField = 16;
const taskCreateRevisionField = 18;
const assignedIdField = 4;             // AssignedTask.task_id
const assignedSlaveIdField = 6;
const assignedSlaveHostField = 8;
const assignedPortsField = 12;
const assignedInstanceField = 14;
const assignedConfigHashField = 16;
const eventTimestampField = 4;         // TaskEvent.timestamp (long)
const eventStatusField = 6;
const eventMessageField = 8;
const eventSchedulerField = 10;
const portNameField = 4;               // Port.name
const portPortField = 6;

const statusCount = layout.statusValueCount;

// What a task needs of its config, by config index (0, 1, 2, ... in file order), side by side in one typed array:
// a task reads one cache line, not three objects (the ConfigInfo by way of an array of them).
const configRowWord = 0;
const configRoleWord = 1;
const configEnvWord = 2;
const configNameWord = 3;
const configRefsWord = 4;              // references of the tasks loaded so far: added to the config's in finish()
const configWords = 5;

function i32(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24);
}

/** The offset of a field from its table (0: absent), as flatbuffers.ByteBuffer.__offset reads it. */
function fieldOffset(bytes: Uint8Array, table: number, field: number): number {
  const vtable = table - i32(bytes, table);
  const vtableBytes = bytes[vtable]! | (bytes[vtable + 1]! << 8);
  return field < vtableBytes ? bytes[vtable + field]! | (bytes[vtable + field + 1]! << 8) : 0;
}

function int32Field(bytes: Uint8Array, table: number, field: number): number {
  const offset = fieldOffset(bytes, table, field);
  return offset === 0 ? 0 : i32(bytes, table + offset);
}

function int8Field(bytes: Uint8Array, table: number, field: number): number {
  const offset = fieldOffset(bytes, table, field);
  return offset === 0 ? 0 : (bytes[table + offset]! << 24) >> 24;
}

/** A long as a number (revisions and timestamps are exact to 2^53), without a BigInt. */
function int64Field(bytes: Uint8Array, table: number, field: number): number {
  const offset = fieldOffset(bytes, table, field);
  if (offset === 0) return 0;
  return i32(bytes, table + offset + 4) * 4294967296 + (i32(bytes, table + offset) >>> 0);
}

/** The position of the length word of a string or vector field (0: absent). */
function referenceField(bytes: Uint8Array, table: number, field: number): number {
  const offset = fieldOffset(bytes, table, field);
  return offset === 0 ? 0 : table + offset + i32(bytes, table + offset);
}

/** The big-endian key word of bytes [start + at, start + at + 4) of a string of `length` bytes, zero-padded. */
function prefixWordAt(bytes: Uint8Array, start: number, length: number, at: number): number {
  let word = 0;
  for (let i = at; i < at + 4; i++) word = (word << 8) | (i < length ? bytes[start + i]! : 0);
  return word >>> 0;
}

export class TaskLoader {
  private readonly tables: Tables;
  private readonly error: (message: string) => FormatError;
  private revisionMax = 0;
  private finished = false;
  private readonly configs: ConfigInfo[] = [];                    // by config index
  private configWords = new Uint32Array(64 * configWords);
  private readonly configsByHash = new WordKeyTable();              // config hash -> config index
  private readonly stringIds = new BytesTable();                  // UTF-8 bytes -> interned id (0: empty)
  private readonly stringsAt = new PositionCache();               // a chunk's shared string -> interned id
  private stringRefs = new Uint32Array(1024);                     // by string id: references to add in finish()
  private chunkBytes: Uint8Array | null = null;
  private chunkBuffer: flatbuffers.ByteBuffer | null = null;
  // Per row (the task's index in the file).
  count = 0;
  private records = new Uint32Array(1024);
  private idEntries = new Uint32Array(1024 * 4);               // taskIdShape entries: prefix, prefix, blob, row
  private configOfRow = new Uint32Array(1024);                  // the config index
  private statusOfRow = new Uint32Array(1024);
  private hostOfRow = new Uint32Array(1024);
  private readonly jobs = new TaskJobs();

  constructor(tables: Tables, error: (message: string) => FormatError) {
    this.tables = tables;
    this.error = error;
  }

  /** A stored config that tasks may name by hash. */
  addConfig(hash: Uint8Array, info: ConfigInfo): void {
    const index = this.configs.length;
    this.configs.push(info);
    this.configWords = grownU32(this.configWords, (index + 1) * configWords);
    const at = index * configWords;
    this.configWords[at + configRowWord] = info.row;
    this.configWords[at + configRoleWord] = info.roleId;
    this.configWords[at + configEnvWord] = info.envId;
    this.configWords[at + configNameWord] = info.nameId;
    this.configWords[at + configRefsWord] = 0;
    this.jobs.addConfig(index, info);
    this.configsByHash.addBytes(hash, 0, index);
  }

  /** Starts a chunk: its bytes, and the snapshot's revision (the bound of every record's revisions). */
  beginChunk(chunkBuffer: flatbuffers.ByteBuffer, revisionMax: number): void {
    this.chunkBuffer = chunkBuffer;
    this.chunkBytes = chunkBuffer.bytes();
    this.revisionMax = revisionMax;
    this.stringsAt.nextChunk();
  }

  private revision(value: number, what: string): number {
    if (!(value >= 1 && value <= this.revisionMax)) {
      throw this.error(`${what} has revision ${value}, outside 1..${this.revisionMax}`);
    }
    return value;
  }

  /** Loads the ScheduledTask at position `table` of the current chunk. */
  task(table: number): void {
    if (this.finished) throw this.error('a task after records of a later kind');
    const bytes = this.chunkBytes!;
    const assigned = referenceField(bytes, table, taskAssignedField);
    if (assigned === 0) throw this.error('a task without assigned_task');
    const id = referenceField(bytes, assigned, assignedIdField);
    const idLength = id === 0 ? 0 : this.lengthAt(bytes, id, 1);
    if (idLength === 0) throw this.error('a task without an id');
    const config = this.config(bytes, assigned);
    const modRevision = this.revision(int64Field(bytes, table, taskModRevisionField), 'a task');
    const createRevision = this.revision(int64Field(bytes, table, taskCreateRevisionField), 'a task\'s creation');
    if (createRevision > modRevision) {
      throw this.error(`task ${text(bytes.subarray(id + 4, id + 4 + idLength))} was created after its last change`);
    }
    const status = int8Field(bytes, table, taskStatusField);
    if (!(status >= 0 && status < statusCount)) throw this.error(`a task has status ${status}`);
    const row = this.count;
    this.grow(row + 1);
    const idBlob = this.copyString(bytes, id + 4, idLength);
    const prefix0 = prefixWordAt(bytes, id + 4, idLength, 0);
    const prefix1 = prefixWordAt(bytes, id + 4, idLength, 4);
    this.checkOrder(row, prefix0, prefix1, idBlob);
    const hostId = this.sharedString(assigned, assignedSlaveHostField);
    const record = this.tables.allocator.alloc(layout.taskRecordBytes);
    const slaveId = this.optionalString(assigned, assignedSlaveIdField);
    const ancestor = this.optionalString(table, taskAncestorField);
    const ports = this.ports(assigned);
    const events = referenceField(bytes, table, taskEventsField);
    const eventCount = events === 0 ? 0 : this.lengthAt(bytes, events, 4);
    let head = 0;
    for (let j = 0; j < eventCount; j++) {
      const at = events + 4 + j * 4;
      head = this.event(head, at + i32(bytes, at));
    }
    const view = this.tables.view;
    const u32 = view.u32;
    const w = record >>> 2;
    const configs = this.configWords;
    const at = config * configWords;
    u32[w + layout.taskIdWord] = idBlob;
    u32[w + layout.taskConfigRowWord] = configs[at + configRowWord]!;
    view.i32[w + layout.taskInstanceWord] = int32Field(bytes, assigned, assignedInstanceField);
    u32[w + layout.taskStatusWord] = status;
    view.i32[w + layout.taskFailureCountWord] = int32Field(bytes, table, taskFailureCountField);
    view.i32[w + layout.taskTimesPartitionedWord] = int32Field(bytes, table, taskTimesPartitionedField);
    u32[w + layout.taskHostWord] = hostId;
    u32[w + layout.taskSlaveIdWord] = slaveId;
    u32[w + layout.taskAncestorWord] = ancestor;
    u32[w + layout.taskPortsWord] = ports;
    u32[w + layout.taskEventsWord] = head;
    u32[w + layout.taskEventCountWord] = eventCount;
    u32[w + layout.taskRoleWord] = configs[at + configRoleWord]!;
    u32[w + layout.taskEnvWord] = configs[at + configEnvWord]!;
    u32[w + layout.taskNameWord] = configs[at + configNameWord]!;
    u32[w + 15] = 0;
    view.f64[(record >>> 3) + layout.taskModRevisionF64] = modRevision;
    view.f64[(record >>> 3) + layout.taskCreateRevisionF64] = createRevision;
    configs[at + configRefsWord]!++;
    this.records[row] = record;
    const entries = this.idEntries;
    entries[row * 4] = prefix0;
    entries[row * 4 + 1] = prefix1;
    entries[row * 4 + 2] = idBlob;
    entries[row * 4 + 3] = row;
    this.configOfRow[row] = config;
    this.statusOfRow[row] = status;
    this.hostOfRow[row] = hostId;
    this.count = row + 1;
  }

  private grow(rows: number): void {
    if (rows <= this.records.length) return;
    this.records = grownU32(this.records, rows);
    this.idEntries = grownU32(this.idEntries, this.records.length * 4);
    this.configOfRow = grownU32(this.configOfRow, this.records.length);
    this.statusOfRow = grownU32(this.statusOfRow, this.records.length);
    this.hostOfRow = grownU32(this.hostOfRow, this.records.length);
  }

  /**
   * The length word of a string or vector at `at` (elements of `elementBytes`), checked to lie in the chunk: a
   * chunk passed its CRC, but its bytes come from a file, and no file byte reaches an assertion or an allocation
   * unchecked.
   */
  private lengthAt(bytes: Uint8Array, at: number, elementBytes: number): number {
    const length = i32(bytes, at);
    if (!(at >= 0 && length >= 0 && at + 4 + length * elementBytes <= bytes.length)) {
      throw this.error(`a string or vector at ${at} runs past the end of the chunk`);
    }
    return length;
  }

  /** The index of the task's config, found by its hash. */
  private config(bytes: Uint8Array, assigned: number): number {
    const hash = referenceField(bytes, assigned, assignedConfigHashField);
    if (hash === 0 || this.lengthAt(bytes, hash, 1) !== 16) throw this.error('a record without a 16-byte config hash');
    const index = this.configsByHash.findBytes(bytes, hash + 4);
    if (index < 0) {
      const hex = Buffer.from(bytes.buffer, bytes.byteOffset + hash + 4, 16).toString('hex');
      throw this.error(`a record names config ${hex}, which the snapshot does not hold`);
    }
    return index;
  }

  /**
   * Task ids must increase strictly, in the order of the task id index (its key words, the first 8 bytes
   * zero-padded, then the whole UTF-8 bytes, shorter first on a common prefix), which is then built from them.
   */
  private checkOrder(row: number, prefix0: number, prefix1: number, idBlob: number): void {
    if (row === 0) return;
    const entries = this.idEntries;
    const previous0 = entries[(row - 1) * 4]!;
    const previous1 = entries[(row - 1) * 4 + 1]!;
    if (previous0 < prefix0 || (previous0 === prefix0 && previous1 < prefix1)) return;
    const view = this.tables.view;
    // Ids are at most textBytesMax bytes (longer ones compare equal past compareBlobs' bound: refused as twice).
    const order = previous0 !== prefix0 || previous1 !== prefix1 ? 1 :
      view.compareBlobs(entries[(row - 1) * 4 + 2]!, idBlob, 8);
    if (order < 0) return;
    const id = view.readString(idBlob);
    throw this.error(order === 0 ? `task ${id} is twice in the snapshot` : `task ${id} is out of task id order`);
  }

  /** Copies `length` bytes at `start` of the chunk into a new string blob. */
  private copyString(bytes: Uint8Array, start: number, length: number): number {
    const blob = this.tables.allocator.alloc(stringBlobBytes(length));
    this.tables.view.u32[blob >>> 2] = length;
    copyBytes(this.tables.view, blob + 4, bytes, start, length);
    return blob;
  }

  /** A string field as a blob, 0 when absent or empty (writeOptionalString). */
  private optionalString(table: number, field: number): number {
    const bytes = this.chunkBytes!;
    const at = referenceField(bytes, table, field);
    if (at === 0) return 0;
    const length = this.lengthAt(bytes, at, 1);
    return length === 0 ? 0 : this.copyString(bytes, at + 4, length);
  }

  /**
   * An interned string field (a host, a scheduler name): its id, with one more reference; 0 when absent or empty.
   * Found by position when the chunk shared it before, else by its bytes; decoded only the first time it is seen.
   * Bytes decode to one string always, so the id found by bytes is the one intern(decoded) gives.
   */
  private sharedString(table: number, field: number): number {
    const bytes = this.chunkBytes!;
    const offset = fieldOffset(bytes, table, field);
    if (offset === 0) return 0;
    const target = table + offset + i32(bytes, table + offset);
    const known = this.stringsAt.get(target);
    if (known >= 0) {
      if (known !== 0) this.stringRefs[known]!++;
      return known;
    }
    const length = this.lengthAt(bytes, target, 1);
    const hash = hashBytes(bytes, target + 4, length);
    let id = this.stringIds.find(bytes, target + 4, length, hash);
    if (id >= 0) {
      if (id !== 0) this.stringRefs[id]!++;
    } else {
      const value = this.chunkBuffer!.__string(table + offset) as string;
      id = value === '' ? 0 : this.tables.intern(value);
      this.stringRefs = grownU32(this.stringRefs, id + 1);
      this.stringIds.add(bytes, target + 4, length, hash, id);
    }
    this.stringsAt.set(target, id);
    return id;
  }

  /** Ports blob (apply.ts writePorts): [u32 bytes][u32 count] then per port [i32 port][u32 name bytes][name, padded]. */
  private ports(assigned: number): number {
    const bytes = this.chunkBytes!;
    const vector = referenceField(bytes, assigned, assignedPortsField);
    const count = vector === 0 ? 0 : this.lengthAt(bytes, vector, 4);
    if (count === 0) return 0;
    let size = 8;
    for (let j = 0; j < count; j++) {
      const name = referenceField(bytes, portAt(bytes, vector, j), portNameField);
      if (name === 0) throw this.error('a port without a name');
      size += 8 + ((this.lengthAt(bytes, name, 1) + 3) & ~3);
    }
    const blob = this.tables.allocator.alloc(size);
    const view = this.tables.view;
    const u32 = view.u32;
    u32[blob >>> 2] = size;
    u32[(blob >>> 2) + 1] = count;
    let at = blob + 8;
    for (let j = 0; j < count; j++) {
      const port = portAt(bytes, vector, j);
      const name = referenceField(bytes, port, portNameField);
      const length = i32(bytes, name);
      view.i32[at >>> 2] = int32Field(bytes, port, portPortField);
      u32[(at >>> 2) + 1] = length;
      const padded = (length + 3) & ~3;
      if (padded > length) u32[((at + 8 + padded) >>> 2) - 1] = 0; // the padding after the name is zero
      copyBytes(view, at + 8, bytes, name + 4, length);
      at += 8 + padded;
    }
    return blob;
  }

  /** Writes one event node on top of `prev` (apply.ts writeEvent); returns it. */
  private event(prev: number, table: number): number {
    const bytes = this.chunkBytes!;
    const message = this.optionalString(table, eventMessageField);
    const scheduler = this.sharedString(table, eventSchedulerField);
    const node = this.tables.allocator.alloc(layout.eventNodeBytes);
    const view = this.tables.view;
    const u32 = view.u32;
    u32[(node >>> 2) + layout.eventPrevWord] = prev;
    u32[(node >>> 2) + layout.eventMessageWord] = message;
    u32[(node >>> 2) + layout.eventSchedulerWord] = scheduler;
    u32[(node >>> 2) + layout.eventStatusWord] = int8Field(bytes, table, eventStatusField);
    view.f64[(node >>> 3) + layout.eventTimestampF64] = int64Field(bytes, table, eventTimestampField);
    return node;
  }

  // ------------------------------------------------------------------------------------------------------------
  // The end of the tasks: rows trie, indexes and aggregates into the tables

  /** Puts the rows trie, the indexes and the aggregates in the tables; no task may come after. Idempotent. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const tables = this.tables;
    const roots = tables.roots;
    for (const word of [layout.rootTaskIdTreeWord, layout.rootJobIndexWord, layout.rootHostIndexWord,
      layout.rootStatusIndexWord, layout.rootRoleAggWord, layout.rootEnvAggWord, layout.rootJobAggWord]) {
      assert(roots[word] === 0, 'the task tables are empty until the bulk load');
    }
    for (let config = 0; config < this.configs.length; config++) {
      const refs = this.configWords[config * configWords + configRefsWord]!;
      if (refs > 0) tables.configRefAgain(this.configs[config]!, refs);
    }
    for (let id = 0; id < this.stringRefs.length; id++) {
      if (this.stringRefs[id]! > 0) tables.internAgain(id, this.stringRefs[id]!);
    }
    const count = this.count;
    tables.claimRows(count);
    radixBuild(tables.context, tables.rows, this.records, count);
    tables.syncRadix();
    roots[layout.rootTaskIdTreeWord] = treeBuild(tables.context, taskIdShape, this.idEntries, count);
    roots[layout.rootJobIndexWord] = this.jobs.jobIndex(tables, this.configOfRow, count);
    roots[layout.rootStatusIndexWord] = this.pairIndex(this.statusOfRow, statusCount, false);
    let hostIdMax = 0;
    for (let row = 0; row < count; row++) if (this.hostOfRow[row]! > hostIdMax) hostIdMax = this.hostOfRow[row]!;
    roots[layout.rootHostIndexWord] = this.pairIndex(this.hostOfRow, hostIdMax + 1, true); // host 0: none
    this.jobs.writeAggregates(tables, this.configOfRow, this.statusOfRow, count);
    tables.taskCount = count;
  }

  /**
   * A (value, row) index, sorted by counting: values below `values`, rows increasing within a value. With
   * `zeroIsNone`, rows whose value is 0 have no entry (a task without a host). Returns its root.
   */
  private pairIndex(valueOfRow: Uint32Array, values: number, zeroIsNone: boolean): number {
    const count = this.count;
    const next = new Uint32Array(values);
    for (let row = 0; row < count; row++) next[valueOfRow[row]!]!++;
    if (zeroIsNone) next[0] = 0;
    let at = 0;
    for (let value = 0; value < values; value++) {
      const tasks = next[value]!;
      next[value] = at;
      at += tasks;
    }
    const entries = new Uint32Array(at * 2);
    for (let row = 0; row < count; row++) {
      const value = valueOfRow[row]!;
      if (value === 0 && zeroIsNone) continue;
      const entry = next[value]!++ * 2;
      entries[entry] = value;
      entries[entry + 1] = row;
    }
    return treeBuild(this.tables.context, pairShape, entries, at);
  }
}

const copyWordsBytesMax = 64; // measured: up to here whole words beat set(subarray), past it set() wins

/**
 * Copies `length` bytes of a chunk to `to` (4-aligned) in the arena. Short strings (most: ids, hosts, messages)
 * go a word at a time: writes to a SharedArrayBuffer cost more than reads, and a subarray per copy costs more
 * than the loop.
 */
function copyBytes(view: ArenaView, to: number, bytes: Uint8Array, start: number, length: number): void {
  if (length > copyWordsBytesMax) {
    view.u8.set(bytes.subarray(start, start + length), to);
    return;
  }
  const u32 = view.u32;
  const word = to >>> 2;
  const whole = length >>> 2;
  for (let i = 0; i < whole; i++) u32[word + i] = i32(bytes, start + i * 4);
  const u8 = view.u8;
  for (let i = whole * 4; i < length; i++) u8[to + i] = bytes[start + i]!;
}

function portAt(bytes: Uint8Array, vector: number, index: number): number {
  const at = vector + 4 + index * 4;
  return at + i32(bytes, at);
}
