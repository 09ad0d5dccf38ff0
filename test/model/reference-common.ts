/**
 * Reference model, shared pieces: the limits, identifier and enum rules, string order and the error type of
 * docs/semantics.md. Owner: tests only (the reference model and the generator); never imported by the engine.
 * Invariants: every value here is copied from docs/semantics.md, not from the engine's code, so that the two
 * implementations stay independent; strings compare by UTF-8 bytes.
 */
import { text } from '../../core/text.js';
import {
  ErrorCode, JobKeyT, JobUpdateKeyT, ScheduleStatus,
} from '../../core/fbs/strata.js';

/** The limits of docs/semantics.md, restated here on purpose (the model does not read core/limits.ts). */
export const modelLimits = {
  identifierBytesMax: 128,
  nameBytesMax: 256, // task id, host, client id; slave id, slave host, scheduler, ancestor id, port name
  idempotencyKeysMax: 65_536,
  transactionOpsMax: 4096,
  transactionPreconditionsMax: 4096,
  transactionConfigsMax: 1024,
  transactionTasksMax: 10_000,
  configBytesMax: 256 * 1024,
  taskEventsMax: 1024,
  updateEventsMax: 65_536,
  queryKeysMax: 10_000,
  messageBytesMax: 4096, // a task event's message
  portsMax: 1024,        // assigned ports of one task or transition
} as const;

/** A failed transaction or query: the code and which operation or precondition is to blame. */
export class ModelError extends Error {
  override name = 'ModelError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly opIndex = -1,
    readonly preconditionIndex = -1,
  ) {
    super(message);
  }
}

export function invalid(message: string, opIndex = -1, preconditionIndex = -1): ModelError {
  return new ModelError(ErrorCode.INVALID_ARGUMENT, message, opIndex, preconditionIndex);
}

export function notFound(message: string, opIndex: number): ModelError {
  return new ModelError(ErrorCode.NOT_FOUND, message, opIndex);
}

/** A state limit (task events, update events): RESOURCE_EXHAUSTED, which idempotency does not remember. */
export function exhausted(message: string, opIndex: number): ModelError {
  return new ModelError(ErrorCode.RESOURCE_EXHAUSTED, message, opIndex);
}

export function utf8Bytes(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/** Strings sort by UTF-8 bytes everywhere (not by UTF-16 code units, which differ above U+FFFF). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const identifierPattern = /^[\w\-.]+$/;

/** A job key part, a quota role, a job update id. */
export function isIdentifier(value: string): boolean {
  return identifierPattern.test(value) && utf8Bytes(value) <= modelLimits.identifierBytesMax;
}

/** A task id, a host, a client id: non-empty, at most 256 bytes, no control characters. */
export function isName(value: string): boolean {
  if (value === '') return false;
  if (utf8Bytes(value) > modelLimits.nameBytesMax) return false;
  for (const character of value) {
    const codePoint = character.codePointAt(0) ?? 0;
    if (codePoint < 0x20 || codePoint === 0x7f) return false;
  }
  return true;
}

/** A text field that names a thing (slave id, slave host, scheduler, ancestor id): absent ('') or a name. */
export function isOptionalName(value: string): boolean {
  return value === '' || isName(value);
}

export function isJobKey(key: JobKeyT | null): key is JobKeyT {
  if (key === null) return false;
  return isIdentifier(text(key.role)) && isIdentifier(text(key.environment)) && isIdentifier(text(key.name));
}

export function isUpdateKey(key: JobUpdateKeyT | null): key is JobUpdateKeyT {
  if (key === null) return false;
  return isJobKey(key.job) && isIdentifier(text(key.id));
}

/** Numeric TypeScript enums map their values back to names: a value without a name is not a member. */
export function isMember(enumeration: Record<string | number, string | number>, value: number): boolean {
  return typeof enumeration[value] === 'string';
}

/**
 * For the enums whose 0 is schema.fbs's UNSET placeholder (ResourceType, VolumeMode, JobUpdateAction): Aurora has
 * no such value, so UNSET is not a valid value either.
 */
export function isSetMember(enumeration: Record<string | number, string | number>, value: number): boolean {
  return value !== 0 && isMember(enumeration, value);
}

export function isStatus(value: number): value is ScheduleStatus {
  return isMember(ScheduleStatus, value);
}

/** A job key as one string; `\u0000` cannot occur in a valid identifier, so distinct keys stay distinct. */
export function jobKeyString(key: JobKeyT | null): string {
  if (key === null) return '\u0001';
  return `${text(key.role)}\u0000${text(key.environment)}\u0000${text(key.name)}`;
}

export function updateKeyString(key: JobUpdateKeyT | null): string {
  if (key === null) return '\u0001';
  return `${jobKeyString(key.job)}\u0000${text(key.id)}`;
}

export function compareJobKeys(a: JobKeyT | null, b: JobKeyT | null): number {
  return compareUtf8(text(a?.role), text(b?.role)) ||
    compareUtf8(text(a?.environment), text(b?.environment)) ||
    compareUtf8(text(a?.name), text(b?.name));
}

export function compareUpdateKeys(a: JobUpdateKeyT | null, b: JobUpdateKeyT | null): number {
  return compareJobKeys(a?.job ?? null, b?.job ?? null) || compareUtf8(text(a?.id), text(b?.id));
}

export function copyJobKey(key: JobKeyT): JobKeyT {
  return new JobKeyT(text(key.role), text(key.environment), text(key.name));
}

export function copyUpdateKey(key: JobUpdateKeyT): JobUpdateKeyT {
  return new JobUpdateKeyT(key.job === null ? null : copyJobKey(key.job), text(key.id));
}

export function hex(bytes: Uint8Array | number[]): string {
  return Buffer.from(bytes).toString('hex');
}

/**
 * "Empty means absent": every string field that is '' becomes null, recursively (string vectors keep their
 * elements). Only for records the model owns: it mutates in place.
 */
export function nullEmptyStrings(value: unknown): void {
  if (Array.isArray(value)) {
    for (const item of value) nullEmptyStrings(item);
    return;
  }
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const field = record[key];
    if (field === '') record[key] = null;
    else if (typeof field === 'object' && field !== null) nullEmptyStrings(field);
  }
}

