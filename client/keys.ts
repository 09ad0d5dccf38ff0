/**
 * Key helpers shared by the transaction builder, queries and watches. Owner: the caller's thread.
 * Invariants: plain `{role, environment, name}` objects become object-API tables (JobKeyT, ...), which is what
 * the generated pack() needs; nothing here validates names (the server does, with typed errors).
 */
import { JobKeyT, JobUpdateKeyT } from '../core/fbs/strata.js';

export interface JobKeyLike { role: string; environment: string; name: string }
export interface JobUpdateKeyLike { job: JobKeyLike; id: string }

export function jobKey(key: JobKeyLike): JobKeyT {
  return key instanceof JobKeyT ? key : new JobKeyT(key.role, key.environment, key.name);
}

export function jobUpdateKey(key: JobUpdateKeyLike): JobUpdateKeyT {
  return key instanceof JobUpdateKeyT ? key : new JobUpdateKeyT(jobKey(key.job), key.id);
}

/** A revision given as a number or a bigint, as the wire's bigint. */
export function revisionOf(revision: bigint | number): bigint {
  return typeof revision === 'bigint' ? revision : BigInt(Math.trunc(revision));
}
