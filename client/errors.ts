/**
 * The errors the client raises. Owner: the caller's thread.
 * Invariants: every failure a caller sees is a StrataError whose `code` is an ErrorCode of schema.fbs (the
 * server's own code when the server sent one); the subclasses only add what a caller acts on.
 */
import { ErrorCode, type ErrorT } from '../core/fbs/strata.js';

export class StrataError extends Error {
  readonly code: ErrorCode;
  /** The server's current revision when it raised the error (COMPACTED: the oldest revision still kept). */
  readonly revision: bigint;
  readonly opIndex: number;
  readonly preconditionIndex: number;

  constructor(code: ErrorCode, message: string, revision = 0n, options: { cause?: unknown; opIndex?: number;
    preconditionIndex?: number } = {}) {
    super(`${ErrorCode[code] ?? `code ${code}`}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StrataError';
    this.code = code;
    this.revision = revision;
    this.opIndex = options.opIndex ?? -1;
    this.preconditionIndex = options.preconditionIndex ?? -1;
  }
}

/** Retry after a reconnect. `ackUnknown`: a commit without idempotency key whose outcome cannot be known. */
export class UnavailableError extends StrataError {
  readonly ackUnknown: boolean;

  constructor(message: string, options: { cause?: unknown; ackUnknown?: boolean } = {}) {
    super(ErrorCode.UNAVAILABLE, message, 0n, options);
    this.name = 'UnavailableError';
    this.ackUnknown = options.ackUnknown ?? false;
  }
}

/** A watch asked for (or fell behind to) revisions the server no longer keeps: relist. */
export class CompactedError extends StrataError {
  readonly oldestRevision: bigint;

  constructor(message: string, oldestRevision: bigint) {
    super(ErrorCode.COMPACTED, message, oldestRevision);
    this.name = 'CompactedError';
    this.oldestRevision = oldestRevision;
  }
}

/** No answer within requestTimeoutMs. For a commit the outcome is unknown (resend it with the same key). */
export class TimeoutError extends StrataError {
  constructor(message: string) {
    super(ErrorCode.DEADLINE_EXCEEDED, message);
    this.name = 'TimeoutError';
  }
}

/** The server sent something the client cannot decode or did not expect; the client reconnects. */
export class ProtocolError extends StrataError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.INTERNAL, message, 0n, { cause });
    this.name = 'ProtocolError';
  }
}

/** The StrataError for an Error table of the wire. */
export function errorOf(error: ErrorT): StrataError {
  const message = typeof error.message === 'string' ? error.message : '';
  if (error.code === ErrorCode.COMPACTED) return new CompactedError(message, error.revision);
  if (error.code === ErrorCode.UNAVAILABLE) return new UnavailableError(message);
  return new StrataError(error.code, message, error.revision,
    { opIndex: error.opIndex, preconditionIndex: error.preconditionIndex });
}
