/**
 * Log entries: how a committed transaction is written into a LogGroup, and read back as the Transaction that
 * replay re-executes. Owner: any thread (the writer encodes; recovery and the tools decode).
 *
 * Forms (schema.fbs LogEntry):
 * - compact: a transaction of exactly one TransitionTask, no preconditions and no configs is logged as that
 *   TransitionTask (task id, new status, event) plus its idempotency key; repeated strings (message, scheduler,
 *   host, client id) are stored once per group.
 * - general: the transaction's bytes, with every config that the log already holds replaced by its hash
 *   (workers/writer/log-rewrite.ts makes that form; this module copies the bytes it is given).
 * - restore: a committed staged backup (StateRestore): replay replaces the whole state by that snapshot.
 * - outcome: a keyed transaction that failed, as its key and encoded result (remembered, not re-executed).
 * Invariant: decoding an entry gives a transaction that, replayed on the state before it, does exactly what the
 * original did (the planner is deterministic: timestamps and ids come from the client, never the clock).
 */
import * as flatbuffers from 'flatbuffers';
import {
  IdempotencyKey, LogEntry, LogGroup, Op, Operation, Port, StateRestore, Transaction, TransitionTask,
} from './fbs/strata.js';

const UTF8 = flatbuffers.Encoding.UTF8_BYTES;
const portScratch = new Port();

/** Builds one LogGroup payload from transactions in commit order. Reused across groups. */
export class LogGroupBuilder {
  private readonly builder = new flatbuffers.Builder(64 * 1024);
  private entries: number[] = [];
  private readonly strings = new Map<number, { bytes: Uint8Array; offset: number }>();
  private firstRevision = 0;
  private term = 0;
  count = 0;

  begin(firstRevision: number, term: number): void {
    this.builder.clear();
    this.strings.clear();
    this.entries.length = 0;
    this.firstRevision = firstRevision;
    this.term = term;
    this.count = 0;
  }

  /** A transaction with one TransitionTask op and nothing else, in compact form. */
  static compactable(transaction: Transaction): boolean {
    if (transaction.opsLength() !== 1 || transaction.preconditionsLength() !== 0 || transaction.configsLength() !== 0) {
      return false;
    }
    return transaction.ops(0)!.opType() === Op.TransitionTask;
  }

  addCompact(transaction: Transaction, clientId: string | null, sequence: bigint, noop: boolean): void {
    const b = this.builder;
    const t = transaction.ops(0)!.op(new TransitionTask()) as TransitionTask;
    const key = clientId === null ? 0 : IdempotencyKey.createIdempotencyKey(b, b.createSharedString(clientId), sequence);
    const transition = copyTransition(b, t, (bytes) => this.shared(bytes));
    LogEntry.startLogEntry(b);
    LogEntry.addTransition(b, transition);
    if (key !== 0) LogEntry.addIdempotency(b, key);
    if (noop) LogEntry.addNoop(b, true);
    this.entries.push(LogEntry.endLogEntry(b));
    this.count++;
  }

  /**
   * A string stored once per group: repeated messages, scheduler and host names cost 4 bytes after the first.
   * Keyed by an FNV-1a hash of the bytes (checked byte for byte), so that nothing is decoded.
   */
  private shared(bytes: Uint8Array | null): number {
    if (bytes === null || bytes.length === 0) return 0;
    let hash = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
    const found = this.strings.get(hash);
    if (found !== undefined && equalBytes(found.bytes, bytes)) return found.offset;
    const offset = this.builder.createString(bytes);
    if (found === undefined) this.strings.set(hash, { bytes: bytes.slice(), offset });
    return offset;
  }

  /** Any transaction, as the bytes replay will execute. */
  addGeneral(bytes: Uint8Array, noop: boolean): void {
    const b = this.builder;
    const vector = b.createByteVector(bytes); // one copy (createTransactionVector adds byte by byte)
    LogEntry.startLogEntry(b);
    LogEntry.addTransaction(b, vector);
    if (noop) LogEntry.addNoop(b, true);
    this.entries.push(LogEntry.endLogEntry(b));
    this.count++;
  }

