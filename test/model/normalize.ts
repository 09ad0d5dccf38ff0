/**
 * Plain, comparable values from object-API results, for `t.deepEqual` and for fast string comparison.
 * Owner: tests only.
 * Invariants: two results normalize equal iff they are equal field by field, except what the contract leaves
 * free: error messages and error revisions (only code, op_index and precondition_index are compared), and the
 * revision of a query response that carries an error. bigint → decimal string, bytes → hex, keys sorted,
 * null and '' kept apart (results must leave empty strings out).
 */
import { ErrorT, QueryResponseT, TransactionResultT } from '../../core/fbs/strata.js';

/** Fields that hold bytes ([ubyte] vectors unpack as number[]). */
const byteFields = new Set(['hash', 'configHash', 'bytes']);

function hexOf(bytes: ArrayLike<number>): string {
  return Buffer.from(Uint8Array.from(bytes)).toString('hex');
}

function plainError(error: ErrorT): unknown {
  return { code: error.code, opIndex: error.opIndex, preconditionIndex: error.preconditionIndex };
}

export function plain(value: unknown, field = ''): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Object.is(value, -0) ? 0 : value;
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return hexOf(value);
  if (Array.isArray(value)) {
    if (byteFields.has(field)) return hexOf(value as number[]);
    return value.map((item) => plain(item));
  }
  if (value instanceof ErrorT) return plainError(value);
  const record = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(record).sort()) out[key] = plain(record[key], key);
  return out;
}

export function normalizeTransactionResult(result: TransactionResultT): unknown {
  return plain(result);
}

export function normalizeQueryResponse(response: QueryResponseT): unknown {
  const out = plain(response) as Record<string, unknown>;
  if (response.error !== null) delete out['revision'];
  return out;
}

/** One line for a log or an assertion message (bigint-safe). */
export function describe(value: unknown, charactersMax = 4000): string {
  const json = JSON.stringify(plain(value));
  return json.length <= charactersMax ? json : `${json.slice(0, charactersMax)}… (${json.length} characters)`;
}
