/**
 * The keyed transactions of vanishing clients, and the check that each was applied exactly once or not at all.
 * Owner: tests only.
 * Invariants: transaction (clientId, sequence) creates the task `<clientId>-<sequence>` with a precondition that
 * it is absent, under the idempotency key (clientId, sequence); its bytes are a function of (role, clientId,
 * sequence, padBytes) alone, so a child process and the test build the same bytes. Applied twice without the key,
 * the second would fail its precondition: a resend that answers PRECONDITION_FAILED means a key was lost.
 */
import { encode, jobConfig, task, txn, upsert, f } from '../../support/build.js';
import { commitResult, errorOf, make, type RawClient } from '../../support/raw-client.js';

export function vanishTransaction(role: string, clientId: string, sequence: number, padBytes = 0): Uint8Array {
  const id = `${clientId}-${sequence}`;
  const config = jobConfig(role, 'prod', 'vanish', { data: padBytes > 0 ? 'x'.repeat(padBytes) : undefined });
  return txn([upsert([task(id, config, sequence)])], {
    idempotency: make(f.IdempotencyKeyT, { clientId, sequence: BigInt(sequence) }),
    preconditions: [make(f.PreconditionT, { table: f.RecordTable.TASK, kind: f.PreconditionKind.ABSENT, taskId: id })],
  });
}

/** The Envelope of a CommitRequest carrying `transaction`, as a vanishing client sends it itself. */
export function commitEnvelope(id: number, transaction: Uint8Array): Uint8Array {
  return encode(make(f.EnvelopeT, { id, bodyType: f.Body.CommitRequest,
    body: make(f.CommitRequestT, { transaction: [...transaction] }) }));
}

export interface ResendOutcome { committedBefore: number; committedNow: number }

/**
 * Resends each transaction from a live connection: DUPLICATE (it was committed before the client vanished) or a
 * fresh commit (it was not); anything else is an error. `neverCommitted` must all be fresh (torn frames).
 */
export async function resendOnce(client: RawClient, transactions: Uint8Array[], neverCommitted: Set<number> = new Set()):
  Promise<ResendOutcome> {
  const outcome: ResendOutcome = { committedBefore: 0, committedNow: 0 };
  const answers = await Promise.all(transactions.map((bytes) =>
    client.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...bytes] }))));
  answers.forEach((answer, i) => {
    if (answer.bodyType !== f.Body.CommitResponse) throw new Error(`resend ${i}: ${JSON.stringify(errorOf(answer))}`);
    const result = commitResult(answer);
    if (result.error !== null) throw new Error(`resend ${i}: ${f.ErrorCode[result.error.code]} ${String(result.error.message)} (a lost idempotency key?)`);
    if (result.duplicate && neverCommitted.has(i)) throw new Error(`resend ${i}: a torn frame was committed`);
    if (result.duplicate) outcome.committedBefore++;
    else outcome.committedNow++;
  });
  return outcome;
}
