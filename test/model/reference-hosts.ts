/**
 * Reference model, the other records: quotas, host attributes, maintenance requests, scheduler metadata.
 * Owner: tests only.
 * Invariants: host attributes are stored in canonical order (values sorted and unique, attributes sorted by
 * name then values, duplicates dropped), so "identical" is a plain comparison of canonical forms; an identical
 * re-save of host attributes or scheduler metadata writes nothing.
 */
import { text } from '../../core/text.js';
import {
  AttributeT, HostAttributesT, HostMaintenanceRequestT, MaintenanceMode, OpResultT, QuotaT, ResourceAggregateT,
  RemoveMaintenanceRequestT, RemoveQuotaT, ResourceType, SaveHostAttributesT, SaveMaintenanceRequestT, SaveQuotaT,
  SaveSchedulerMetadataT, SchedulerMetadataT,
} from '../../core/fbs/strata.js';
import {
  compareUtf8, invalid, isIdentifier, isMember, isName, isSetMember, modelLimits, nullEmptyStrings,
} from './reference-common.js';
import { Context } from './reference-configs.js';
import { opResult } from './reference-tasks.js';

function removeFrom<T>(map: Map<string, T>, key: string): OpResultT {
  return map.delete(key) ? opResult(false, 1) : opResult(true, 0);
}

export function saveQuota(context: Context, op: SaveQuotaT, opIndex: number): OpResultT {
  const role = text(op.role);
  if (!isIdentifier(role)) throw invalid(`invalid quota role ${JSON.stringify(role)}`, opIndex);
  for (const resource of op.quota?.resources ?? []) {
    if (!isSetMember(ResourceType, resource.type)) throw invalid(`${resource.type} is not a ResourceType`, opIndex);
  }
  const stored = new QuotaT(role, op.quota ?? new ResourceAggregateT(), context.revisionNext);
  nullEmptyStrings(stored);
  context.state.quotas.set(role, stored);
  return opResult(false, 1);
}

export function removeQuota(context: Context, op: RemoveQuotaT, opIndex: number): OpResultT {
  const role = text(op.role);
  if (!isIdentifier(role)) throw invalid(`invalid quota role ${JSON.stringify(role)}`, opIndex);
  return removeFrom(context.state.quotas, role);
}

function compareValueLists(a: readonly string[], b: readonly string[]): number {
  for (let index = 0; index < Math.min(a.length, b.length); index += 1) {
    const order = compareUtf8(a[index] ?? '', b[index] ?? '');
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

/** Attributes as a set of (name, set of values), in canonical order. */
export function canonicalAttributes(attributes: readonly AttributeT[]): AttributeT[] {
  const canonical = attributes.map((attribute) => new AttributeT(text(attribute.name),
    [...new Set(attribute.values)].sort(compareUtf8)));
  canonical.sort((a, b) => compareUtf8(text(a.name), text(b.name)) || compareValueLists(a.values, b.values));
  return canonical.filter((attribute, index) => {
    const previous = canonical[index - 1];
    return previous === undefined || text(previous.name) !== text(attribute.name) ||
      compareValueLists(previous.values, attribute.values) !== 0;
  });
}

function sameHost(a: HostAttributesT, b: HostAttributesT): boolean {
  if (a.mode !== b.mode || text(a.slaveId) !== text(b.slaveId)) return false;
  if (a.attributes.length !== b.attributes.length) return false;
  return a.attributes.every((attribute, index) => {
    const other = b.attributes[index];
    return other !== undefined && text(attribute.name) === text(other.name) &&
      compareValueLists(attribute.values, other.values) === 0;
  });
}

function checkHost(input: HostAttributesT, seen: Set<string>, opIndex: number): string {
  const host = text(input.host);
  if (!isName(host)) throw invalid(`invalid host ${JSON.stringify(host)}`, opIndex);
  if (seen.has(host)) throw invalid(`host ${host} twice in one SaveHostAttributes`, opIndex);
  seen.add(host);
  for (const attribute of input.attributes) {
    if (text(attribute.name) === '') throw invalid(`host ${host}: an attribute without a name`, opIndex);
    if (attribute.values.length === 0) throw invalid(`host ${host}: attribute without values`, opIndex);
  }
  if (!isMember(MaintenanceMode, input.mode)) throw invalid(`${input.mode} is not a MaintenanceMode`, opIndex);
  return host;
}

export function saveHostAttributes(context: Context, op: SaveHostAttributesT, opIndex: number): OpResultT {
  if (op.attributes.length > modelLimits.queryKeysMax) {
    throw invalid(`more than ${modelLimits.queryKeysMax} hosts in one operation`, opIndex);
  }
  const seen = new Set<string>();
  const changed: boolean[] = [];
  for (const input of op.attributes) {
    const host = checkHost(input, seen, opIndex);
    const stored = new HostAttributesT(host, canonicalAttributes(input.attributes), input.mode, input.slaveId,
      context.revisionNext);
    nullEmptyStrings(stored);
    const existing = context.state.hosts.get(host);
    const isChange = existing === undefined || !sameHost(existing, stored);
    if (isChange) context.state.hosts.set(host, stored);
    changed.push(isChange);
  }
  const count = changed.filter((flag) => flag).length;
  return opResult(count === 0, count, changed);
}

export function saveMaintenanceRequest(context: Context, op: SaveMaintenanceRequestT, opIndex: number): OpResultT {
  const request = op.request;
  if (request === null) throw invalid('SaveMaintenanceRequest without request', opIndex);
  const host = text(request.host);
  if (!isName(host)) throw invalid(`invalid host ${JSON.stringify(host)}`, opIndex);
  const stored = new HostMaintenanceRequestT(host, request.defaultSlaPolicyType, request.defaultSlaPolicy,
    request.timeoutSecs, request.createdTimestampMs, context.revisionNext);
  nullEmptyStrings(stored);
  context.state.maintenance.set(host, stored);
  return opResult(false, 1);
}

export function removeMaintenanceRequest(
  context: Context, op: RemoveMaintenanceRequestT, opIndex: number,
): OpResultT {
  const host = text(op.host);
  if (!isName(host)) throw invalid(`invalid host ${JSON.stringify(host)}`, opIndex);
  return removeFrom(context.state.maintenance, host);
}

function sameMetadata(a: SchedulerMetadataT, b: SchedulerMetadataT): boolean {
  if (text(a.frameworkId) !== text(b.frameworkId) || a.details.length !== b.details.length) return false;
  return a.details.every((detail, index) => {
    const other = b.details[index];
    return other !== undefined && text(detail.key) === text(other.key) && text(detail.value) === text(other.value);
  });
}

export function saveSchedulerMetadata(context: Context, op: SaveSchedulerMetadataT, opIndex: number): OpResultT {
  const metadata = op.metadata;
  if (metadata === null) throw invalid('SaveSchedulerMetadata without metadata', opIndex);
  if (text(metadata.frameworkId) === '') throw invalid('empty framework_id', opIndex);
  const stored = new SchedulerMetadataT(metadata.frameworkId, metadata.details, context.revisionNext);
  nullEmptyStrings(stored);
  const existing = context.state.scheduler;
  if (existing !== null && sameMetadata(existing, stored)) return opResult(true, 0);
  context.state.scheduler = stored;
  return opResult(false, 1);
}
