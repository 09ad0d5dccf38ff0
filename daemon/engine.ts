/**
 * The engine as the main thread sees it: the writer worker, the reader pool and the shared memory between them.
 * Owner: the main thread. It holds no table state and never waits on a worker synchronously.
 *
 * Invariants:
 * - commit() resolves only after the writer published the transaction's group (and, with the durability
 *   issue, after its fdatasync); query() resolves with a response read on one pinned revision.
 * - Commits and queries that arrive in the same tick go to their worker together (one message, one pool task).
 * - A writer that dies fails every pending and later call: the engine is then unusable (fail-stop).
 * - A reader thread that dies or is stuck costs only its own task (UNAVAILABLE, no answer); its slot and pin are
 *   freed and the thread replaced (daemon/reader-pool.ts). A pool that can start no thread fails the engine.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { existsSync, mkdirSync } from 'node:fs';
import { copyFile, open as openFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as layout from '../core/layout.js';
import * as limits from '../core/limits.js';
import type { ReaderData } from '../workers/reader/main.js';
import { pinClockMs, ReaderSlot } from '../workers/reader/pin.js';
import { fsyncDirectory, mkdirDurable, sha256File } from '../core/files.js';
import { acquireLock, releaseLock } from '../core/lock.js';
import type {
  BackupOptions, CommitMessage, DoneMessage, FatalMessage, ReadyMessage, ResultsMessage, SnapshotDoneMessage,
  SnapshotOptions, WriterData,
} from '../workers/writer/main.js';
import type { ChangeRevision, ChangesMessage } from '../workers/writer/changes.js';
import { listBackups, type BackupInfo } from '../workers/snapshot/backups.js';
import { readSnapshotInfo } from '../workers/snapshot/read.js';
import type { SnapshotWriteResult } from '../workers/snapshot/write.js';
import { EngineError } from './engine-error.js';
import { ReaderPool, type ReaderPoolStats } from './reader-pool.js';

export { EngineError };

export interface EngineOptions {
  readerThreads?: number;       // default: cores - 1 (the writer and the main thread share the rest), at least 1
  arenaBytesInitial?: number;
  arenaBytesMax?: number;
  pinMsMax?: number;
  /** The data directory (log, snapshots, backups); absent: in memory only, nothing survives close. */
  dataDir?: string;
  /** Log segment size (default 64 MiB; tests use small ones). */
  segmentBytes?: number;
  /** When snapshots are taken and how many are kept (workers/writer/main.ts snapshotDefaults). */
  snapshot?: Partial<SnapshotOptions>;
  /** When backups are taken, how many are kept, where (workers/writer/main.ts backupDefaults). */
  backup?: Partial<BackupOptions>;
  /** Things worth a log line that the writer reports (snapshots written or failed), as JSON-able objects. */
  onEvent?: (event: Record<string, unknown>) => void;
  /** Called per commit group answered: its transactions and its log append + fdatasync time (-1: not logged). */
  onGroup?: (transactions: number, syncMs: number) => void;
  /** Called once when the writer dies (a bug or a full arena mid-apply): the engine is unusable after it. */
  onFailure?: (error: Error) => void;
  /**
   * Every committed revision's change record (workers/writer/changes.ts), in revision order, each revision once:
   * during open() for the revisions recovery replays from the log (after historyFrom), before open() resolves;
   * then a group's revisions once they are durable, before their commits resolve. Must not throw. Absent: the
   * writer encodes none (no cost).
   */
  onChanges?: (revisions: ChangeRevision[]) => void;
}

export interface EngineStats {
  revision: number;
  configCount: number;
  taskCount: number;
  arenaBytes: number;
  arenaBytesUsed: number;
  readerThreads: number;
}

interface Pending { resolve: (bytes: Uint8Array) => void; reject: (error: Error) => void }

const statsSlotOwner = 0x7ffe_0000; // the main thread's reader slot owner id: above any threadId + 1
const writerFile = fileURLToPath(new URL('../workers/writer/main.js', import.meta.url));
const readerFile = fileURLToPath(new URL('../workers/reader/main.js', import.meta.url));

