/**
 * The writer core: groups of transactions, revisions, idempotency, publish and reclamation.
 * Owner: the writer thread only (main.ts runs it; tests and benchmarks may run it in their own thread).
 *
 * Commit path of a group, in this order (the durability issue slots the log in at step 3):
 *   1. beginGroup(): the epoch being built is the published one + 1;
 *   2. commit() per transaction: plan (all checks) -> apply -> one revision, result bytes kept;
 *   3. (log append of the group's records, one fdatasync);
 *   4. publish(): root block -> Atomics.store(root) -> Atomics.store(epoch); reclaim what no pin can reach;
 *   5. the caller hands out the group's results.
 * Invariants: revisions are consecutive and one per changing transaction; nothing of a group is visible before
 * publish; the writer never waits for a reader (an expired pin is ignored, and its reader's query fails).
 */
import * as flatbuffers from 'flatbuffers';
import { ArenaAllocator, ArenaFullError, ArenaView } from '../../core/arena.js';
import { AssertionError } from '../../core/assert.js';
import { checkedBuffer } from '../../core/checked.js';
import {
  ErrorCode, ErrorT, OpResult, Transaction, TransactionResult, TransactionResultT,
} from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import * as limits from '../../core/limits.js';
import { LogGroupBuilder } from '../../core/log-entry.js';
import { Applier, type OpOutcome } from './apply.js';
import type { ChangeRecorder } from './changes.js';
import { rewriteConfigs } from './log-rewrite.js';
import { Planner, PlanError } from './plan.js';
import { Tables } from './tables.js';

export interface WriterOptions {
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
  arenaBytesMax: number;
  pinMsMax: number;
  now: () => number;
}

interface Outcome { revision: number; code: ErrorCode; message: string; opIndex: number; preconditionIndex: number;
  ops: OpOutcome[] | null; changed: boolean; inlineConfigs: number }

const builder = new flatbuffers.Builder(1024);

export class WriterCore {
  readonly tables: Tables;
  readonly allocator: ArenaAllocator;
  private readonly planner: Planner;
  private readonly applier: Applier;
  private readonly control: Int32Array;
  private readonly controlF64: Float64Array;
  private readonly options: WriterOptions;
  revision = 0;
  epochPublished = 0;
  private rootPublished = 0;
  // Remembered outcomes, as their encoded results (compact: a result of 4096 ops is ~50 KB, not 4096 objects),
  // at most idempotencyKeysMax of them and idempotencyBytesMax bytes, oldest forgotten first.
  private readonly idempotency = new Map<string, Uint8Array>();
  private readonly idempotencyOrder: string[] = [];
  private idempotencyHead = 0;
  private idempotencyBytes = 0;
  pinsExpired = 0;
  groupsPublished = 0;
  /** Where commit() writes the log entries of the group being built; null: nothing is logged (replay, tests). */
  log: LogGroupBuilder | null = null;
  /** What encodes each revision's change record (changes.ts); null: none (no watcher, tools, bulk loads). */
  changes: ChangeRecorder | null = null;

  constructor(options: WriterOptions) {
    this.options = options;
    const view = new ArenaView(options.arena);
    this.allocator = new ArenaAllocator(view, options.arenaBytesMax);
    this.tables = new Tables(view, this.allocator);
    this.planner = new Planner(this.tables);
    this.applier = new Applier(this.tables);
    this.control = new Int32Array(options.control);
    this.controlF64 = new Float64Array(options.control);
    this.beginGroup();
    this.publish();
    Atomics.store(this.control, layout.controlWriterStateWord, layout.writerStateRunning);
  }

  beginGroup(): void {
    this.tables.context.epochBuilding = this.epochPublished + 1;
  }

