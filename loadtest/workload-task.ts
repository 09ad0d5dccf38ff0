/**
 * Tasks of the standard workload (shared reference workload.md): the constants they are drawn from, the
 * `TaskFacts` scratch record that describes one task, and its object-API form. Owner: benchmark and test
 * processes (main thread or a load generator worker); never imported by workers/ or daemon/.
 * Invariants: every string a task holds is ASCII (the byte writers copy char codes); a task has a host, a slave id
 * and two ports exactly when it got past PENDING; its events are a prefix of `lifecyclePath` plus, when it
 * ended, one terminal event; an ASSIGNED event names the task's host.
 */
import { assert } from '../core/assert.js';
import { AssignedTaskT, PortT, ScheduledTaskT, ScheduleStatus, TaskEventT } from '../core/fbs/strata.js';

export const hostCount = 2000;                    // workload.md: 2,000 hosts
export const timestampMsBase = 1_700_000_000_000; // 2023-11-14: the data set's tasks were scheduled after this
export const scheduleSpanMs = 7 * 24 * 3600 * 1000;
export const schedulerHost = 'aurora-1.dc1.example.com';
export const portFirst = 31000;                   // Mesos' default port range starts here
export const portPairCount = 500;                 // http = portFirst + 2k, health = http + 1
export const clusterId = '5f3c2a1e-7d4b-4c1a-9e2f-8b6a0d3c1e47';
export const portNameHttp = 'http';
export const portNameHealth = 'health';
export const assignedMessagePrefix = 'Assigned to ';

export const statusShare = { RUNNING: 0.90, PENDING: 0.04, ASSIGNED: 0.02, STARTING: 0.02, terminal: 0.02 } as const;
export const terminalStatuses: readonly ScheduleStatus[] = [
  ScheduleStatus.FINISHED, ScheduleStatus.FAILED, ScheduleStatus.KILLED, ScheduleStatus.LOST,
];
/** The path every task walks; a task's events are a prefix of it, plus the terminal event if it ended. */
export const lifecyclePath: readonly ScheduleStatus[] = [
  ScheduleStatus.PENDING, ScheduleStatus.ASSIGNED, ScheduleStatus.STARTING, ScheduleStatus.RUNNING,
];
export const eventsMax = lifecyclePath.length + 1;

const hostNames: string[] = [];
const slaveIds: string[] = [];
for (let host = 0; host < hostCount; host++) {
  hostNames.push(`host-${String(host).padStart(4, '0')}.dc1.example.com`);
  slaveIds.push(`${clusterId}-S${host}`);
}
export const hostNameBytes = (hostNames[0] as string).length; // all host names have the same length

export function hostName(hostIndex: number): string {
  const name = hostNames[hostIndex];
  assert(name !== undefined, 'host index in range');
  return name;
}

export function slaveId(hostIndex: number): string {
  const id = slaveIds[hostIndex];
  assert(id !== undefined, 'host index in range');
  return id;
}

export function isTerminal(status: ScheduleStatus): boolean {
  return status === ScheduleStatus.FINISHED || status === ScheduleStatus.FAILED ||
    status === ScheduleStatus.KILLED || status === ScheduleStatus.LOST;
}

/** The short message of an event that moves a task to `status`; an ASSIGNED one names the host. */
export function eventMessage(status: ScheduleStatus, hostIndex: number): string {
  switch (status) {
    case ScheduleStatus.PENDING: return 'Task scheduled';
    case ScheduleStatus.ASSIGNED: return assignedMessagePrefix + hostName(hostIndex);
    case ScheduleStatus.STARTING: return 'Initializing sandbox.';
    case ScheduleStatus.RUNNING: return 'Task running';
    case ScheduleStatus.FINISHED: return 'Task finished';
    case ScheduleStatus.FAILED: return 'Process server exited with status 1';
    case ScheduleStatus.KILLED: return 'Killed by request';
    case ScheduleStatus.LOST: return 'Agent lost';
    default: return 'Transition';
  }
}

const hexPairs: string[] = [];
for (let byte = 0; byte < 256; byte++) hexPairs.push(byte.toString(16).padStart(2, '0'));

/** A u32 as 8 lower-case hex digits (a table: toString(16).padStart was 8 % of bulk generation). */
export function hex8(value: number): string {
  return (hexPairs[value >>> 24] as string) + (hexPairs[(value >>> 16) & 255] as string) +
    (hexPairs[(value >>> 8) & 255] as string) + (hexPairs[value & 255] as string);
}

/** Everything about one task: a scratch record, filled by `Workload.task(index, into)` and reused. */
export class TaskFacts {
  taskIndex = 0;
  jobIndex = 0;
  instance = 0;
  configIndex = 0;
  status: ScheduleStatus = ScheduleStatus.PENDING;
  eventCount = 0;
  readonly eventStatuses = new Uint8Array(eventsMax);
  readonly eventTimestampsMs = new Float64Array(eventsMax);
  hostIndex = -1;          // -1: not assigned (PENDING)
  portHttp = 0;            // 0 when not assigned; health is portHttp + 1
  failureCount = 0;
  taskId = '';
  ancestorId = '';         // '' when the task replaces nothing

  /** A PENDING task with one event, as a replacement starts (ids and indexes are the caller's). */
  setPending(timestampMs: number): void {
    this.status = ScheduleStatus.PENDING;
    this.eventCount = 1;
    this.eventStatuses[0] = ScheduleStatus.PENDING;
    this.eventTimestampsMs[0] = timestampMs;
    this.hostIndex = -1;
    this.portHttp = 0;
  }
}

export function portsOf(hostIndex: number, portHttp: number): PortT[] {
  if (hostIndex < 0) return [];
  return [new PortT(portNameHttp, portHttp), new PortT(portNameHealth, portHttp + 1)];
}

/** The task in the object API, its config by hash (`hashList` is shared: never mutate it). */
export function scheduledTaskOf(facts: TaskFacts, hashList: number[]): ScheduledTaskT {
  const assigned = facts.hostIndex >= 0;
  const assignedTask = new AssignedTaskT(facts.taskId, assigned ? slaveId(facts.hostIndex) : null,
    assigned ? hostName(facts.hostIndex) : null, null, portsOf(facts.hostIndex, facts.portHttp), facts.instance,
    hashList);
  const events: TaskEventT[] = [];
  for (let event = 0; event < facts.eventCount; event++) {
    const status = facts.eventStatuses[event] as ScheduleStatus;
    events.push(new TaskEventT(BigInt(facts.eventTimestampsMs[event] as number), status,
      eventMessage(status, facts.hostIndex), schedulerHost));
  }
  return new ScheduledTaskT(assignedTask, facts.status, facts.failureCount, 0, events,
    facts.ancestorId === '' ? null : facts.ancestorId, BigInt(0), BigInt(0));
}
