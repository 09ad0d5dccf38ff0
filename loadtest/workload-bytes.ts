/**
 * Fast byte writers for the workload's transactions: what benchmarks send at 1M tasks, where the object API
 * (~8 µs a task: the JS builder costs ~100 ns a primitive) would make generation the bottleneck. Owner: benchmark
 * and test processes; never imported by workers/ or daemon/.
 *
 * A bulk task is written as a copy of a template block, then patched. Invariants:
 * - A block is self-contained FlatBuffers data: its tables, vtables, strings and vectors, with every offset in
 *   it relative and pointing inside it. It is a multiple of 8 bytes long and is appended so that it ends at an
 *   8-aligned end-relative offset, so every alignment inside it holds where it lands. A 4-byte length prefix
 *   (createByteVector's) that nothing refers to precedes it.
 * - A template is built once per shape (status, event count, string lengths) with forceDefaults, so every scalar
 *   the patch writes has a slot whatever its value; a patch writes strings of the same length and scalars of the
 *   same size only, and only ASCII (every workload string is ASCII).
 * - A config is appended as its canonical bytes (a finished buffer is a self-contained block too).
 * - Decoding these bytes gives the same objects as decoding `encode()` of the object-API transaction (the tests
 *   check it); the bytes themselves differ: no vtable shared across blocks, defaults written, unused prefixes.
 * - `encodeTransition` is the exception: it writes exactly the object API's bytes (its build order).
 */
import * as flatbuffers from 'flatbuffers';
import { assert } from '../core/assert.js';
import {
  AssignedTask, Op, Operation, Port, ScheduledTask, ScheduleStatus, TaskEvent, Transaction, TransitionTask,
} from '../core/fbs/strata.js';
import { AsciiBuilder, type WorkloadConfig } from './workload-config.js';
import {
  assignedMessagePrefix, eventMessage, eventsMax, hostCount, hostName, portNameHealth, portNameHttp, schedulerHost,
  slaveId, type TaskFacts,
} from './workload-task.js';

export const blockAlignment = 8;         // the largest scalar in any table the workload writes (int64)
export const templateCacheMax = 4096;    // shapes seen in practice: a few hundred
const twoPow32 = 4294967296;

/** An empty vector of offsets, as the generated create…Vector functions write one. */
export function emptyVector(builder: flatbuffers.Builder): flatbuffers.Offset {
  builder.startVector(4, 0, 4);
  return builder.endVector();
}

/** A vector of the first `count` offsets, as the generated create…Vector functions write it. */
export function offsetVector(builder: flatbuffers.Builder, offsets: Int32Array, count: number): flatbuffers.Offset {
  builder.startVector(4, count, 4);
  for (let slot = count - 1; slot >= 0; slot--) builder.addOffset(offsets[slot] as number);
  return builder.endVector();
}

/** Appends a block and returns the end-relative offset where it ends (offsets inside it count from there). */
export function appendBlock(builder: flatbuffers.Builder, block: Uint8Array): number {
  assert(block.length % blockAlignment === 0, 'a block is a multiple of 8 bytes');
  builder.prep(blockAlignment, block.length); // the block ends 8-aligned (and minalign becomes at least 8)
  const end = builder.offset();
  const vector = builder.createByteVector(block);
  assert(vector === end + block.length + 4, 'the block landed right after the alignment');
  return end;
}

/** Appends a config's canonical bytes and returns the offset of its TaskConfig table. */
export function appendConfig(builder: flatbuffers.Builder, config: WorkloadConfig): flatbuffers.Offset {
  const bytes = config.canonical.bytes;
  if (bytes.length % blockAlignment !== 0) return config.config.pack(builder); // a config without int64s
  const root = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  assert(root > 0, 'the canonical root offset is past the root offset itself');
  assert(root < bytes.length, 'the canonical root offset points inside the buffer');
  return appendBlock(builder, bytes) + (bytes.length - root);
}

