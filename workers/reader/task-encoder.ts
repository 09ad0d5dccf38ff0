/**
 * A specialised FlatBuffers writer for the hot query result: QueryResponse { TasksResult { tasks, configs } }.
 * Owner: a reader thread.
 *
 * The generic JS Builder costs about a microsecond a table; a job's 50 tasks with their events are ~500 tables.
 * This writer lays the same schema out front to back in one reused buffer, with fixed table layouts and vtables
 * written once per response, copying strings straight from the arena. The bytes are ordinary FlatBuffers:
 * any reader of schema.fbs decodes them (tests decode them with the generated code and check them with flatc).
 *
 * Invariants:
 * - Every uoffset points forward (a parent is written before its children, then patched), as the format requires.
 * - Every scalar is naturally aligned from the start of the buffer, and 8-byte fields and nested config buffers
 *   are 8-aligned; the result is copied into a fresh ArrayBuffer (which starts 8-aligned).
 * - An absent field (empty string, no ports) is left out through the vtable, never written as an empty value.
 */
import { assert } from '../../core/assert.js';
import { Result } from '../../core/fbs/strata.js';

// Table layouts: field -> byte offset inside the table (0 = absent), and the table's inline size.
// QueryResponse: 0 revision long, 1 result_type ubyte, 2 result offset, 3 error offset.
const responseLayout = { size: 24, fields: [8, 16, 4, 0] };
// TasksResult: 0 tasks, 1 configs, 2 total.
const tasksResultLayout = { size: 16, fields: [4, 8, 12] };
// ScheduledTask: 0 assigned_task, 1 status, 2 failure_count, 3 times_partitioned, 4 task_events, 5 ancestor_id,
// 6 mod_revision, 7 create_revision.
const taskSize = 41;
const taskFields = [4, 40, 28, 32, 24, 36, 8, 16];
// AssignedTask: 0 task_id, 1 slave_id, 2 slave_host, 3 task (never in results), 4 assigned_ports, 5 instance_id,
// 6 config_hash.
const assignedSize = 28;
const assignedFields = [4, 8, 12, 0, 16, 20, 24];
// TaskEvent: 0 timestamp, 1 status, 2 message, 3 scheduler.
const eventSize = 21;
const eventFields = [8, 20, 4, 16];
// Port: 0 name, 1 port. StoredConfig: 0 hash, 1 bytes.
const pairLayout = { size: 12, fields: [4, 8] };

interface Vtables {
  bytes: Uint8Array;
  response: number;
  tasksResult: number;
  task: number[];          // [without ancestor, with ancestor]
  assigned: number[];      // by presence bits: 1 slave_id, 2 slave_host, 4 assigned_ports
  event: number[];         // by presence bits: 1 message, 2 scheduler
  pair: number;
}

/** All vtables a tasks response can need, laid out once; copied to the start of every response. */
function buildVtables(): Vtables {
  const parts: number[][] = [];
  let at = 8; // after the root offset and padding
  const add = (size: number, fields: number[]): number => {
    const position = at;
    const table = [4 + fields.length * 2, size, ...fields];
    parts.push(table);
    at += table.length * 2;
    return position;
  };
  const response = add(responseLayout.size, responseLayout.fields);
  const tasksResult = add(tasksResultLayout.size, tasksResultLayout.fields);
  const task = [0, 1].map((ancestor) => add(taskSize, taskFields.map((f, i) => (i === 5 && !ancestor ? 0 : f))));
  const assigned = [0, 1, 2, 3, 4, 5, 6, 7].map((bits) => add(assignedSize, assignedFields.map((f, i) =>
    (i === 1 && !(bits & 1)) || (i === 2 && !(bits & 2)) || (i === 4 && !(bits & 4)) ? 0 : f)));
  const event = [0, 1, 2, 3].map((bits) => add(eventSize, eventFields.map((f, i) =>
    (i === 2 && !(bits & 1)) || (i === 3 && !(bits & 2)) ? 0 : f)));
  const pair = add(pairLayout.size, pairLayout.fields);
  const bytes = new Uint8Array((at + 7) & ~7);
  const view = new DataView(bytes.buffer);
  let position = 8;
  for (const table of parts) for (const value of table) { view.setUint16(position, value, true); position += 2; }
  return { bytes, response, tasksResult, task, assigned, event, pair };
}

