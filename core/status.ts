/**
 * Aurora's task statuses: sets, JobStats buckets and the TaskStateMachine's legal transitions.
 * Owner: any thread (pure). Source: reference/aurora-storage.md §1.5 (TaskStateMachine.java at HEAD).
 */
import { ScheduleStatus as S } from './fbs/strata.js';

export const statusValueMax = 18;
const known = new Uint8Array(statusValueMax + 1);
for (const value of [S.INIT, S.THROTTLED, S.PENDING, S.ASSIGNED, S.STARTING, S.RUNNING, S.FINISHED, S.PREEMPTING,
  S.RESTARTING, S.DRAINING, S.FAILED, S.KILLED, S.KILLING, S.LOST, S.PARTITIONED]) known[value] = 1;

export function isStatus(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= statusValueMax && known[value] === 1;
}

const active = new Uint8Array(statusValueMax + 1);
for (const value of [S.ASSIGNED, S.DRAINING, S.KILLING, S.PENDING, S.PREEMPTING, S.RESTARTING, S.RUNNING,
  S.STARTING, S.PARTITIONED, S.THROTTLED]) active[value] = 1;

export function isActive(status: number): boolean {
  return active[status] === 1;
}

export function isTerminal(status: number): boolean {
  return status === S.FAILED || status === S.FINISHED || status === S.KILLED || status === S.LOST;
}

/** Aurora's JobStats bucket: 0 pending, 1 active, 2 finished, 3 failed. */
export function jobStatsBucket(status: number): number {
  switch (status) {
    case S.INIT: case S.PENDING: case S.THROTTLED: return 0;
    case S.FINISHED: case S.KILLED: return 2;
    case S.FAILED: case S.LOST: return 3;
    default: return 1;
  }
}

const terminalTargets = [S.FINISHED, S.FAILED, S.KILLING, S.KILLED, S.LOST, S.PARTITIONED];
const legal: Record<number, number[]> = {
  [S.INIT]: [S.PENDING, S.THROTTLED],
  [S.PENDING]: [S.ASSIGNED, S.KILLING],
  [S.THROTTLED]: [S.PENDING, S.KILLING],
  [S.ASSIGNED]: [S.STARTING, S.RUNNING, S.FINISHED, S.FAILED, S.RESTARTING, S.DRAINING, S.KILLED, S.KILLING, S.LOST,
    S.PREEMPTING],
  [S.STARTING]: [S.RUNNING, S.FINISHED, S.FAILED, S.RESTARTING, S.DRAINING, S.KILLING, S.KILLED, S.LOST,
    S.PREEMPTING, S.PARTITIONED],
  [S.RUNNING]: [S.FINISHED, S.RESTARTING, S.DRAINING, S.FAILED, S.KILLING, S.KILLED, S.LOST, S.PREEMPTING,
    S.PARTITIONED],
  [S.PARTITIONED]: [S.LOST, S.FAILED, S.FINISHED, S.RUNNING, S.ASSIGNED, S.STARTING, S.RESTARTING, S.DRAINING,
    S.PREEMPTING, S.KILLING],
  [S.PREEMPTING]: terminalTargets,
  [S.RESTARTING]: terminalTargets,
  [S.DRAINING]: terminalTargets,
  [S.KILLING]: [S.FINISHED, S.FAILED, S.KILLED, S.LOST, S.PARTITIONED],
};

const transitionTable = new Uint8Array((statusValueMax + 1) * (statusValueMax + 1));
for (const [from, targets] of Object.entries(legal)) {
  for (const to of targets) transitionTable[Number(from) * (statusValueMax + 1) + to] = 1;
}

/** Whether Aurora's TaskStateMachine allows from -> to (both valid statuses, different). */
export function isLegalTransition(from: number, to: number): boolean {
  return transitionTable[from * (statusValueMax + 1) + to] === 1;
}