/** Where in a template block each patched value lives, as end-relative offsets from the block's end. */
class TaskTemplate {
  constructor(
    readonly block: Uint8Array,
    readonly table: number,          // the ScheduledTask table
    readonly taskId: number,         // first character
    readonly slaveId: number,        // first character, -1 without a host
    readonly slaveHost: number,      // first character, -1 without a host
    readonly assignedHost: number,   // the host in the ASSIGNED event's message, -1 without one
    readonly ancestorId: number,     // first character, -1 without an ancestor
    readonly status: number,
    readonly failureCount: number,
    readonly instanceId: number,
    readonly portHttp: number,       // -1 without a host
    readonly portHealth: number,     // -1 without a host
    readonly configHash: number,     // first byte
    readonly eventTimestamps: Int32Array,
  ) {}
}

const templateBuilder = new AsciiBuilder(4096);
const utf8 = new TextEncoder();
const hostNameUtf8: Uint8Array[] = [];  // per host: copying bytes beats writing characters one by one
const slaveIdUtf8: Uint8Array[] = [];
for (let host = 0; host < hostCount; host++) {
  hostNameUtf8.push(utf8.encode(hostName(host)));
  slaveIdUtf8.push(utf8.encode(slaveId(host)));
}
const templates = new Map<number, TaskTemplate>();
const eventOffsets = new Int32Array(eventsMax);

/** A template's shape as a small integer (30 bits: V8 keeps it unboxed, so the Map lookup stays cheap). */
function templateKey(facts: TaskFacts): number {
  const idBytes = facts.taskId.length;
  const ancestorBytes = facts.ancestorId.length;
  const slaveIdBytes = facts.hostIndex >= 0 ? (slaveIdUtf8[facts.hostIndex] as Uint8Array).length : 0;
  assert(idBytes > 0, 'a task id is not empty');
  assert(idBytes < 256, 'workload task ids are shorter than 256 characters');
  assert(ancestorBytes < 256, 'workload ancestor ids are shorter than 256 characters');
  assert(slaveIdBytes < 64, 'workload slave ids are shorter than 64 characters');
  assert(facts.status < 32, 'statuses fit in 5 bits');
  assert(facts.eventCount >= 1, 'a task has an event');
  assert(facts.eventCount <= eventsMax, 'event count <= eventsMax');
  return ((((facts.status * 8 + facts.eventCount) * 64 + slaveIdBytes) * 256 + ancestorBytes) * 256) + idBytes;
}

function templatePorts(builder: flatbuffers.Builder, facts: TaskFacts, into: Int32Array): flatbuffers.Offset {
  if (facts.hostIndex < 0) return emptyVector(builder);
  const names = [builder.createString(portNameHttp), builder.createString(portNameHealth)];
  const ports = [0, 0];
  for (let port = 0; port < 2; port++) {
    Port.startPort(builder);
    Port.addName(builder, names[port] as number);
    Port.addPort(builder, facts.portHttp + port);
    into[port] = builder.offset();
    ports[port] = Port.endPort(builder);
  }
  builder.startVector(4, 2, 4);
  builder.addOffset(ports[1] as number);
  builder.addOffset(ports[0] as number);
  return builder.endVector();
}

function templateEvents(
  builder: flatbuffers.Builder, facts: TaskFacts, timestamps: Int32Array, assignedHost: Int32Array,
): flatbuffers.Offset {
  for (let event = 0; event < facts.eventCount; event++) {
    const status = facts.eventStatuses[event] as ScheduleStatus;
    const message = builder.createString(eventMessage(status, facts.hostIndex));
    if (status === ScheduleStatus.ASSIGNED) assignedHost[0] = message - 4 - assignedMessagePrefix.length;
    const scheduler = builder.createString(schedulerHost);
    TaskEvent.startTaskEvent(builder);
    TaskEvent.addTimestamp(builder, BigInt(facts.eventTimestampsMs[event] as number));
    timestamps[event] = builder.offset();
    TaskEvent.addStatus(builder, status);
    TaskEvent.addMessage(builder, message);
    TaskEvent.addScheduler(builder, scheduler);
    eventOffsets[event] = TaskEvent.endTaskEvent(builder);
  }
  return offsetVector(builder, eventOffsets, facts.eventCount);
}

