/**
 * Bearer tokens and what each may do. Owner: the main thread (sessions ask it; the writer checks write scopes
 * per record, see Engine.commit's scope).
 *
 * Invariants:
 * - No tokens configured: every connection is admin (the config refuses that beyond loopback unless allowed).
 * - A token compares in constant time; an unknown token gets nothing. Only its SHA-256 is kept (per token and
 *   per connection, for a reload to re-check it).
 * - A role-scoped token reads only queries that name a role inside its scope (so the reader never has to filter
 *   results); role summaries, hosts, maintenance and scheduler metadata need read access to every role ("*").
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as flatbuffers from 'flatbuffers';
import {
  CronJobsQuery, JobKeysQuery, JobSummaryQuery, JobUpdateQuery, Query, QueryRequest, QuotaQuery, RecordTable,
  TaskQuery, WatchFilter,
} from '../core/fbs/strata.js';
import type { TokenConfig } from './config.js';

export interface Principal {
  name: string;
  admin: boolean;
  readAll: boolean;
  writeAll: boolean;
  read: ReadonlySet<string>;
  write: ReadonlySet<string>;
}

export const anonymousAdmin: Principal = {
  name: 'anonymous', admin: true, readAll: true, writeAll: true, read: new Set(), write: new Set(),
};

function principalOf(token: TokenConfig): Principal {
  return {
    name: token.name, admin: token.admin,
    readAll: token.admin || token.read.includes('*'), writeAll: token.admin || token.write.includes('*'),
    read: new Set(token.read.filter((r) => r !== '*')), write: new Set(token.write.filter((r) => r !== '*')),
  };
}

export class Authenticator {
  private readonly entries: { digest: Buffer; principal: Principal }[];

  constructor(tokens: TokenConfig[]) {
    this.entries = tokens.map((t) => ({ digest: tokenDigest(t.token), principal: principalOf(t) }));
  }

  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /** The principal of a token, or null. Every configured token is compared (no early exit). */
  authenticate(token: string): Principal | null {
    return this.authenticateDigest(tokenDigest(token));
  }

  /** The principal of a token given by its digest (tokenDigest): a connection keeps the digest, not the token. */
  authenticateDigest(given: Buffer): Principal | null {
    if (this.entries.length === 0) return anonymousAdmin;
    let found: Principal | null = null;
    for (const entry of this.entries) if (timingSafeEqual(entry.digest, given)) found = entry.principal;
    return found;
  }
}

/** SHA-256 of a token: what is compared (in constant time) and what a connection keeps for a reload. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Whether two principals may do exactly the same (a reload keeps a connection only then). */
export function samePrincipal(a: Principal, b: Principal): boolean {
  const sameSet = (x: ReadonlySet<string>, y: ReadonlySet<string>) => x.size === y.size && [...x].every((r) => y.has(r));
  return a.name === b.name && a.admin === b.admin && a.readAll === b.readAll && a.writeAll === b.writeAll &&
    sameSet(a.read, b.read) && sameSet(a.write, b.write);
}

export function canRead(p: Principal, role: string | null): boolean {
  return p.readAll || (role !== null && role !== '' && p.read.has(role));
}

/** The roles a commit may touch: null for every role (and the role-less tables). */
export function writeScope(p: Principal): readonly string[] | null {
  return p.writeAll ? null : [...p.write];
}

/** Why this query is not allowed to `p`, or null. The request is already checked to be a valid QueryRequest. */
export function queryDenied(p: Principal, request: QueryRequest): string | null {
  if (p.readAll) return null;
  const type = request.queryType();
  const role = (r: string | null): string | null => (canRead(p, r) ? null : `this token may not read role ${JSON.stringify(r ?? '')}`);
  switch (type) {
    case Query.TaskQuery: {
      const q = request.query(new TaskQuery()) as TaskQuery;
      if (q.role() !== null && q.role() !== '') return role(q.role());
      if (q.jobKeysLength() > 0) {
        for (let i = 0; i < q.jobKeysLength(); i++) {
          const denied = role(q.jobKeys(i)!.role());
          if (denied !== null) return denied;
        }
        return null;
      }
      return 'a role-scoped token must name a role (or job keys) in a task query';
    }
    case Query.JobKeysQuery: return role((request.query(new JobKeysQuery()) as JobKeysQuery).role());
    case Query.JobSummaryQuery: return role((request.query(new JobSummaryQuery()) as JobSummaryQuery).role());
    case Query.QuotaQuery: return role((request.query(new QuotaQuery()) as QuotaQuery).role());
    case Query.CronJobsQuery: {
      const q = request.query(new CronJobsQuery()) as CronJobsQuery;
      return role(q.job()?.role() || q.role());
    }
    case Query.JobUpdateQuery: {
      const q = request.query(new JobUpdateQuery()) as JobUpdateQuery;
      return role(q.key()?.job()?.role() || q.jobKey()?.role() || q.role());
    }
    default: return 'this query needs read access to every role';
  }
}

const roleTables = new Set<number>([RecordTable.TASK, RecordTable.CRON_JOB, RecordTable.JOB_UPDATE, RecordTable.QUOTA]);

/** Why this watch filter is not allowed to `p`, or null. */
export function watchDenied(p: Principal, filter: WatchFilter | null): string | null {
  if (p.readAll) return null;
  const role = filter?.role() ?? null;
  if (!canRead(p, role)) return role ? `this token may not read role ${JSON.stringify(role)}` : 'a role-scoped token must watch one role';
  const tables = filter?.tablesArray() ?? null;
  if (tables === null || tables.length === 0) return 'a role-scoped token must name the tables it watches (tasks, cron jobs, job updates, quotas)';
  for (const t of tables) if (!roleTables.has(t)) return `table ${RecordTable[t] ?? t} needs read access to every role`;
  return null;
}

/** Parses a nested QueryRequest; throws on malformed bytes (the caller answers INVALID_ARGUMENT). */
export function parseQuery(bytes: Uint8Array): QueryRequest {
  return QueryRequest.getRootAsQueryRequest(new flatbuffers.ByteBuffer(bytes));
}
