/**
 * Reference model, task operations: UpsertTasks, TransitionTask, DeleteTasks. Owner: tests only.
 * Invariants: checks run per item in input order, and within an item in the order docs/semantics.md lists
 * them (a key's validity first, as nothing can be looked up without it); a stored task never has its inline config, and
 * holds a counted reference to its config; create_revision survives replacement.
 */
import { text } from '../../core/config.js';
import {
  AssignedTaskT, DeleteTasksT, ErrorCode, OpResultT, ScheduledTaskT, TaskEventT, TransitionTaskT, UpsertTasksT,
} from '../../core/fbs/strata.js';
import {
  invalid, isName, isStatus, isTransitionAllowed, modelLimits, ModelError, notFound, nullEmptyStrings,
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

function upsertTask(context: Context, input: ScheduledTaskT, seen: Set<string>, opIndex: number): void {
  const assigned = input.assignedTask;
  if (assigned === null) throw invalid('a task without assigned_task', opIndex);
  const taskId = text(assigned.taskId);
  if (!isName(taskId)) throw invalid(`invalid task id ${JSON.stringify(taskId)}`, opIndex);
  const configHex = resolveConfig(context, assigned.task, assigned.configHash, opIndex);
  if (assigned.instanceId < 0) throw invalid(`negative instance_id ${assigned.instanceId}`, opIndex);
  if (!isStatus(input.status)) throw invalid(`status ${input.status} is not a ScheduleStatus`, opIndex);
  for (const event of input.taskEvents) {
    if (!isStatus(event.status)) throw invalid(`event status ${event.status} is not a ScheduleStatus`, opIndex);
  }
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

export function transitionTask(context: Context, op: TransitionTaskT, opIndex: number): OpResultT {
  const taskId = text(op.taskId);
  if (!isName(taskId)) throw invalid(`invalid task id ${JSON.stringify(taskId)}`, opIndex);
  const existing = context.state.tasks.get(taskId);
  if (existing === undefined) throw notFound(`no task ${taskId}`, opIndex);
  if (!isStatus(op.status)) throw invalid(`status ${op.status} is not a ScheduleStatus`, opIndex);
  if (op.hasExpectStatus && !isStatus(op.expectStatus)) {
    throw invalid(`expect_status ${op.expectStatus} is not a ScheduleStatus`, opIndex);
  }
  const current = existing.task.status;
  if (op.hasExpectStatus && current !== op.expectStatus) {
    throw new ModelError(ErrorCode.PRECONDITION_FAILED, `task ${taskId} is in ${current}`, opIndex);
  }
  if (op.status === current) return opResult(true, 0);
  if (op.enforce && !isTransitionAllowed(current, op.status)) {
    throw new ModelError(ErrorCode.ILLEGAL_TRANSITION, `${current} -> ${op.status}`, opIndex);
  }
  if (existing.task.taskEvents.length >= modelLimits.taskEventsMax) {
    throw invalid(`task ${taskId} would have more than ${modelLimits.taskEventsMax} events`, opIndex);
  }
  context.state.tasks.set(taskId, { task: transitioned(context, existing.task, op), configHex: existing.configHex });
  return opResult(false, 1);
}

/** A new task record: the old one with the transition applied (the old record is left untouched). */
function transitioned(context: Context, old: ScheduledTaskT, op: TransitionTaskT): ScheduledTaskT {
  const oldAssigned = old.assignedTask;
  if (oldAssigned === null) throw new Error('reference model: stored task without assigned_task');
  const event = new TaskEventT(op.timestamp, op.status, op.message, op.scheduler);
  // The object API cannot leave assigned_ports out (pack always writes the vector), so it is always present.
  const assigned = new AssignedTaskT(oldAssigned.taskId,
    text(op.slaveId) === '' ? oldAssigned.slaveId : op.slaveId,
    text(op.slaveHost) === '' ? oldAssigned.slaveHost : op.slaveHost,
    null, op.assignedPorts, oldAssigned.instanceId, oldAssigned.configHash);
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