/** Builds the template of `facts`' shape (filled with `facts`' values, though every one is patched anyway). */
function buildTemplate(facts: TaskFacts, hash: Uint8Array): TaskTemplate {
  const builder = templateBuilder;
  builder.clear();
  builder.forceDefaults(true); // clear() turns it off; offsets are still only added when non-zero
  const assigned = facts.hostIndex >= 0;
  const taskId = builder.createString(facts.taskId);
  const slave = assigned ? builder.createString(slaveId(facts.hostIndex)) : 0;
  const host = assigned ? builder.createString(hostName(facts.hostIndex)) : 0;
  const portValues = new Int32Array([-1, -1]);
  const ports = templatePorts(builder, facts, portValues);
  const configHash = AssignedTask.createConfigHashVector(builder, hash);
  AssignedTask.startAssignedTask(builder);
  AssignedTask.addTaskId(builder, taskId);
  if (assigned) AssignedTask.addSlaveId(builder, slave);
  if (assigned) AssignedTask.addSlaveHost(builder, host);
  AssignedTask.addAssignedPorts(builder, ports);
  AssignedTask.addInstanceId(builder, facts.instance);
  const instanceId = builder.offset();
  AssignedTask.addConfigHash(builder, configHash);
  const assignedTask = AssignedTask.endAssignedTask(builder);
  const timestamps = new Int32Array(eventsMax);
  const assignedHost = new Int32Array([-1]);
  const events = templateEvents(builder, facts, timestamps, assignedHost);
  const ancestor = facts.ancestorId === '' ? 0 : builder.createString(facts.ancestorId);
  ScheduledTask.startScheduledTask(builder);
  ScheduledTask.addAssignedTask(builder, assignedTask);
  ScheduledTask.addStatus(builder, facts.status);
  const status = builder.offset();
  ScheduledTask.addFailureCount(builder, facts.failureCount);
  const failureCount = builder.offset();
  ScheduledTask.addTaskEvents(builder, events);
  if (ancestor !== 0) ScheduledTask.addAncestorId(builder, ancestor);
  const table = ScheduledTask.endScheduledTask(builder);
  builder.prep(blockAlignment, 0);
  const blockBytes = builder.offset();
  const bytes = builder.dataBuffer().bytes();
  const block = bytes.slice(bytes.length - blockBytes);
  return new TaskTemplate(block, table, taskId - 4, assigned ? slave - 4 : -1, assigned ? host - 4 : -1,
    assignedHost[0] as number, ancestor === 0 ? -1 : ancestor - 4, status, failureCount, instanceId,
    portValues[0] as number, portValues[1] as number, configHash - 4, timestamps);
}

function writeAscii(bytes: Uint8Array, at: number, text: string): void {
  for (let index = 0; index < text.length; index++) bytes[at + index] = text.charCodeAt(index);
}

/** Appends task `facts` (config `hash`) and returns the offset of its ScheduledTask table. */
export function appendTask(builder: flatbuffers.Builder, facts: TaskFacts, hash: Uint8Array): flatbuffers.Offset {
  const key = templateKey(facts);
  let template = templates.get(key);
  if (template === undefined) {
    if (templates.size >= templateCacheMax) templates.clear();
    template = buildTemplate(facts, hash);
    templates.set(key, template);
  }
  const end = appendBlock(builder, template.block);
  const buffer = builder.dataBuffer();
  const bytes = buffer.bytes();
  const at = bytes.length - end; // an end-relative offset r inside the block is at absolute position at - r
  writeAscii(bytes, at - template.taskId, facts.taskId);
  if (facts.hostIndex >= 0) {
    const host = hostNameUtf8[facts.hostIndex] as Uint8Array;
    bytes.set(slaveIdUtf8[facts.hostIndex] as Uint8Array, at - template.slaveId);
    bytes.set(host, at - template.slaveHost);
    if (template.assignedHost >= 0) bytes.set(host, at - template.assignedHost);
    buffer.writeInt32(at - template.portHttp, facts.portHttp);
    buffer.writeInt32(at - template.portHealth, facts.portHttp + 1);
  }
  if (template.ancestorId >= 0) writeAscii(bytes, at - template.ancestorId, facts.ancestorId);
  bytes.set(hash, at - template.configHash);
  buffer.writeInt32(at - template.instanceId, facts.instance);
  buffer.writeInt8(at - template.status, facts.status);
  buffer.writeInt32(at - template.failureCount, facts.failureCount);
  for (let event = 0; event < facts.eventCount; event++) {
    const timestampMs = facts.eventTimestampsMs[event] as number;
    const position = at - (template.eventTimestamps[event] as number);
    buffer.writeInt32(position, timestampMs % twoPow32);                 // low word (writeInt32 keeps 32 bits)
    buffer.writeInt32(position + 4, Math.floor(timestampMs / twoPow32)); // high word: timestamps are positive
  }
  return end + template.table;
}