const vtables = buildVtables();

export class TaskResponseWriter {
  private bytes = new Uint8Array(1 << 20);
  private view = new DataView(this.bytes.buffer);
  private end = 0;

  /** Starts a response; returns the positions to patch: the tasks vector's entries start and configs slot. */
  begin(revision: number, taskCount: number, total: number): void {
    this.end = 0;
    this.sharedSlots.length = 0;
    this.sharedIds.length = 0;
    this.reserve(vtables.bytes.length + 64 + taskCount * 4);
    this.bytes.set(vtables.bytes, 0);
    this.end = vtables.bytes.length;
    const response = this.table(vtables.response, responseLayout.size, 8);
    this.view.setUint32(0, response, true);
    this.int64(response + 8, revision);
    this.bytes[response + 16] = Result.TasksResult;
    const result = this.table(vtables.tasksResult, tasksResultLayout.size, 4);
    this.patch(response + 4, result);
    this.view.setInt32(result + 12, total, true);
    this.resultTable = result;
    this.patch(result + 4, this.vector(taskCount, 4));
    this.taskEntry = this.vectorStart + 4;
  }

  private resultTable = 0;
  private vectorStart = 0;
  private taskEntry = 0;

  /** Begins the next task; the caller fills it with the methods below, in this order. */
  task(hasAncestor: boolean): number {
    const table = this.table(vtables.task[hasAncestor ? 1 : 0]!, taskSize, 8);
    this.patch(this.taskEntry, table);
    this.taskEntry += 4;
    return table;
  }

  taskScalars(table: number, status: number, failureCount: number, timesPartitioned: number, modRevision: number,
    createRevision: number): void {
    this.bytes[table + 40] = status;
    this.view.setInt32(table + 28, failureCount, true);
    this.view.setInt32(table + 32, timesPartitioned, true);
    this.int64(table + 8, modRevision);
    this.int64(table + 16, createRevision);
  }

  /** The AssignedTask of a task; presence bits: 1 slave_id, 2 slave_host, 4 assigned_ports. */
  assigned(task: number, bits: number, instanceId: number): number {
    const table = this.table(vtables.assigned[bits]!, assignedSize, 4);
    this.patch(task + 4, table);
    this.view.setInt32(table + 20, instanceId, true);
    return table;
  }

  // Interned strings (hosts, scheduler names) are written once per response, at the end: a uoffset must point
  // forward, so every field that refers to one is remembered here and patched in finish().
  private sharedSlots: number[] = [];
  private sharedIds: number[] = [];

  /** Points the field at `slot` to the interned string `id`, written once per response (in finish()). */
  sharedString(slot: number, id: number): void {
    this.sharedSlots.push(slot);
    this.sharedIds.push(id);
  }

  private writeShared(source: Uint8Array, u32: Uint32Array, blobOf: (id: number) => number): void {
    const written = new Map<number, number>();
    const slots = this.sharedSlots;
    const ids = this.sharedIds;
    for (let i = 0; i < slots.length; i++) {
      const id = ids[i]!;
      let at = written.get(id);
      if (at === undefined) {
        const blob = blobOf(id);
        const length = u32[blob >>> 2]!;
        this.reserve(length + 8);
        this.align(4);
        at = this.end;
        this.view.setUint32(at, length, true);
        this.bytes.set(source.subarray(blob + 4, blob + 4 + length), at + 4);
        this.bytes[at + 4 + length] = 0;
        this.end = at + 4 + length + 1;
        written.set(id, at);
      }
      this.patch(slots[i]!, at);
    }
    slots.length = 0;
    ids.length = 0;
  }

