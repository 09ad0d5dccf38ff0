/**
 * The transactions of the crash tests (test/support/crash-child.ts) and the check of a recovered state against
 * what was acknowledged. Shared by the child and the test.
 */
import { decodeQueryResponse } from '../../core/codec.js';
import type { Engine } from '../../daemon/engine.js';
import { f, jobConfig, make, taskQuery, transition, txn, upsert, task } from './build.js';

const config = jobConfig('crash', 'prod', 'load', { data: 'x'.repeat(200) });

export function crashTaskId(c: number, s: number, part: 'a' | 'b'): string {
  return `c${c}-s${s}-${part}`;
}

export function crashTransaction(c: number, s: number): Uint8Array {
  const idempotency = make(f.IdempotencyKeyT, { clientId: `c${c}`, sequence: BigInt(s) });
  if (s % 2 === 0) {
    return txn([upsert([task(crashTaskId(c, s, 'a'), config, s), task(crashTaskId(c, s, 'b'), config, s + 1_000_000)])],
      { idempotency });
  }
  return txn([transition(crashTaskId(c, s - 1, 'a'), f.ScheduleStatus.ASSIGNED, {
    hasExpectStatus: true, expectStatus: f.ScheduleStatus.PENDING, message: `assigned ${c}/${s}`, scheduler: 'crash-test',
  })], { idempotency });
}

/** Every task of the crash job, by id: status. */
export async function crashState(engine: Engine): Promise<Map<string, f.ScheduleStatus>> {
  const response = decodeQueryResponse(await engine.query(taskQuery({
    role: 'crash', environment: 'prod', jobName: 'load', configDetail: f.ConfigDetail.HASH_ONLY,
  })));
  if (response.error !== null) throw new Error(`query failed: ${String(response.error.message)}`);
  const result = response.result as f.TasksResultT;
  const state = new Map<string, f.ScheduleStatus>();
  for (const t of result.tasks) state.set(String(t.assignedTask!.taskId), t.status);
  return state;
}

/**
 * Problems of `state` given what was acknowledged (acked: "c/s" keys): an acknowledged transaction missing,
 * a pair half there, a transition applied without its task.
 */
export function crashProblems(state: Map<string, f.ScheduleStatus>, sent: Set<string>, acked: Set<string>): string[] {
  const problems: string[] = [];
  for (const key of sent) {
    const [c, s] = key.split('/').map(Number) as [number, number];
    if (s % 2 === 0) {
      const a = state.has(crashTaskId(c, s, 'a'));
      const b = state.has(crashTaskId(c, s, 'b'));
      if (a !== b) problems.push(`transaction ${key} is half applied (a: ${a}, b: ${b})`);
      if (acked.has(key) && !a) problems.push(`acknowledged transaction ${key} is missing`);
    } else {
      const assigned = state.get(crashTaskId(c, s - 1, 'a')) === f.ScheduleStatus.ASSIGNED;
      if (acked.has(key) && !assigned) problems.push(`acknowledged transition ${key} is missing`);
    }
  }
  return problems;
}