// ---------------------------------------------------------------------------------------------------------------
// Transitions: exactly the object API's bytes (TransitionTaskT.pack's order)
// ---------------------------------------------------------------------------------------------------------------

const transitionBuilder = new AsciiBuilder(8192);
const messageUtf8 = new Map<ScheduleStatus, Uint8Array>(); // every status but ASSIGNED, whose message names a host
for (const status of [ScheduleStatus.PENDING, ScheduleStatus.STARTING, ScheduleStatus.RUNNING, ScheduleStatus.FINISHED,
  ScheduleStatus.FAILED, ScheduleStatus.KILLED, ScheduleStatus.LOST]) {
  messageUtf8.set(status, utf8.encode(eventMessage(status, -1)));
}
const schedulerHostUtf8 = utf8.encode(schedulerHost);
const portNameHttpUtf8 = utf8.encode(portNameHttp);
const portNameHealthUtf8 = utf8.encode(portNameHealth);

function transitionPorts(builder: flatbuffers.Builder, hostIndex: number, portHttp: number): flatbuffers.Offset {
  if (hostIndex < 0) return emptyVector(builder);
  const http = Port.createPort(builder, builder.createString(portNameHttpUtf8), portHttp);
  const health = Port.createPort(builder, builder.createString(portNameHealthUtf8), portHttp + 1);
  builder.startVector(4, 2, 4);
  builder.addOffset(health);
  builder.addOffset(http);
  return builder.endVector();
}

/**
 * `encode(transitionTransaction(…))` (see workload.ts), written directly with a reused builder: the update
 * benchmark's hot path. A task with a host (hostIndex >= 0) resends slave id, host and ports.
 */
export function encodeTransition(
  taskId: string, from: ScheduleStatus, to: ScheduleStatus, timestampMs: number, hostIndex = -1, portHttp = 0,
): Uint8Array {
  const builder = transitionBuilder;
  builder.clear();
  const preconditions = emptyVector(builder);
  const configs = emptyVector(builder);
  const id = builder.createString(taskId);
  const message = builder.createString(messageUtf8.get(to) ?? eventMessage(to, hostIndex));
  const scheduler = builder.createString(schedulerHostUtf8);
  const slave = hostIndex >= 0 ? builder.createString(slaveIdUtf8[hostIndex] as Uint8Array) : 0;
  const host = hostIndex >= 0 ? builder.createString(hostNameUtf8[hostIndex] as Uint8Array) : 0;
  const ports = transitionPorts(builder, hostIndex, portHttp);
  const transition = TransitionTask.createTransitionTask(builder, id, to, true, from, true, BigInt(timestampMs),
    message, scheduler, slave, host, ports, -1, -1);
  const operation = Operation.createOperation(builder, Op.TransitionTask, transition);
  builder.startVector(4, 1, 4);
  builder.addOffset(operation);
  const ops = builder.endVector();
  builder.finish(Transaction.createTransaction(builder, 0, preconditions, configs, ops));
  return builder.asUint8Array().slice();
}