export class Engine {
  readonly arena: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly readerThreads: number;
  private readonly writer: Worker;
  private readonly port: MessagePort;
  private readonly pool: ReaderPool;
  private readonly pending = new Map<number, Pending>();
  private idNext = 1;
  private commitIds: number[] = [];
  private commitQueue: Uint8Array[] = [];
  private queryQueue: { bytes: Uint8Array; pending: Pending }[] = [];
  private failure: Error | null = null;
  private closed = false;
  private closing = false;   // close() began: no new commit is taken (the writer refuses late ones too)
  private readonly controlView: Int32Array;
  private readonly onFailure: ((error: Error) => void) | undefined;
  private readonly onEvent: ((event: Record<string, unknown>) => void) | undefined;
  private readonly onGroup: ((transactions: number, syncMs: number) => void) | undefined;
  private readonly onChanges: ((revisions: ChangeRevision[]) => void) | undefined;
  private statsSlot: ReaderSlot | null = null;
  private readonly arenaF64: () => Float64Array;
  private readonly dataDir: string | null;
  private readonly backupDirOption: string | null;
  private staged: { engine: Engine; name: string; path: string } | null = null;
  /** What recovery did at open (null: in memory only). */
  recovery: ReadyMessage['recovery'] = null;
  /**
   * Set by open(): onChanges got (or gets) a change record for every revision after this one: the revision of the
   * snapshot recovery loaded (0: none, or in memory). Older revisions have none: a watcher behind it relists.
   */
  historyFrom = 0;
  private commitScopes: (readonly string[] | null)[] | null = null;

  private constructor(options: EngineOptions) {
    const arenaBytesMax = options.arenaBytesMax ?? limits.arenaBytesMaxDefault;
    if (arenaBytesMax > limits.arenaBytesMaxLimit || arenaBytesMax % 65536 !== 0) {
      throw new EngineError(`arenaBytesMax must be a multiple of 64 KiB, at most ${limits.arenaBytesMaxLimit}`);
    }
    const arenaBytesInitial = Math.min(options.arenaBytesInitial ?? limits.arenaBytesInitialDefault, arenaBytesMax);
    this.arena = new SharedArrayBuffer(arenaBytesInitial, { maxByteLength: arenaBytesMax });
    this.control = new SharedArrayBuffer(layout.controlBytes);
    this.controlView = new Int32Array(this.control);
    this.onFailure = options.onFailure;
    this.onEvent = options.onEvent;
    this.onGroup = options.onGroup;
    this.onChanges = options.onChanges;
    this.dataDir = options.dataDir ?? null;
    this.backupDirOption = options.backup?.dir ?? null;
    let f64: Float64Array = new Float64Array(0);
    this.arenaF64 = () => {
      if (f64.byteLength !== this.arena.byteLength) f64 = new Float64Array(this.arena, 0, this.arena.byteLength >>> 3);
      return f64;
    };
    const channel = new MessageChannel();
    this.port = channel.port1;
    const writerData: WriterData = {
      arena: this.arena, control: this.control, arenaBytesMax, pinMsMax: options.pinMsMax ?? limits.pinMsMaxDefault,
      port: channel.port2, dataDir: options.dataDir ?? null, segmentBytes: options.segmentBytes,
      snapshot: options.snapshot, backup: options.backup, changes: options.onChanges !== undefined,
    };
    this.writer = new Worker(writerFile, { workerData: writerData, transferList: [channel.port2] });
    this.readerThreads = Math.max(1, Math.min(limits.readerSlotsMax - 1,
      options.readerThreads ?? availableParallelism() - 1));
    const readerData: ReaderData = { arena: this.arena, control: this.control };
    this.pool = new ReaderPool({
      filename: readerFile, threads: this.readerThreads, workerData: readerData, control: this.control,
      pinMsMax: options.pinMsMax ?? limits.pinMsMaxDefault, onEvent: options.onEvent,
      onBroken: (error) => this.fail(error),
    });
  }

