/**
 * The acknowledged history the clients of the kill -9 fault suite keep, and its checks: outcomes resolved by
 * resending with the same idempotency key, "exactly once" (every revision claimed by exactly one key, none
 * twice), and the replay of the committed transactions in revision order through the reference model.
 * Owner: tests only.
 * Invariants:
 * - A sent transaction is kept with its exact bytes (idempotency key included) until its round is checked; its
 *   outcome is 'acked' (an answer came), or 'unknown' (the daemon died first) until a resend resolves it.
 * - A transaction committed a revision of its own iff its first outcome has no error and some op was not a
 *   no-op; those revisions, over the whole run, are exactly 1..N without a hole or a repeat.
 * - The model is only ever advanced here, one committed transaction at a time, in revision order; `atRevision`
 *   callbacks run when the model has just reached a revision, so checks of that revision see its state.
 */
import { decodeTransaction } from '../../../core/codec.js';
import { ErrorCode, type TransactionResultT, type TransactionT } from '../../../core/fbs/strata.js';
import type { StrataClient } from '../../../client/index.js';
import { describe, normalizeTransactionResult } from '../../model/normalize.js';
import type { ReferenceModel } from '../../model/reference.js';

export interface SentTransaction {
  readonly key: string;          // client id / sequence
  readonly bytes: Uint8Array;
  readonly kind: string;
  outcome: 'acked' | 'unknown';
  result: TransactionResultT | null;
  believe: (result: TransactionResultT) => void;
}

/** How the resends of unknown outcomes came back. */
export interface Resolutions {
  committedBefore: number;       // duplicate: it had committed a revision before the kill
  failedBefore: number;          // duplicate: it had been refused (its error remembered) before the kill
  noopBefore: number;            // duplicate: it had been applied as a no-op
  committedNow: number;          // not seen before the kill: committed by the resend
  failedNow: number;             // not seen before: refused now (a precondition the round's later writes broke)
  noopNow: number;
}

/** A committed transaction as the replay hands it to the checks of its revision. */
export interface Committed { transaction: TransactionT; result: TransactionResultT }

export function emptyResolutions(): Resolutions {
  return { committedBefore: 0, failedBefore: 0, noopBefore: 0, committedNow: 0, failedNow: 0, noopNow: 0 };
}

export function committedRevision(result: TransactionResultT): boolean {
  return result.error === null && result.ops.some((op) => !op.noop);
}

/** The first outcome as the suite compares it: the duplicate flag and error messages left out. */
function outcomeOf(result: TransactionResultT): string {
  const plain = normalizeTransactionResult(result) as Record<string, unknown>;
  delete plain['duplicate'];
  if (result.error !== null) plain['revision'] = 'error';
  return JSON.stringify(plain);
}

export class KillHistory {
  /** Revision -> the key that committed it, over the whole run. */
  private readonly owners = new Map<number, string>();
  private readonly round: SentTransaction[] = [];
  readonly resolutions = emptyResolutions();
  acknowledged = 0;
  unknown = 0;
  checked = 0;
  resentAcknowledged = 0;
  failedOutcomes = 0;
  noopOutcomes = 0;

  constructor(private readonly model: ReferenceModel) {}

  sent(transaction: SentTransaction): void {
    this.round.push(transaction);
    if (transaction.outcome === 'acked') this.acknowledged++;
    else this.unknown++;
  }

  /**
   * Resends every transaction of the round with its key. Unknown ones resolve (and must answer the same again on
   * a second resend); acknowledged ones must answer DUPLICATE with their first outcome. Returns the problems.
   */
  async resolve(client: StrataClient): Promise<string[]> {
    const problems: string[] = [];
    const unknown = this.round.filter((x) => x.outcome === 'unknown');
    const firsts = await Promise.all(unknown.map((x) => client.commit(x.bytes)));
    const seconds = await Promise.all(unknown.map((x) => client.commit(x.bytes)));
    unknown.forEach((x, index) => {
      const first = firsts[index]!;
      const second = seconds[index]!;
      this.count(first);
      if (!second.duplicate || outcomeOf(second) !== outcomeOf(first)) {
        problems.push(`${x.key}: a second resend answered ${describe(second)} after ${describe(first)}`);
      }
      x.result = first;
      x.believe(first);
    });
    const acked = this.round.filter((x) => x.outcome === 'acked');
    const again = await Promise.all(acked.map((x) => client.commit(x.bytes)));
    acked.forEach((x, index) => {
      const answer = again[index]!;
      this.resentAcknowledged++;
      if (!answer.duplicate || outcomeOf(answer) !== outcomeOf(x.result!)) {
        problems.push(`acknowledged ${x.key} (${x.kind}): resent, answered ${describe(answer)}; first ${describe(x.result)}`);
      }
    });
    return problems;
  }

  private count(result: TransactionResultT): void {
    const before = result.duplicate;
    const r = this.resolutions;
    if (committedRevision(result)) before ? r.committedBefore++ : r.committedNow++;
    else if (result.error !== null) before ? r.failedBefore++ : r.failedNow++;
    else before ? r.noopBefore++ : r.noopNow++;
  }

  /**
   * Checks that the round's committed revisions continue the run's 1..N with one key each (N: the daemon's
   * revision now), then replays them through the model in order, comparing each outcome; `atRevision(r)` runs
   * once the model stands at r (and once for the revision the round started from). Clears the round.
   */
  replay(revisionNow: number, atRevision: (revision: number, committed: Committed | null) => string[]): string[] {
    const problems: string[] = [];
    const start = this.model.revision;
    const byRevision = new Map<number, SentTransaction>();
    for (const x of this.round) {
      const result = x.result!;
      if (result.error !== null) this.failedOutcomes++;
      else if (!committedRevision(result)) this.noopOutcomes++;
      if (!committedRevision(result)) continue;
      const revision = Number(result.revision);
      const owner = this.owners.get(revision) ?? byRevision.get(revision)?.key;
      if (owner !== undefined) problems.push(`revision ${revision} claimed by ${owner} and by ${x.key}`);
      else byRevision.set(revision, x);
    }
    problems.push(...atRevision(start, null));
    for (let revision = start + 1; revision <= revisionNow; revision++) {
      const x = byRevision.get(revision);
      if (x === undefined) {
        problems.push(`revision ${revision} (of ${start + 1}..${revisionNow}) is claimed by no acknowledged transaction`);
        return problems;
      }
      const transaction = decodeTransaction(x.bytes);
      const replayed = this.model.commit(transaction);
      if (replayed.error?.code === ErrorCode.PRECONDITION_FAILED || outcomeOf(replayed) !== outcomeOf(x.result!)) {
        problems.push(`revision ${revision} (${x.key}, ${x.kind}): the daemon answered ${describe(x.result)}, ` +
          `the model's replay ${describe(replayed)}`);
        return problems;
      }
      this.owners.set(revision, x.key);
      this.checked++;
      problems.push(...atRevision(revision, { transaction, result: x.result! }));
    }
    if (byRevision.size !== revisionNow - start) {
      problems.push(`${byRevision.size} transactions committed revisions, the daemon moved ${start}..${revisionNow}`);
    }
    this.checked += this.round.filter((x) => !committedRevision(x.result!)).length;
    this.round.length = 0;
    return problems;
  }
}
