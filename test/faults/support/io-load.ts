/**
 * The client side of the I/O-fault and corrupt-file suites (test/faults/io-errors.test.ts, corrupt-files.test.ts):
 * concurrent SDK clients over the network committing the crash tests' transactions (test/support/crash-model.ts,
 * each with its idempotency key), what every client got back, and the checks of a (restarted) daemon against it.
 * Owner: tests only.
 * Invariants:
 * - Client c sends its transactions in sequence order, one at a time (an odd sequence transitions the task its
 *   even predecessor created), and stops at its first failure; each transaction ends 'acked' (a result without
 *   error: its revision is known), 'failed' (an error result, or the request failed: the daemon died) or 'unsent'.
 * - The state a revision R must show is a function of the acknowledged revisions alone (expectedAt): the pair of
 *   tasks of each even sequence acknowledged at or before R, ASSIGNED when its transition was too, else PENDING.
 * - Resends reuse a transaction's exact bytes (so its key): a transaction already applied must come back with its
 *   first revision and be applied no second time; one never applied is applied now, once.
 */
import { StrataClient } from '../../../client/index.js';
import { ConfigDetail, ScheduleStatus, type TasksResultT } from '../../../core/fbs/strata.js';
import { crashProblems, crashTaskId, crashTransaction } from '../../support/crash-model.js';

/** Loads are small: per client at most this many transactions (the idempotency window holds far more). */
const perClientMax = 10_000;
/** A request without an answer in this long fails the test (a busy 2-core machine, never a timing assertion). */
const requestTimeoutMs = 120_000;

export interface SentTransaction {
  c: number;
  s: number;
  bytes: Uint8Array;
  outcome: 'acked' | 'failed' | 'unsent';
  revision: number;          // acked: the revision it committed
  error: string;             // failed: what the client was told
}

export type TaskState = Map<string, ScheduleStatus>;

/** Runs `clients` clients of `perClient` transactions each (sequences from firstSeq); resolves when all stopped. */
export async function runLoad(url: string, clients: number, perClient: number, firstSeq = 0): Promise<SentTransaction[]> {
  if (perClient > perClientMax || firstSeq % 2 !== 0) throw new Error('runLoad: perClient too big, or an odd firstSeq');
  const sent: SentTransaction[] = [];
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const mine: SentTransaction[] = [];
    for (let s = firstSeq; s < firstSeq + perClient; s++) {
      const entry = { c, s, bytes: crashTransaction(c, s), outcome: 'unsent', revision: 0, error: '' } as SentTransaction;
      mine.push(entry);
      sent.push(entry);
    }
    let client: StrataClient;
    try {
      client = await StrataClient.connect({ url, reconnect: false, requestTimeoutMs, clientName: `io-load-${c}` });
    } catch (error) {
      mine[0]!.outcome = 'failed';
      mine[0]!.error = `connect: ${String(error)}`;
      return;
    }
    try {
      for (const entry of mine) {
        try {
          const result = await client.commit(entry.bytes);
          if (result.error !== null) {
            entry.outcome = 'failed';
            entry.error = `result ${result.error.code}: ${String(result.error.message)}`;
            break;
          }
          entry.outcome = 'acked';
          entry.revision = Number(result.revision);
        } catch (error) {
          entry.outcome = 'failed';
          entry.error = String(error);
          break;
        }
      }
    } finally {
      client.close();
    }
  }));
  return sent;
}

/** The tasks of the crash job as served at `url`, with the revision read. */
export async function servedState(url: string): Promise<{ state: TaskState; revision: number }> {
  const client = await StrataClient.connect({ url, reconnect: false, requestTimeoutMs, clientName: 'io-check' });
  try {
    const answer = await client.tasks({ role: 'crash', environment: 'prod', jobName: 'load',
      configDetail: ConfigDetail.HASH_ONLY });
    const state: TaskState = new Map();
    for (const t of (answer.result as TasksResultT).tasks) state.set(String(t.assignedTask!.taskId), t.status);
    return { state, revision: Number(answer.revision) };
  } finally {
    client.close();
  }
}

/** The state after every transaction of `sent` acknowledged at or before `revision` (and only those). */
export function expectedAt(sent: SentTransaction[], revision: number): TaskState {
  const state: TaskState = new Map();
  const done = (entry: SentTransaction) => entry.outcome === 'acked' && entry.revision <= revision;
  for (const entry of sent) {
    if (entry.s % 2 !== 0 || !done(entry)) continue;
    state.set(crashTaskId(entry.c, entry.s, 'a'), ScheduleStatus.PENDING);
    state.set(crashTaskId(entry.c, entry.s, 'b'), ScheduleStatus.PENDING);
  }
  for (const entry of sent) {
    if (entry.s % 2 === 1 && done(entry)) state.set(crashTaskId(entry.c, entry.s - 1, 'a'), ScheduleStatus.ASSIGNED);
  }
  return state;
}