/** Aurora's TaskStateMachine, as the table of docs/semantics.md. */
const S = ScheduleStatus;
const afterPreempting = [S.FINISHED, S.FAILED, S.KILLING, S.KILLED, S.LOST, S.PARTITIONED];
export const allowedTransitions: ReadonlyMap<ScheduleStatus, readonly ScheduleStatus[]> = new Map([
  [S.INIT, [S.PENDING, S.THROTTLED]],
  [S.PENDING, [S.ASSIGNED, S.KILLING]],
  [S.THROTTLED, [S.PENDING, S.KILLING]],
  [S.ASSIGNED, [S.STARTING, S.RUNNING, S.FINISHED, S.FAILED, S.RESTARTING, S.DRAINING, S.KILLED, S.KILLING,
    S.LOST, S.PREEMPTING]],
  [S.STARTING, [S.RUNNING, S.FINISHED, S.FAILED, S.RESTARTING, S.DRAINING, S.KILLING, S.KILLED, S.LOST,
    S.PREEMPTING, S.PARTITIONED]],
  [S.RUNNING, [S.FINISHED, S.RESTARTING, S.DRAINING, S.FAILED, S.KILLING, S.KILLED, S.LOST, S.PREEMPTING,
    S.PARTITIONED]],
  [S.PARTITIONED, [S.LOST, S.FAILED, S.FINISHED, S.RUNNING, S.ASSIGNED, S.STARTING, S.RESTARTING, S.DRAINING,
    S.PREEMPTING, S.KILLING]],
  [S.PREEMPTING, afterPreempting],
  [S.RESTARTING, afterPreempting],
  [S.DRAINING, afterPreempting],
  [S.KILLING, [S.FINISHED, S.FAILED, S.KILLED, S.LOST, S.PARTITIONED]],
  [S.FINISHED, []],
  [S.FAILED, []],
  [S.KILLED, []],
  [S.LOST, []],
]);

export function isTransitionAllowed(from: ScheduleStatus, to: ScheduleStatus): boolean {
  return (allowedTransitions.get(from) ?? []).includes(to);
}

export const activeStatuses: ReadonlySet<ScheduleStatus> = new Set([
  S.ASSIGNED, S.DRAINING, S.KILLING, S.PENDING, S.PREEMPTING, S.RESTARTING, S.RUNNING, S.STARTING,
  S.PARTITIONED, S.THROTTLED,
]);

/** Aurora's JobStats buckets. */
export const pendingStatuses: ReadonlySet<ScheduleStatus> = new Set([S.INIT, S.PENDING, S.THROTTLED]);
export const runningStatuses: ReadonlySet<ScheduleStatus> = new Set([
  S.ASSIGNED, S.STARTING, S.RUNNING, S.KILLING, S.DRAINING, S.RESTARTING, S.PREEMPTING, S.PARTITIONED,
]);
export const finishedStatuses: ReadonlySet<ScheduleStatus> = new Set([S.FINISHED, S.KILLED]);
export const failedStatuses: ReadonlySet<ScheduleStatus> = new Set([S.FAILED, S.LOST]);