  /** Writes a string from `source[start, start + length)` and points the field at `slot` to it. */
  string(slot: number, source: Uint8Array, start: number, length: number): void {
    this.reserve(length + 8);
    this.align(4);
    const at = this.end;
    this.view.setUint32(at, length, true);
    const bytes = this.bytes;
    if (length <= 64) {
      for (let i = 0; i < length; i++) bytes[at + 4 + i] = source[start + i]!; // cheaper than a subarray
    } else {
      bytes.set(source.subarray(start, start + length), at + 4);
    }
    bytes[at + 4 + length] = 0;
    this.end = at + 4 + length + 1;
    this.patch(slot, at);
  }

  /** A vector of bytes (8-aligned contents, for nested buffers) pointed to from `slot`. */
  byteVector(slot: number, source: Uint8Array): void {
    this.reserve(source.length + 16);
    this.alignWithPrefix(8);
    const at = this.end;
    this.view.setUint32(at, source.length, true);
    this.bytes.set(source, at + 4);
    this.end = at + 4 + source.length;
    this.patch(slot, at);
  }

  /** A vector of `count` table offsets pointed to from `slot`; returns the position of entry 0. */
  offsets(slot: number, count: number): number {
    this.patch(slot, this.vector(count, 4));
    return this.vectorStart + 4;
  }

  port(entry: number, port: number): number {
    const table = this.table(vtables.pair, pairLayout.size, 4);
    this.patch(entry, table);
    this.view.setInt32(table + 8, port, true);
    return table;
  }

  /** A TaskEvent; presence bits: 1 message, 2 scheduler. */
  event(entry: number, bits: number, timestamp: number, status: number): number {
    const table = this.table(vtables.event[bits]!, eventSize, 8);
    this.patch(entry, table);
    this.int64(table + 8, timestamp);
    this.bytes[table + 20] = status;
    return table;
  }

  /** Starts the configs vector (after the last task). */
  configs(count: number): number {
    return this.offsets(this.resultTable + 8, count);
  }

  storedConfig(entry: number, hash: Uint8Array, bytes: Uint8Array): void {
    const table = this.table(vtables.pair, pairLayout.size, 4);
    this.patch(entry, table);
    this.byteVector(table + 4, hash);
    this.byteVector(table + 8, bytes);
  }

  get bytesWritten(): number {
    return this.end;
  }

  /** Ends the response; `source` and `u32` are the arena's views and `blobOf` finds an interned string's blob. */
  finish(source: Uint8Array, u32: Uint32Array, blobOf: (id: number) => number): Uint8Array {
    this.writeShared(source, u32, blobOf);
    this.align(8);
    return this.bytes.slice(0, this.end);
  }

  // ---------------------------------------------------------------------------------------------------------

  /** A little-endian int64 from a safe integer, without BigInt. */
  private int64(at: number, value: number): void {
    const high = Math.floor(value / 4294967296);
    this.view.setUint32(at, value - high * 4294967296, true);
    this.view.setInt32(at + 4, high, true);
  }

  private table(vtable: number, size: number, alignment: number): number {
    this.reserve(size + 16);
    this.align(alignment);
    const at = this.end;
    this.bytes.fill(0, at, at + size);
    this.view.setInt32(at, at - vtable, true);
    this.end = at + size;
    return at;
  }

  private vector(count: number, elementBytes: number): number {
    this.reserve(count * elementBytes + 16);
    this.align(4);
    const at = this.end;
    this.view.setUint32(at, count, true);
    this.bytes.fill(0, at + 4, at + 4 + count * elementBytes);
    this.end = at + 4 + count * elementBytes;
    this.vectorStart = at;
    return at;
  }

  private patch(slot: number, target: number): void {
    assert(target > slot, 'a uoffset points forward');
    this.view.setUint32(slot, target - slot, true);
  }

  private align(alignment: number): void {
    while ((this.end & (alignment - 1)) !== 0) this.bytes[this.end++] = 0;
  }

  /** Aligns so that the contents after a 4-byte length prefix are aligned. */
  private alignWithPrefix(alignment: number): void {
    while (((this.end + 4) & (alignment - 1)) !== 0) this.bytes[this.end++] = 0;
  }

  private reserve(bytes: number): void {
    if (this.end + bytes + 8 <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.end + bytes + 8) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.end));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }
}