  static async open(options: EngineOptions = {}): Promise<Engine> {
    if (options.dataDir !== undefined) {
      mkdirSync(options.dataDir, { recursive: true });
      acquireLock(options.dataDir, 'stratad');
    }
    let engine: Engine | null = null;
    try {
      engine = new Engine(options);
      await engine.started();
      return engine;
    } catch (error) {
      if (engine !== null) await engine.close().catch(() => undefined);
      else if (options.dataDir !== undefined) releaseLock(options.dataDir);
      throw error;
    }
  }

  private started(): Promise<void> {
    return new Promise((resolve, reject) => {
      let fatal: FatalMessage | null = null;
      const failed = (detail: string) => {
        const error = fatal === null ? new EngineError(`the writer failed: ${detail}`) :
          new EngineError(`the writer failed (${fatal.code}): ${fatal.message}`, fatal.code);
        this.fail(error);
        reject(error);
      };
      this.writer.on('error', (error) => failed(String(error?.stack ?? error)));
      this.writer.on('exit', (code) => failed(`it exited with code ${code}`));
      this.port.on('message', (message: { kind: string }) => {
        if (message.kind === 'results') this.completed(message as ResultsMessage);
        else if (message.kind === 'changes') this.onChanges?.((message as ChangesMessage).revisions);
        else if (message.kind === 'stats' || message.kind === 'closed') {
          this.settle((message as unknown as { id: number }).id, message);
        } else if (message.kind === 'ready') {
          this.recovery = (message as ReadyMessage).recovery;
          this.historyFrom = (message as ReadyMessage).historyFrom;
          resolve();
        } else if (message.kind === 'fatal') fatal = message as FatalMessage;
        else if (message.kind === 'snapshot' || message.kind === 'done') {
          this.settle((message as SnapshotDoneMessage).id, message);
        } else if (message.kind === 'event') this.onEvent?.((message as unknown as { event: Record<string, unknown> }).event);
      });
    });
  }

