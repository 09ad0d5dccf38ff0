/**
 * Reference model, JobUpdateQuery: filters, the derived JobUpdateState, order and paging. Owner: tests only.
 * Invariants: the derived state comes only from the stored events (status: the last update event's, else
 * ROLLING_FORWARD; created: the first update event's timestamp; last modified: the greater of the last update
 * event's and the last instance event's timestamps; 0 when there are none).
 */
import { text } from '../../core/text.js';
import {
  JobUpdateDetailsT, JobUpdateQueryT, JobUpdateStateT, JobUpdateStatus, JobUpdateSummaryT, JobUpdateT,
  JobUpdatesResultT,
} from '../../core/fbs/strata.js';
import { compareUpdateKeys, invalid, isMember, jobKeyString, updateKeyString } from './reference-common.js';
import { checkConfigDetail, checkPaging, checkVectors, paged, storedConfigs } from './reference-results.js';
import { State, UpdateRecord } from './reference-state.js';

export function derivedState(details: JobUpdateDetailsT): JobUpdateStateT {
  const first = details.updateEvents[0];
  const last = details.updateEvents[details.updateEvents.length - 1];
  const lastInstance = details.instanceEvents[details.instanceEvents.length - 1];
  const stamps = [last?.timestampMs, lastInstance?.timestampMs].filter((stamp) => stamp !== undefined);
  const lastModified = stamps.reduce((max, stamp) => (stamp > max ? stamp : max), stamps[0] ?? 0n);
  return new JobUpdateStateT(last?.status ?? JobUpdateStatus.ROLLING_FORWARD, first?.timestampMs ?? 0n,
    lastModified);
}

interface Derived { record: UpdateRecord; state: JobUpdateStateT }

function updateMatcher(query: JobUpdateQueryT): (entry: Derived) => boolean {
  const role = text(query.role);
  const key = query.key === null ? null : updateKeyString(query.key);
  const jobKey = query.jobKey === null ? null : jobKeyString(query.jobKey);
  const user = text(query.user);
  const statuses = new Set<number>(query.updateStatuses);
  return ({ record, state }) => {
    const summary = record.details.update?.summary ?? null;
    return (role === '' || text(summary?.key?.job?.role) === role) &&
      (key === null || updateKeyString(summary?.key ?? null) === key) &&
      (jobKey === null || jobKeyString(summary?.key?.job ?? null) === jobKey) &&
      (user === '' || text(summary?.user) === user) &&
      (statuses.size === 0 || statuses.has(state.status));
  };
}

function withState({ record, state }: Derived): JobUpdateDetailsT {
  const details = record.details;
  const summary = details.update?.summary ?? null;
  const update = new JobUpdateT(
    new JobUpdateSummaryT(summary?.key ?? null, summary?.user ?? null, state, summary?.metadata ?? []),
    details.update?.instructions ?? null);
  return new JobUpdateDetailsT(update, details.updateEvents, details.instanceEvents, details.modRevision);
}

function summaryKey(entry: Derived) {
  return entry.record.details.update?.summary?.key ?? null;
}

export function jobUpdateQuery(state: State, query: JobUpdateQueryT): JobUpdatesResultT {
  checkPaging(query.offset, query.limit);
  checkVectors([query.updateStatuses]);
  for (const status of query.updateStatuses) {
    if (!isMember(JobUpdateStatus, status)) throw invalid(`update status ${status}`);
  }
  checkConfigDetail(query.configDetail);
  const matcher = updateMatcher(query);
  const matches = [...state.updates.values()]
    .map((record) => ({ record, state: derivedState(record.details) }))
    .filter(matcher);
  matches.sort((a, b) => {
    const x = a.state.lastModifiedTimestampMs;
    const y = b.state.lastModifiedTimestampMs;
    return (x > y ? -1 : x < y ? 1 : 0) || compareUpdateKeys(summaryKey(a), summaryKey(b));
  });
  const page = paged(matches, query.offset, query.limit);
  return new JobUpdatesResultT(page.map(withState),
    storedConfigs(state, page.flatMap((entry) => entry.record.configHexes), query.configDetail), matches.length);
}
