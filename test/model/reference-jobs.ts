/**
 * Reference model, cron job and job update operations. Owner: tests only.
 * Invariants: a cron job's config has the cron job's key as its job; a job update holds one counted config
 * reference per InstanceTaskConfig (initial_state in order, then desired_state); replacing an update keeps its
 * events; events stay ordered by timestamp, equal timestamps in insertion order.
 */
import { text } from '../../core/text.js';
import {
  CronCollisionPolicy, InstanceTaskConfigT, JobConfigurationT, JobInstanceUpdateEventT, JobUpdateAction,
  JobUpdateDetailsT, JobUpdateEventT, JobUpdateInstructionsT, JobUpdateStatus, JobUpdateSummaryT, JobUpdateT,
  OpResultT, RangeT, RemoveCronJobT, RemoveJobUpdatesT, SaveCronJobT, SaveJobInstanceUpdateEventT, SaveJobUpdateEventT,
  SaveJobUpdateT,
} from '../../core/fbs/strata.js';
import {
  copyJobKey, copyUpdateKey, exhausted, invalid, isJobKey, isMember, isSetMember, isUpdateKey, jobKeyString, modelLimits,
  notFound, nullEmptyStrings, updateKeyString,
} from './reference-common.js';
import { acquireConfig, configOf, Context, hashArray, releaseConfig, resolveConfig } from './reference-configs.js';
import { UpdateRecord } from './reference-state.js';
import { opResult } from './reference-tasks.js';

export function saveCronJob(context: Context, op: SaveCronJobT, opIndex: number): OpResultT {
  const job = op.job;
  if (job === null) throw invalid('SaveCronJob without job', opIndex);
  if (!isJobKey(job.key)) throw invalid('invalid cron job key', opIndex);
  if (text(job.cronSchedule) === '') throw invalid('empty cron_schedule', opIndex);
  if (job.instanceCount < 1) throw invalid(`instance_count ${job.instanceCount} < 1`, opIndex);
  if (!isMember(CronCollisionPolicy, job.cronCollisionPolicy)) {
    throw invalid(`cron_collision_policy ${job.cronCollisionPolicy} is not a CronCollisionPolicy`, opIndex);
  }
  const configHex = resolveConfig(context, job.taskConfig, job.configHash, opIndex);
  const config = configOf(context.state, configHex);
  const key = jobKeyString(job.key);
  if (jobKeyString(config.config.job) !== key) throw invalid('the config job differs from the cron key', opIndex);
  const stored = new JobConfigurationT(copyJobKey(job.key), job.owner, job.cronSchedule, job.cronCollisionPolicy,
    null, job.instanceCount, hashArray(config), context.revisionNext);
  nullEmptyStrings(stored);
  acquireConfig(context, configHex);
  const existing = context.state.cronJobs.get(key);
  if (existing !== undefined) releaseConfig(context, existing.configHex);
  context.state.cronJobs.set(key, { job: stored, configHex });
  return opResult(false, 1);
}

export function removeCronJob(context: Context, op: RemoveCronJobT, opIndex: number): OpResultT {
  if (!isJobKey(op.key)) throw invalid('invalid cron job key', opIndex);
  const key = jobKeyString(op.key);
  const existing = context.state.cronJobs.get(key);
  if (existing === undefined) return opResult(true, 0);
  releaseConfig(context, existing.configHex);
  context.state.cronJobs.delete(key);
  return opResult(false, 1);
}

export function saveJobUpdate(context: Context, op: SaveJobUpdateT, opIndex: number): OpResultT {
  const summary = op.update?.summary ?? null;
  const key = summary?.key ?? null;
  if (summary === null || !isUpdateKey(key)) throw invalid('invalid job update key', opIndex);
  const instructions = op.update?.instructions ?? null;
  if (instructions === null || (instructions.desiredState === null && instructions.initialState.length === 0)) {
    throw invalid('instructions need a desired_state or a non-empty initial_state', opIndex);
  }
  const instanceConfigs = instructions.initialState.length + (instructions.desiredState === null ? 0 : 1);
  if (instanceConfigs > modelLimits.transactionConfigsMax) {
    throw invalid(`more than ${modelLimits.transactionConfigsMax} instance configs in one job update`, opIndex);
  }
  const configHexes: string[] = [];
  const initial = instructions.initialState.map((item) => storedInstanceConfig(context, item, configHexes, opIndex));
  const desired = instructions.desiredState === null ? null :
    storedInstanceConfig(context, instructions.desiredState, configHexes, opIndex);
  checkRanges(instructions.settings?.updateOnlyTheseInstances ?? [], opIndex);
  for (const entry of summary.metadata) {
    if (text(entry.key) === '') throw invalid('a metadata entry without a key', opIndex);
  }
  const storedSummary = new JobUpdateSummaryT(copyUpdateKey(key), summary.user, null, summary.metadata);
  const update = new JobUpdateT(storedSummary, new JobUpdateInstructionsT(initial, desired, instructions.settings));
  nullEmptyStrings(update);
  const mapKey = updateKeyString(key);
  const existing = context.state.updates.get(mapKey);
  for (const configHex of configHexes) acquireConfig(context, configHex);
  if (existing !== undefined) for (const configHex of existing.configHexes) releaseConfig(context, configHex);
  const details = new JobUpdateDetailsT(update, existing?.details.updateEvents ?? [],
    existing?.details.instanceEvents ?? [], context.revisionNext);
  context.state.updates.set(mapKey, { details, configHexes });
  return opResult(false, 1);
}