  /** A keyed failure: its key and first outcome, remembered again by replay (nothing is re-executed). */
  addOutcome(clientId: string, sequence: bigint, result: Uint8Array): void {
    const b = this.builder;
    const key = IdempotencyKey.createIdempotencyKey(b, b.createSharedString(clientId), sequence);
    const bytes = b.createByteVector(result);
    LogEntry.startLogEntry(b);
    LogEntry.addIdempotency(b, key);
    LogEntry.addResult(b, bytes);
    LogEntry.addNoop(b, true);
    this.entries.push(LogEntry.endLogEntry(b));
    this.count++;
  }

  /** Bytes of the group so far (the writer ends a group past groupBytesMax). */
  bytes(): number {
    return this.builder.offset();
  }

  /** A restore of a staged backup: the state is replaced by the snapshot in `file` (see StateRestore). */
  addRestore(file: string, sha256: Uint8Array, fromRevision: number): void {
    const b = this.builder;
    const name = b.createString(file);
    const hash = b.createByteVector(sha256);
    const restore = StateRestore.createStateRestore(b, name, hash, BigInt(fromRevision));
    LogEntry.startLogEntry(b);
    LogEntry.addRestore(b, restore);
    this.entries.push(LogEntry.endLogEntry(b));
    this.count++;
  }

  /** The group's payload (a view into the builder, valid until the next begin()). */
  finish(): Uint8Array {
    const b = this.builder;
    const entries = LogGroup.createEntriesVector(b, this.entries);
    b.finish(LogGroup.createLogGroup(b, BigInt(this.firstRevision), BigInt(this.term), entries));
    return b.asUint8Array();
  }
}


function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Copies a TransitionTask into `b`; the task id is always copied, other strings through `text` (which may store a
 * repeated one once).
 */
function copyTransition(b: flatbuffers.Builder, t: TransitionTask, text: (bytes: Uint8Array | null) => number): number {
  const taskId = b.createString(t.taskId(UTF8) as Uint8Array | null);
  const message = text(t.message(UTF8) as Uint8Array | null);
  const scheduler = text(t.scheduler(UTF8) as Uint8Array | null);
  const slaveId = text(t.slaveId(UTF8) as Uint8Array | null);
  const slaveHost = text(t.slaveHost(UTF8) as Uint8Array | null);
  let ports = 0;
  const portCount = t.assignedPortsLength();
  if (portCount > 0) {
    const offsets: number[] = [];
    for (let i = 0; i < portCount; i++) {
      const port = t.assignedPorts(i, portScratch)!;
      offsets.push(Port.createPort(b, text(port.name(UTF8) as Uint8Array | null), port.port()));
    }
    ports = TransitionTask.createAssignedPortsVector(b, offsets);
  }
  return TransitionTask.createTransitionTask(b, taskId, t.status(), t.hasExpectStatus(), t.expectStatus(),
    t.enforce(), t.timestamp(), message, scheduler, slaveId, slaveHost, ports, t.failureCount(), t.timesPartitioned());
}

const replayBuilder = new flatbuffers.Builder(1024);

/** The transaction bytes of an entry, as replay executes them (valid until the next call). */
export function entryTransaction(entry: LogEntry): Uint8Array {
  const nested = entry.transactionArray();
  if (nested !== null && nested.length > 0) return nested; // (the object API writes an empty vector when unset)
  const t = entry.transition();
  if (t === null) {
    throw new Error(entry.restore() !== null ? 'a restore entry is not a transaction (see StateRestore)' :
      entry.resultLength() > 0 ? 'a remembered outcome is not a transaction' :
        'a log entry with neither a transaction nor a transition');
  }
  const b = replayBuilder;
  b.clear();
  const transition = copyTransition(b, t, (bytes) => b.createString(bytes));
  const operation = Operation.createOperation(b, Op.TransitionTask, transition);
  const ops = Transaction.createOpsVector(b, [operation]);
  const key = entry.idempotency();
  let keyOffset = 0;
  if (key !== null) {
    keyOffset = IdempotencyKey.createIdempotencyKey(b, b.createString(key.clientId(UTF8) as Uint8Array | null),
      key.sequence());
  }
  Transaction.startTransaction(b);
  if (keyOffset !== 0) Transaction.addIdempotency(b, keyOffset);
  Transaction.addOps(b, ops);
  b.finish(Transaction.endTransaction(b));
  return b.asUint8Array();
}