  /**
   * Checks and applies one transaction; returns its TransactionResult bytes (valid after publish only).
   * scope: the roles the transaction may write (PERMISSION_DENIED for any other record); null: any record.
   * A replay never has one: what the log holds was allowed when it committed.
   */
  commit(bytes: Uint8Array, scope: readonly string[] | null = null): Uint8Array {
    if (bytes.length > limits.transactionBytesMax) {
      return encodeOutcome(errorOutcome(this.revision, ErrorCode.INVALID_ARGUMENT,
        `a transaction is at most ${limits.transactionBytesMax} bytes`));
    }
    let transaction: Transaction;
    let clientId: string | null;
    let sequence: bigint;
    try {
      transaction = Transaction.getRootAsTransaction(checkedBuffer(bytes));
      ({ clientId, sequence } = Planner.idempotency(transaction));
    } catch (error) {
      return encodeOutcome(this.clientError(error));
    }
    const key = clientId === null ? null : `${clientId}\u0000${sequence}`;
    if (key !== null) {
      const first = this.idempotency.get(key);
      if (first !== undefined) return markDuplicate(first);
    }
    this.tables.configsNew.length = 0;
    const outcome = this.commitTransaction(transaction, clientId, sequence, scope);
    const result = encodeOutcome(outcome);
    const log = this.log;
    if (log !== null) {
      if (outcome.code === ErrorCode.OK && (outcome.changed || clientId !== null)) {
        this.logEntry(log, bytes, clientId, sequence, outcome);
      } else if (clientId !== null && outcome.code !== ErrorCode.RESOURCE_EXHAUSTED) {
        // A keyed failure is remembered (docs/semantics.md): logged as its key and result, never re-executed.
        log.addOutcome(clientId, sequence, result);
      }
    }
    if (key !== null && outcome.code !== ErrorCode.RESOURCE_EXHAUSTED) this.remember(key, result);
    return result;
  }

  private commitTransaction(transaction: Transaction, clientId: string | null, sequence: bigint,
    scope: readonly string[] | null): Outcome {
    let plan;
    try {
      plan = this.planner.plan(transaction, clientId, sequence, scope);
    } catch (error) {
      return this.clientError(error);
    }
    // Apply must not fail half way: the untouched end of the arena must hold an upper bound of what it writes.
    if (this.allocator.bumpBytesLeft() < plan.bytesBound) {
      return errorOutcome(this.revision, ErrorCode.RESOURCE_EXHAUSTED,
        `the arena cannot hold this transaction (up to ${plan.bytesBound} bytes); raise arenaBytesMax`);
    }
    const tables = this.tables;
    tables.revisionBuilding = this.revision + 1;
    const ops: OpOutcome[] = [];
    let changed = false;
    const changes = this.changes;
    for (const op of plan.ops) {
      if (changes !== null) changes.beforeOp(op);
      const outcome = this.applier.apply(op);
      if (!outcome.noop) {
        changed = true;
        if (changes !== null) changes.afterOp(op, outcome);
      }
      ops.push(outcome);
    }
    tables.flushConfigs();
    if (changed) this.revision++;
    // Encoded now, before the next transaction of the group changes these records again.
    if (changes !== null) {
      if (changed) changes.commit(this.revision);
      else changes.discard();
    }
    return { revision: this.revision, code: ErrorCode.OK, message: '', opIndex: -1, preconditionIndex: -1, ops,
      changed, inlineConfigs: plan.inlineConfigs };
  }

  /**
   * The transaction's log entry, in the group being built: compact for a lone transition, else its bytes, with
   * configs named by hash unless this transaction stored them first (log-rewrite.ts).
   */
  private logEntry(log: LogGroupBuilder, bytes: Uint8Array, clientId: string | null, sequence: bigint,
    outcome: Outcome): void {
    const noop = !outcome.changed;
    // The planner read and checked every field it uses, within a read budget; the log form reads the bytes again,
    // maybe more of them (unpack), so through a buffer without that budget: the transaction is applied already,
    // and nothing here may fail because of the client's bytes. If a form still cannot be made, the bytes as given
    // are logged: replay plans them exactly as the commit did.
    const transaction = Transaction.getRootAsTransaction(new flatbuffers.ByteBuffer(bytes));
    try {
      if (LogGroupBuilder.compactable(transaction)) {
        log.addCompact(transaction, clientId, sequence, noop);
        return;
      }
      const created = this.tables.configsNew;
      if (outcome.inlineConfigs !== 0 || created.length !== transaction.configsLength()) {
        const isNew = new Set(created);
        log.addGeneral(rewriteConfigs(transaction, (hex) => isNew.has(hex)), noop);
        return;
      }
    } catch (error) {
      if (error instanceof AssertionError) throw error;
    }
    log.addGeneral(bytes, noop);
  }

