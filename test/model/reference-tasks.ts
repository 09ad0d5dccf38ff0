/**
 * Reference model, task operations: UpsertTasks, TransitionTask, DeleteTasks. Owner: tests only.
 * Invariants: checks run per item in input order, and within an item in the order docs/semantics.md lists
 * them (a key's validity first, as nothing can be looked up without it; a transition's inputs all before its
 * lookup); a stored task never has its inline config, and holds a counted reference to its config;
 * create_revision survives replacement.
 */
import { text } from '../../core/text.js';
import {
  AssignedTaskT, DeleteTasksT, ErrorCode, OpResultT, PortT, ScheduledTaskT, TaskEventT, TransitionTaskT,
  UpsertTasksT,
} from '../../core/fbs/strata.js';
import {
  exhausted, invalid, isName, isOptionalName, isStatus, isTransitionAllowed, modelLimits, ModelError, notFound,
  nullEmptyStrings, utf8Bytes,
} from './reference-common.js';
import { acquireConfig, configOf, Context, hashArray, releaseConfig, resolveConfig } from './reference-configs.js';

export function opResult(noop: boolean, count: number, changed: boolean[] = []): OpResultT {
  return new OpResultT(noop, count, changed);
}

export function upsertTasks(context: Context, op: UpsertTasksT, opIndex: number): OpResultT {
  const seen = new Set<string>();
  for (const task of op.tasks) upsertTask(context, task, seen, opIndex);
  return opResult(op.tasks.length === 0, op.tasks.length);
}

/** A text field that names a thing: absent, or at most 256 bytes without control characters. */
function checkText(value: string | Uint8Array | null, field: string, opIndex: number): void {
  if (!isOptionalName(text(value))) throw invalid(`invalid ${field} ${JSON.stringify(value)}`, opIndex);
}

function checkMessage(message: string | Uint8Array | null, opIndex: number): void {
  if (utf8Bytes(text(message)) > modelLimits.messageBytesMax) {
    throw invalid(`an event message over ${modelLimits.messageBytesMax} bytes`, opIndex);
  }
}

/** Assigned ports: at most portsMax, each with a name (a port is an entry of Aurora's name -> port map). */
function checkPorts(ports: readonly PortT[], opIndex: number): void {
  if (ports.length > modelLimits.portsMax) throw invalid(`more than ${modelLimits.portsMax} ports`, opIndex);
  for (const port of ports) {
    if (!isName(text(port.name))) throw invalid(`invalid port name ${JSON.stringify(port.name)}`, opIndex);
  }
}

function upsertTask(context: Context, input: ScheduledTaskT, seen: Set<string>, opIndex: number): void {
  const assigned = input.assignedTask;
  if (assigned === null) throw invalid('a task without assigned_task', opIndex);
  const taskId = text(assigned.taskId);
  if (!isName(taskId)) throw invalid(`invalid task id ${JSON.stringify(taskId)}`, opIndex);
  const configHex = resolveConfig(context, assigned.task, assigned.configHash, opIndex);
  if (assigned.instanceId < 0) throw invalid(`negative instance_id ${assigned.instanceId}`, opIndex);
  if (!isStatus(input.status)) throw invalid(`status ${input.status} is not a ScheduleStatus`, opIndex);
  if (input.taskEvents.length > modelLimits.taskEventsMax) {
    throw invalid(`a task with more than ${modelLimits.taskEventsMax} events`, opIndex);
  }
  for (const event of input.taskEvents) {
    if (!isStatus(event.status)) throw invalid(`event status ${event.status} is not a ScheduleStatus`, opIndex);
    checkMessage(event.message, opIndex);
    checkText(event.scheduler, 'scheduler', opIndex);
  }
  checkText(assigned.slaveId, 'slave_id', opIndex);
  checkText(assigned.slaveHost, 'slave_host', opIndex);
  checkText(input.ancestorId, 'ancestor_id', opIndex);
  checkPorts(assigned.assignedPorts, opIndex);
  if (seen.has(taskId)) throw invalid(`task id ${taskId} twice in one UpsertTasks`, opIndex);
  seen.add(taskId);
  const existing = context.state.tasks.get(taskId);
  const stored = new ScheduledTaskT(
    new AssignedTaskT(taskId, assigned.slaveId, assigned.slaveHost, null, assigned.assignedPorts,
      assigned.instanceId, hashArray(configOf(context.state, configHex))),
    input.status, input.failureCount, input.timesPartitioned, input.taskEvents, input.ancestorId,
    context.revisionNext, existing === undefined ? context.revisionNext : existing.task.createRevision);
  nullEmptyStrings(stored);
  acquireConfig(context, configHex);
  if (existing !== undefined) releaseConfig(context, existing.configHex);
  context.state.tasks.set(taskId, { task: stored, configHex });
}