/** Differences of two states, at most `max` of them, for a message (empty when equal). */
export function stateDifferences(actual: TaskState, expected: TaskState, max = 10): string[] {
  const out: string[] = [];
  for (const [id, status] of expected) {
    if (actual.get(id) !== status) out.push(`${id}: expected ${ScheduleStatus[status]}, got ${actual.has(id) ? ScheduleStatus[actual.get(id)!] : 'nothing'}`);
  }
  for (const id of actual.keys()) if (!expected.has(id)) out.push(`${id}: present, not expected`);
  return out.slice(0, max);
}

/** Whether the effect of a transaction shows in `state` (its pair exists, or its task is ASSIGNED). */
function applied(entry: SentTransaction, state: TaskState): boolean {
  if (entry.s % 2 === 0) return state.has(crashTaskId(entry.c, entry.s, 'a'));
  return state.get(crashTaskId(entry.c, entry.s - 1, 'a')) === ScheduleStatus.ASSIGNED;
}

const keyOf = (entry: SentTransaction): string => `${entry.c}/${entry.s}`;

export interface RecoveryCheck {
  problems: string[];
  acked: number;            // acknowledged transactions found present (and not applied again on resend)
  resent: number;           // transactions sent again with their key
  presentUnacked: number;   // failed or unanswered before the fault, yet durable (the failed group's sync case)
  appliedOnResend: number;  // never applied before: applied by the resend
}

/**
 * The checks after a restart: every acknowledged transaction present (none half applied), no acknowledged revision
 * above the recovered one; then every transaction sent (and the unsent ones) is sent again with its key: an
 * acknowledged one must come back with its revision, one present but unacknowledged with a revision at or below
 * the recovered one, the others applied now; at the end the state is the whole history applied exactly once.
 */
export async function checkRecovered(url: string, sent: SentTransaction[]): Promise<RecoveryCheck> {
  const { state, revision } = await servedState(url);
  const acked = sent.filter((e) => e.outcome === 'acked');
  const problems = crashProblems(state, new Set(sent.filter((e) => e.outcome !== 'unsent').map(keyOf)),
    new Set(acked.map(keyOf)));
  for (const entry of acked) {
    if (entry.revision > revision) problems.push(`${keyOf(entry)} acknowledged at ${entry.revision}, recovered only ${revision}`);
  }
  const check: RecoveryCheck = { problems, acked: acked.length, resent: 0, presentUnacked: 0, appliedOnResend: 0 };
  const client = await StrataClient.connect({ url, reconnect: false, requestTimeoutMs, clientName: 'io-resend' });
  try {
    const byClient = new Map<number, SentTransaction[]>();
    for (const entry of sent) byClient.set(entry.c, [...(byClient.get(entry.c) ?? []), entry]);
    await Promise.all([...byClient.values()].map(async (entries) => {
      for (const entry of entries) {
        const before = applied(entry, state);
        const result = await client.commit(entry.bytes);
        check.resent++;
        const got = Number(result.revision);
        if (result.error !== null) {
          problems.push(`resend of ${keyOf(entry)}: error ${result.error.code} ${String(result.error.message)}`);
        } else if (entry.outcome === 'acked' && got !== entry.revision) {
          problems.push(`resend of acknowledged ${keyOf(entry)}: revision ${got}, acknowledged ${entry.revision}`);
        } else if (entry.outcome !== 'acked' && before && got > revision) {
          problems.push(`resend of ${keyOf(entry)} (present after recovery) applied again at ${got}`);
        } else if (!before && got <= revision) {
          problems.push(`resend of ${keyOf(entry)} (absent after recovery) answered with old revision ${got}`);
        }
        if (entry.outcome !== 'acked' && before) check.presentUnacked++;
        if (!before) check.appliedOnResend++;
      }
    }));
  } finally {
    client.close();
  }
  const everything = sent.map((entry) => ({ ...entry, outcome: 'acked' as const, revision: 0 }));
  const final = await servedState(url);
  for (const difference of stateDifferences(final.state, expectedAt(everything, 0))) {
    problems.push(`after the resends: ${difference}`);
  }
  return check;
}