  /** A client's mistake (or malformed bytes) as an outcome; a bug or a full arena is rethrown. */
  private clientError(error: unknown): Outcome {
    if (error instanceof PlanError) {
      const outcome = errorOutcome(this.revision, error.code, error.message);
      outcome.opIndex = error.opIndex;
      outcome.preconditionIndex = error.preconditionIndex;
      return outcome;
    }
    if (error instanceof AssertionError || error instanceof ArenaFullError) throw error;
    return errorOutcome(this.revision, ErrorCode.INVALID_ARGUMENT,
      `malformed transaction: ${(error as Error)?.message ?? String(error)}`);
  }

  private remember(key: string, result: Uint8Array): void {
    this.idempotency.set(key, result);
    this.idempotencyOrder.push(key);
    this.idempotencyBytes += result.length;
    while (this.idempotency.size > limits.idempotencyKeysMax || this.idempotencyBytes > limits.idempotencyBytesMax) {
      const oldest = this.idempotencyOrder[this.idempotencyHead]!;
      this.idempotencyBytes -= this.idempotency.get(oldest)!.length;
      this.idempotency.delete(oldest);
      this.idempotencyHead++;
    }
    if (this.idempotencyHead > limits.idempotencyKeysMax) {
      this.idempotencyOrder.splice(0, this.idempotencyHead);
      this.idempotencyHead = 0;
    }
  }

  /**
   * The idempotency window, oldest first, as (client id, sequence, encoded first result): what a snapshot of the
   * published revision keeps (call it between groups, so that it matches the published revision).
   */
  idempotencyEntries(): { clientId: string; sequence: bigint; result: Uint8Array }[] {
    const entries: { clientId: string; sequence: bigint; result: Uint8Array }[] = [];
    for (let i = this.idempotencyHead; i < this.idempotencyOrder.length; i++) {
      const key = this.idempotencyOrder[i]!;
      const result = this.idempotency.get(key);
      if (result === undefined) continue;
      const split = key.indexOf('\u0000');
      entries.push({ clientId: key.slice(0, split), sequence: BigInt(key.slice(split + 1)), result });
    }
    return entries;
  }

  /** Puts back a remembered outcome (a snapshot's idempotency window, oldest first), as commit() would have. */
  restoreIdempotency(clientId: string, sequence: bigint, result: Uint8Array): void {
    const key = `${clientId}\u0000${sequence}`;
    if (!this.idempotency.has(key)) this.remember(key, result);
  }

  /** Makes everything applied since beginGroup() visible to readers, then reclaims unreachable memory. */
  publish(): void {
    const tables = this.tables;
    const epoch = tables.context.epochBuilding;
    const root = tables.writeRootBlock(this.revision);
    Atomics.store(this.control, layout.controlRootPublishedWord, root);
    Atomics.store(this.control, layout.controlEpochPublishedWord, epoch | 0);
    Atomics.store(this.control, layout.controlArenaBytesWord, tables.view.bytes | 0);
    Atomics.store(this.control, layout.controlArenaBytesUsedWord, this.allocator.bytesAllocated | 0);
    if (this.rootPublished !== 0) this.allocator.retire(this.rootPublished, layout.rootBytes, epoch);
    this.rootPublished = root;
    this.epochPublished = epoch;
    this.groupsPublished++;
    this.allocator.reclaim(this.epochSafe());
    this.beginGroup();
  }