function checkRanges(ranges: readonly RangeT[], opIndex: number): void {
  for (const range of ranges) {
    if (range.first < 0 || range.first > range.last) {
      throw invalid(`instance range [${range.first}, ${range.last}] is not 0 <= first <= last`, opIndex);
    }
  }
}

function storedInstanceConfig(
  context: Context, input: InstanceTaskConfigT, configHexes: string[], opIndex: number,
): InstanceTaskConfigT {
  const configHex = resolveConfig(context, input.task, input.configHash, opIndex);
  checkRanges(input.instances, opIndex);
  configHexes.push(configHex);
  return new InstanceTaskConfigT(null, input.instances, hashArray(configOf(context.state, configHex)));
}

/** The key must be valid and the event present (inputs, before the lookup); then the update must exist. */
function eventTarget<T>(context: Context, key: SaveJobUpdateEventT['key'], event: T | null, opIndex: number,
): { existing: UpdateRecord; event: T } {
  if (!isUpdateKey(key)) throw invalid('invalid job update key', opIndex);
  if (event === null) throw invalid('an update event op without event', opIndex);
  const existing = context.state.updates.get(updateKeyString(key));
  if (existing === undefined) throw notFound('no such job update', opIndex);
  return { existing, event };
}

/** Inserts after every event with a timestamp <= the new one: ordered by timestamp, ties in insertion order. */
function insertByTimestamp<T>(events: readonly T[], event: T, timestamp: (item: T) => bigint): T[] {
  const at = events.findIndex((item) => timestamp(item) > timestamp(event));
  const out = events.slice();
  out.splice(at === -1 ? out.length : at, 0, event);
  return out;
}

export function saveJobUpdateEvent(context: Context, op: SaveJobUpdateEventT, opIndex: number): OpResultT {
  const { existing, event } = eventTarget(context, op.key, op.event, opIndex);
  if (!isMember(JobUpdateStatus, event.status)) throw invalid(`${event.status} is not a JobUpdateStatus`, opIndex);
  const details = existing.details;
  if (details.updateEvents.length >= modelLimits.updateEventsMax) throw exhausted('too many update events', opIndex);
  const stored = new JobUpdateEventT(event.status, event.timestampMs, event.user, event.message);
  nullEmptyStrings(stored);
  const events = insertByTimestamp(details.updateEvents, stored, (item) => item.timestampMs);
  const next = new JobUpdateDetailsT(details.update, events, details.instanceEvents, context.revisionNext);
  context.state.updates.set(updateKeyString(op.key), { details: next, configHexes: existing.configHexes });
  return opResult(false, 1);
}

export function saveJobInstanceUpdateEvent(
  context: Context, op: SaveJobInstanceUpdateEventT, opIndex: number,
): OpResultT {
  const { existing, event } = eventTarget(context, op.key, op.event, opIndex);
  if (!isSetMember(JobUpdateAction, event.action)) throw invalid(`${event.action} is not a JobUpdateAction`, opIndex);
  const details = existing.details;
  if (details.instanceEvents.length >= modelLimits.updateEventsMax) {
    throw exhausted('too many instance events', opIndex);
  }
  const stored = new JobInstanceUpdateEventT(event.instanceId, event.timestampMs, event.action, event.message);
  nullEmptyStrings(stored);
  const events = insertByTimestamp(details.instanceEvents, stored, (item) => item.timestampMs);
  const next = new JobUpdateDetailsT(details.update, details.updateEvents, events, context.revisionNext);
  context.state.updates.set(updateKeyString(op.key), { details: next, configHexes: existing.configHexes });
  return opResult(false, 1);
}

export function removeJobUpdates(context: Context, op: RemoveJobUpdatesT, opIndex: number): OpResultT {
  if (op.keys.length > modelLimits.queryKeysMax) {
    throw invalid(`more than ${modelLimits.queryKeysMax} update keys in one operation`, opIndex);
  }
  let removed = 0;
  for (const key of op.keys) {
    if (!isUpdateKey(key)) throw invalid('invalid job update key', opIndex);
    const mapKey = updateKeyString(key);
    const existing = context.state.updates.get(mapKey);
    if (existing === undefined) continue;
    for (const configHex of existing.configHexes) releaseConfig(context, configHex);
    context.state.updates.delete(mapKey);
    removed += 1;
  }
  return opResult(removed === 0, removed);
}