/** TransitionTask: every input first (nothing looked up), then the task, CAS, no-op, enforce, the event limit. */
export function transitionTask(context: Context, op: TransitionTaskT, opIndex: number): OpResultT {
  const taskId = text(op.taskId);
  if (!isName(taskId)) throw invalid(`invalid task id ${JSON.stringify(taskId)}`, opIndex);
  if (!isStatus(op.status)) throw invalid(`status ${op.status} is not a ScheduleStatus`, opIndex);
  if (op.hasExpectStatus && !isStatus(op.expectStatus)) {
    throw invalid(`expect_status ${op.expectStatus} is not a ScheduleStatus`, opIndex);
  }
  checkMessage(op.message, opIndex);
  checkText(op.scheduler, 'scheduler', opIndex);
  checkText(op.slaveId, 'slave_id', opIndex);
  checkText(op.slaveHost, 'slave_host', opIndex);
  checkPorts(op.assignedPorts, opIndex);
  const existing = context.state.tasks.get(taskId);
  if (existing === undefined) throw notFound(`no task ${taskId}`, opIndex);
  const current = existing.task.status;
  if (op.hasExpectStatus && current !== op.expectStatus) {
    throw new ModelError(ErrorCode.PRECONDITION_FAILED, `task ${taskId} is in ${current}`, opIndex);
  }
  if (op.status === current) return opResult(true, 0);
  if (op.enforce && !isTransitionAllowed(current, op.status)) {
    throw new ModelError(ErrorCode.ILLEGAL_TRANSITION, `${current} -> ${op.status}`, opIndex);
  }
  if (existing.task.taskEvents.length >= modelLimits.taskEventsMax) {
    throw exhausted(`task ${taskId} already has ${modelLimits.taskEventsMax} events`, opIndex);
  }
  context.state.tasks.set(taskId, { task: transitioned(context, existing.task, op), configHex: existing.configHex });
  return opResult(false, 1);
}

/** A new task record: the old one with the transition applied (the old record is left untouched). */
function transitioned(context: Context, old: ScheduledTaskT, op: TransitionTaskT): ScheduledTaskT {
  const oldAssigned = old.assignedTask;
  if (oldAssigned === null) throw new Error('reference model: stored task without assigned_task');
  const event = new TaskEventT(op.timestamp, op.status, op.message, op.scheduler);
  // Each of slave_id, slave_host and assigned_ports replaces the stored value only when non-empty.
  const assigned = new AssignedTaskT(oldAssigned.taskId,
    text(op.slaveId) === '' ? oldAssigned.slaveId : op.slaveId,
    text(op.slaveHost) === '' ? oldAssigned.slaveHost : op.slaveHost,
    null, op.assignedPorts.length === 0 ? oldAssigned.assignedPorts : op.assignedPorts, oldAssigned.instanceId,
    oldAssigned.configHash);
  const task = new ScheduledTaskT(assigned, op.status,
    op.failureCount >= 0 ? op.failureCount : old.failureCount,
    op.timesPartitioned >= 0 ? op.timesPartitioned : old.timesPartitioned,
    [...old.taskEvents, event], old.ancestorId, context.revisionNext, old.createRevision);
  nullEmptyStrings(assigned.assignedPorts);
  nullEmptyStrings(event);
  return task;
}

export function deleteTasks(context: Context, op: DeleteTasksT, opIndex: number): OpResultT {
  const seen = new Set<string>();
  let removed = 0;
  for (const taskId of op.taskIds) {
    if (!isName(taskId)) throw invalid(`invalid task id ${JSON.stringify(taskId)}`, opIndex);
    if (seen.has(taskId)) throw invalid(`task id ${taskId} twice in one DeleteTasks`, opIndex);
    seen.add(taskId);
    const existing = context.state.tasks.get(taskId);
    if (existing === undefined) {
      if (!op.ignoreMissing) throw notFound(`no task ${taskId}`, opIndex);
      continue;
    }
    releaseConfig(context, existing.configHex);
    context.state.tasks.delete(taskId);
    removed += 1;
  }
  return opResult(removed === 0, removed);
}