  private fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = this.closed ? new EngineError('the engine is closed', 'UNAVAILABLE') : error;
    for (const pending of this.pending.values()) pending.reject(this.failure);
    this.pending.clear();
    if (!this.closed) this.onFailure?.(error);
  }

  /** Ends the writer thread abruptly, as a crash would (tests of the fail-stop path). */
  async killWriterForTest(): Promise<void> {
    await this.writer.terminate();
  }

  private completed(message: ResultsMessage): void {
    this.onGroup?.(message.ids.length, message.syncMs ?? -1);
    for (let i = 0; i < message.ids.length; i++) this.settle(message.ids[i]!, message.results[i]!);
  }

  private settle(id: number, value: unknown): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id);
    pending.resolve(value as Uint8Array);
  }

  /**
   * Commits a Transaction (FlatBuffers bytes); resolves with TransactionResult bytes.
   * scope: the roles it may write; a transaction that touches (or has a precondition on) a record of another role,
   * or host attributes, maintenance requests or the scheduler metadata, is refused with PERMISSION_DENIED and
   * nothing of it applies. null or absent: no restriction.
   */
  commit(transaction: Uint8Array, scope: readonly string[] | null = null): Promise<Uint8Array> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new EngineError('the engine is closing', 'UNAVAILABLE'));
    const id = this.idNext++;
    const promise = new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.commitQueue.length === 0) queueMicrotask(() => this.flushCommits());
    if (scope !== null && this.commitScopes === null) this.commitScopes = this.commitQueue.map(() => null);
    this.commitScopes?.push(scope === null ? null : Array.from(scope, String));
    this.commitIds.push(id);
    this.commitQueue.push(transaction);
    return promise;
  }

  private flushCommits(): void {
    if (this.commitQueue.length === 0) return;
    const message: CommitMessage = { kind: 'commit', ids: this.commitIds, transactions: this.commitQueue,
      scopes: this.commitScopes };
    this.commitIds = [];
    this.commitQueue = [];
    this.commitScopes = null;
    this.port.postMessage(message);
  }

  /** Answers several QueryRequests on one and the same revision (one pin), in order. */
  queryBatch(requests: Uint8Array[]): Promise<Uint8Array[]> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new EngineError('the engine is closing', 'UNAVAILABLE'));
    if (requests.length > limits.queryBatchMax) {
      return Promise.reject(new EngineError(`at most ${limits.queryBatchMax} queries in one batch`));
    }
    return this.pool.run(requests).then((packed: Uint8Array) => unpack(packed));
  }

  /** Answers a QueryRequest (FlatBuffers bytes) with QueryResponse bytes. */
  query(request: Uint8Array): Promise<Uint8Array> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new EngineError('the engine is closing', 'UNAVAILABLE'));
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.queryQueue.length === 0) queueMicrotask(() => this.flushQueries());
      this.queryQueue.push({ bytes: request, pending: { resolve, reject } });
    });
  }

  private flushQueries(): void {
    const queue = this.queryQueue;
    this.queryQueue = [];
    for (let start = 0; start < queue.length; start += limits.queryBatchMax) {
      const batch = queue.slice(start, start + limits.queryBatchMax);
      this.pool.run(batch.map((q) => q.bytes)).then((packed: Uint8Array) => {
        const responses = unpack(packed);
        batch.forEach((q, i) => q.pending.resolve(responses[i]!));
      }, (error: Error) => {
        for (const q of batch) q.pending.reject(error);
      });
    }
  }

  /** Figures of the last published revision, read from shared memory under a pin of the main thread's own. */
  stats(): EngineStats {
    this.statsSlot ??= new ReaderSlot(this.control, statsSlotOwner);
    const root = this.statsSlot.pin(pinClockMs());
    const f64 = this.arenaF64();
    const u32 = new Uint32Array(this.arena, root, layout.rootWords);
    const stats = {
      revision: f64[(root >>> 3) + layout.rootRevisionF64]!,
      taskCount: u32[layout.rootTaskCountWord]!,
      configCount: u32[layout.rootConfigCountWord]!,
      arenaBytes: this.arena.byteLength,
      arenaBytesUsed: Atomics.load(this.controlView, layout.controlArenaBytesUsedWord) >>> 0,
      readerThreads: this.readerThreads,
    };
    this.statsSlot.release();
    return stats;
  }

  /** The reader pool's figures: threads that ended (crashed or stuck), slots reclaimed from dead threads. */
  readerStats(): ReaderPoolStats {
    return this.pool.stats();
  }

  /** The writer's own figures (retired blocks, expired pins, groups), asked by message. */
  writerStats(): Promise<Record<string, number>> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.idNext++;
    const promise = new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.port.postMessage({ kind: 'stats', id });
    return promise.then((message) => (message as unknown as { stats: Record<string, number> }).stats);
  }

  /**
   * Takes a snapshot of the revision published now (the writer goes on committing while a worker writes it);
   * resolves when it is installed. One runs at a time: a request during a running snapshot gets that one.
   */
  snapshot(): Promise<SnapshotWriteResult> {
    return this.request({ kind: 'snapshot' }).then((answer) => {
      const done = answer as SnapshotDoneMessage;
      if (done.result === null) throw new EngineError(`snapshot failed: ${done.error}`, 'SNAPSHOT');
      return done.result;
    });
  }

  /** Writes a backup of the revision published now (scheduler-backup-<UTC minute>.bak); resolves when installed. */
  backup(): Promise<SnapshotWriteResult> {
    return this.request({ kind: 'backup' }).then((answer) => {
      const done = answer as SnapshotDoneMessage;
      if (done.result === null) throw new EngineError(`backup failed: ${done.error}`, 'BACKUP');
      return done.result;
    });
  }

  /** The backups of this engine's backup directory, newest first. */
  listBackups(): BackupInfo[] {
    return listBackups(this.backupDir());
  }

  private backupDir(): string {
    if (this.dataDir === null) throw new EngineError('an in-memory engine has no backups', 'INVALID_ARGUMENT');
    return this.backupDirOption ?? join(this.dataDir, 'backups');
  }

  /**
   * Aurora's staged recovery, step 1: loads a backup (a name from listBackups, or a path) into a separate
   * in-memory engine, to be queried with queryStaged, then committed or unloaded. One at a time.
   */
  async stageBackup(name: string): Promise<{ name: string; revision: number; tasks: number }> {
    if (this.staged !== null) throw new EngineError(`${this.staged.name} is staged already: unload it first`, 'FAILED_PRECONDITION');
    const path = name.includes('/') ? name : join(this.backupDir(), name);
    if (!existsSync(path)) throw new EngineError(`no backup ${name}`, 'NOT_FOUND');
    const staged = await Engine.open({ readerThreads: 1 });
    const done = await staged.request({ kind: 'load', path }) as DoneMessage;
    if (done.error !== null) {
      await staged.close();
      throw new EngineError(`staging ${name} failed: ${done.error}`, 'FORMAT');
    }
    this.staged = { engine: staged, name, path };
    return { name, revision: done.revision, tasks: staged.stats().taskCount };
  }

  /** Answers a QueryRequest on the staged backup (every query of the engine works on it). */
  queryStaged(request: Uint8Array): Promise<Uint8Array> {
    if (this.staged === null) return Promise.reject(new EngineError('no backup is staged', 'FAILED_PRECONDITION'));
    return this.staged.engine.query(request);
  }

  /** The name of the staged backup, or null. */
  stagedName(): string | null {
    return this.staged?.name ?? null;
  }

  /** Discards the staged backup. */
  async unstage(): Promise<void> {
    const staged = this.staged;
    this.staged = null;
    await staged?.engine.close();
  }

  /**
   * Aurora's staged recovery, commit: the staged backup replaces the live state as one logged entry (a restore
   * entry at the next revision, naming a content-addressed copy in <dataDir>/restores), so that a restart or a
   * standby replaying the log ends in the same state. Then this engine closes: reopen it (Engine.open on the same
   * data directory) to serve the restored state, as Aurora's scheduler restarted after a commit.
   */
  async commitStaged(): Promise<{ revision: number; file: string }> {
    const staged = this.staged;
    if (staged === null) throw new EngineError('no backup is staged', 'FAILED_PRECONDITION');
    const dir = join(this.dataDir!, 'restores');
    mkdirDurable(dir);
    const sha256 = sha256File(staged.path);
    const file = `restores/${sha256.toString('hex')}.snap`; // the writer renames it to carry its revision
    const target = join(this.dataDir!, file);
    await copyFile(staged.path, `${target}.tmp`);
    const handle = await openFile(`${target}.tmp`, 'r+');
    await handle.sync();
    await handle.close();
    await rename(`${target}.tmp`, target);
    fsyncDirectory(dir);
    const info = readSnapshotInfo(target);
    const done = await this.request({ kind: 'restore', file, sha256, fromRevision: info.revision }) as DoneMessage;
    if (done.error !== null) throw new EngineError(`restore failed: ${done.error}`, 'INTERNAL');
    await this.unstage();
    await this.close();
    return { revision: done.revision, file };
  }

  /** Sends a message that the writer answers by id, after the commits queued before it. */
  private request(message: Record<string, unknown>): Promise<unknown> {
    if (this.failure !== null) return Promise.reject(this.failure);
    this.flushCommits();
    const id = this.idNext++;
    const promise = new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.port.postMessage({ ...message, id });
    return promise;
  }

  /** Finishes the group in flight (its commits are answered), closes the log, stops the threads, unlocks. */
  async close(): Promise<void> {
    if (this.closed || this.closing) return;
    this.closing = true;
    await this.unstage();
    if (this.failure === null) {
      this.flushCommits();
      const id = this.idNext++;
      const closed = new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject }));
      this.port.postMessage({ kind: 'close', id });
      await closed.catch(() => undefined);
    }
    this.closed = true;
    await this.pool.destroy();
    this.port.close();
    await this.writer.terminate();
    if (this.dataDir !== null) releaseLock(this.dataDir);
  }
}

/** Splits a reader's packed answer: [u32 count][u32 length x count][bytes...]. */
export function unpack(packed: Uint8Array): Uint8Array[] {
  const header = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const count = header.getUint32(0, true);
  const out: Uint8Array[] = [];
  let at = 4 + 4 * count;
  for (let i = 0; i < count; i++) {
    const length = header.getUint32(4 + 4 * i, true);
    out.push(packed.subarray(at, at + length));
    at += length;
  }
  return out;
}