  /**
   * The oldest epoch a reader may still read: the oldest live pin, or the published epoch. A pin older than its
   * limit (pinMsMax for a query, snapshotPinMsMax for a snapshot's long pin) is marked expired and ignored (its
   * query fails with DEADLINE_EXCEEDED, its snapshot is discarded).
   */
  private epochSafe(): number {
    const control = this.control;
    const published = this.epochPublished;
    let safe = published;
    const now = this.options.now();
    const longPinMsMax = Math.max(limits.snapshotPinMsMax, this.options.pinMsMax);
    const slots = Atomics.load(control, layout.controlSlotsClaimedWord);
    for (let slot = 0; slot < slots; slot++) {
      if (Atomics.load(control, layout.slotWord(slot, layout.slotOwnerWord)) === 0) continue;
      const state = Atomics.load(control, layout.slotWord(slot, layout.slotStateWord));
      if (state !== layout.slotStatePinned && state !== layout.slotStatePinnedLong) continue;
      const pin = Atomics.load(control, layout.slotWord(slot, layout.slotEpochWord));
      const age = now - this.controlF64[layout.controlPinTimeF64 + slot]!;
      if (age > (state === layout.slotStatePinnedLong ? longPinMsMax : this.options.pinMsMax)) {
        if (Atomics.compareExchange(control, layout.slotWord(slot, layout.slotStateWord), state,
          layout.slotStateExpired) === state) this.pinsExpired++;
        continue;
      }
      const pinFull = published - (((published | 0) - pin) >>> 0);
      if (pinFull < safe) safe = pinFull;
    }
    return safe;
  }

  stats(): { revision: number; configCount: number; taskCount: number; arenaBytesUsed: number; arenaBytes: number;
    retired: number; pinsExpired: number; groups: number; strings: number } {
    return {
      revision: this.revision, configCount: this.tables.configCount, taskCount: this.tables.taskCount,
      arenaBytesUsed: this.allocator.bytesAllocated, arenaBytes: this.tables.view.bytes,
      retired: this.allocator.retiredCount(), pinsExpired: this.pinsExpired, groups: this.groupsPublished,
      strings: this.tables.internedCount(),
    };
  }
}

/** An encoded TransactionResult carrying only an error (the writer refusing a transaction it cannot take). */
export function errorResult(revision: number, code: ErrorCode, message: string): Uint8Array {
  return encodeOutcome(errorOutcome(revision, code, message));
}

function errorOutcome(revision: number, code: ErrorCode, message: string): Outcome {
  return { revision, code, message, opIndex: -1, preconditionIndex: -1, ops: null, changed: false, inlineConfigs: 0 };
}

/** The first outcome again, marked as a replay (duplicate = true). Replays are rare: decode and re-encode. */
function markDuplicate(first: Uint8Array): Uint8Array {
  const result = TransactionResult.getRootAsTransactionResult(new flatbuffers.ByteBuffer(first)).unpack();
  result.duplicate = true;
  builder.clear();
  builder.finish(result.pack(builder));
  return builder.asUint8Array().slice();
}

const opOffsets: number[] = [];

function encodeOutcome(outcome: Outcome): Uint8Array {
  if (outcome.code === ErrorCode.OK) return encodeSuccess(outcome);
  const result = new TransactionResultT();
  result.revision = 0n;
  result.error = new ErrorT(outcome.code, outcome.message, outcome.opIndex, outcome.preconditionIndex,
    BigInt(outcome.revision));
  builder.clear();
  builder.finish(result.pack(builder));
  return builder.asUint8Array().slice();
}

/** The common result, built with the static API (no objects): a revision and one OpResult per operation. */
function encodeSuccess(outcome: Outcome): Uint8Array {
  builder.clear();
  const ops = outcome.ops!;
  opOffsets.length = 0;
  for (const op of ops) {
    const changed = op.changed === null ? 0 : OpResult.createChangedVector(builder, op.changed);
    opOffsets.push(OpResult.createOpResult(builder, op.noop, op.count, changed));
  }
  const vector = TransactionResult.createOpsVector(builder, opOffsets);
  TransactionResult.startTransactionResult(builder);
  TransactionResult.addRevision(builder, BigInt(outcome.revision));
  TransactionResult.addOps(builder, vector);
  builder.finish(TransactionResult.endTransactionResult(builder));
  return builder.asUint8Array().slice();
}
