/**
 * The writer's tables: every mutation of shared memory goes through here. Owner: the writer thread only.
 *
 * Invariants:
 * - `roots` (inherited from StoreReader) are the working roots of the revision being built; readers see them
 *   only when the writer publishes (writer.ts), so a change here is invisible until then.
 * - Every interned string, config and blob has one owner count kept here; a string or config whose count drops to
 *   0 is removed (configs at the end of the transaction), its memory retired at the building epoch.
 * - Aggregates equal the sum over stored tasks (and cron jobs) of their contributions, after every operation.
 */
import { assert } from '../../core/assert.js';
import { ArenaAllocator, ArenaView, stringBlobBytes } from '../../core/arena.js';
import { prefixWord, TreeKey, TreeWriter, type TreeShape, type WriteContext } from '../../core/btree.js';
import type { CanonicalConfig } from '../../core/config.js';
import * as layout from '../../core/layout.js';
import { RadixRoot, radixSet } from '../../core/radix.js';
import {
  configBlobHeaderBytes, fourKeyShape, jobIndexShape, oneKeyShape, pairShape, StoreReader, taskIdShape, threeKeyShape,
  twoKeyShape,
} from '../../core/store.js';
import { hashString } from '../../core/text.js';
import { isActive } from '../../core/status.js';

export interface InternEntry { id: number; refs: number; value: string }

export interface ConfigInfo {
  hex: string;
  row: number;
  refs: number;
  blob: number;
  bytes: number;
  roleId: number;
  envId: number;
  nameId: number;
  bucket: number;            // layout.bucket*: production x dedicated
  totals: Float64Array;      // cpus, ram, disk, gpus
}

export interface EventPlan { timestamp: number; status: number; message: Uint8Array | null; scheduler: string | null }
export interface PortPlan { name: Uint8Array; port: number }

export class Tables extends StoreReader {
  readonly allocator: ArenaAllocator;
  readonly context: WriteContext;
  readonly tree = new TreeWriter();
  readonly rows = new RadixRoot();
  readonly configRows = new RadixRoot();
  readonly strings = new RadixRoot();
  taskCount = 0;
  configCount = 0;
  configsNew: string[] = [];  // hashes of configs stored since the writer cleared it (one transaction: the log)
  revisionBuilding = 1;
  private readonly interned = new Map<string, InternEntry>();
  private readonly internedById: (InternEntry | undefined)[] = [];
  private readonly freeStringIds: number[] = [];
  private readonly configsByHex = new Map<string, ConfigInfo>();
  readonly configsByRow: (ConfigInfo | undefined)[] = [];
  private readonly freeConfigRows: number[] = [];
  private configsUnreferenced: ConfigInfo[] = [];
  private readonly freeRows: number[] = [];
  private rowNext = 0;
  private readonly writeKey1 = new TreeKey(1);
  private readonly key2w = new TreeKey(2);
  private readonly key3w = new TreeKey(3);
  private readonly key4w = new TreeKey(4);
  private readonly taskKeyW = new TreeKey(3);
  private readonly value1 = new Uint32Array(1);
  private readonly noValue = new Uint32Array(0);

  constructor(view: ArenaView, allocator: ArenaAllocator) {
    super(view, new Uint32Array(layout.rootWords));
    this.allocator = allocator;
    this.context = { view, allocator, epochBuilding: 1 };
  }

  get epoch(): number {
    return this.context.epochBuilding;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Blobs and strings

  retire(offset: number, bytes: number): void {
    if (offset !== 0) this.allocator.retire(offset, bytes, this.context.epochBuilding);
  }

  writeStringBlob(bytes: Uint8Array): number {
    const blob = this.allocator.alloc(stringBlobBytes(bytes.length));
    this.view.u32[blob >>> 2] = bytes.length;
    this.view.u8.set(bytes, blob + 4);
    return blob;
  }

  writeOptionalString(bytes: Uint8Array | null): number {
    return bytes === null || bytes.length === 0 ? 0 : this.writeStringBlob(bytes);
  }

  retireStringBlob(blob: number): void {
    if (blob !== 0) this.retire(blob, stringBlobBytes(this.view.u32[blob >>> 2]!));
  }

  /** Record blob: [u32 length][u32 spare][f64 modRevision][bytes]. */
  writeRecordBlob(bytes: Uint8Array): number {
    const blob = this.allocator.alloc(layout.blobHeaderBytes + bytes.length);
    this.view.u32[(blob >>> 2) + layout.blobLengthWord] = bytes.length;
    this.view.u32[(blob >>> 2) + 1] = 0;
    this.view.f64[(blob >>> 3) + layout.blobModRevisionF64] = this.revisionBuilding;
    this.view.u8.set(bytes, blob + layout.blobHeaderBytes);
    return blob;
  }

  retireRecordBlob(blob: number): void {
    if (blob !== 0) this.retire(blob, layout.blobHeaderBytes + this.view.u32[(blob >>> 2) + layout.blobLengthWord]!);
  }

  /** The id of an interned string (writer-side map: no tree walk), or 0. */
  override stringId(value: string): number {
    return this.interned.get(value)?.id ?? 0;
  }

  intern(value: string): number {
    const found = this.interned.get(value);
    if (found !== undefined) {
      found.refs++;
      return found.id;
    }
    const id = this.freeStringIds.pop() ?? this.internedById.length + (this.internedById.length === 0 ? 1 : 0);
    const entry: InternEntry = { id, refs: 1, value };
    this.interned.set(value, entry);
    while (this.internedById.length <= id) this.internedById.push(undefined);
    this.internedById[id] = entry;
    const blob = this.writeStringBlob(Buffer.from(value, 'utf8'));
    radixSet(this.context, this.strings, id, blob);
    this.syncRadix();
    this.key2w.words[0] = hashString(value);
    this.key2w.words[1] = id;
    this.setRoot(layout.rootInternWord, pairShape, this.key2w, this.noValue);
    return id;
  }

  /** More references to a string interned before (the bulk load of tasks: restore-tasks.ts). */
  internAgain(id: number, count: number): void {
    const entry = this.internedById[id];
    assert(entry !== undefined && entry.refs > 0, 'a reference to a string that is not interned');
    assert(count >= 0);
    entry.refs += count;
  }

  release(id: number): void {
    if (id === 0) return;
    const entry = this.internedById[id];
    assert(entry !== undefined && entry.refs > 0, 'release of a string that is not interned');
    entry.refs--;
    if (entry.refs > 0) return;
    this.interned.delete(entry.value);
    this.internedById[id] = undefined;
    this.retireStringBlob(this.stringBlob(id));
    radixSet(this.context, this.strings, id, 0);
    this.syncRadix();
    this.key2w.words[0] = hashString(entry.value);
    this.key2w.words[1] = id;
    this.removeRoot(layout.rootInternWord, pairShape, this.key2w);
    this.freeStringIds.push(id);
  }

  internedCount(): number {
    return this.interned.size;
  }

  /** The value of an interned string by its id (writer-side map: no arena read, no decoding). */
  internedValue(id: number): string {
    const entry = this.internedById[id];
    assert(entry !== undefined && entry.refs > 0, 'the value of a string that is not interned');
    return entry.value;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Tree and radix roots

  syncRadix(): void {
    const roots = this.roots;
    roots[layout.rootRowsWord] = this.rows.node;
    roots[layout.rootRowsDepthWord] = this.rows.depth;
    roots[layout.rootConfigsWord] = this.configRows.node;
    roots[layout.rootConfigsDepthWord] = this.configRows.depth;
    roots[layout.rootStringsWord] = this.strings.node;
    roots[layout.rootStringsDepthWord] = this.strings.depth;
  }

  setRoot(rootWord: number, shape: TreeShape, key: TreeKey, values: ArrayLike<number>): void {
    this.roots[rootWord] = this.tree.insert(this.context, shape, this.roots[rootWord]!, key, values);
  }

  removeRoot(rootWord: number, shape: TreeShape, key: TreeKey): boolean {
    this.roots[rootWord] = this.tree.remove(this.context, shape, this.roots[rootWord]!, key);
    return this.tree.removed;
  }

  /** Sets (or with value 0 removes) the value of a one- to four-word key in a table of blobs. */
  setBlob(rootWord: number, shape: TreeShape, keyWords: ArrayLike<number>, value: number): void {
    const key = keyWords.length === 1 ? this.writeKey1 : keyWords.length === 2 ? this.key2w :
      keyWords.length === 3 ? this.key3w : this.key4w;
    for (let i = 0; i < keyWords.length; i++) key.words[i] = keyWords[i]!;
    if (value === 0) {
      this.removeRoot(rootWord, shape, key);
      return;
    }
    this.value1[0] = value;
    this.setRoot(rootWord, shape, key, this.value1);
  }

  // ----------------------------------------------------------------------------------------------------------
  // Configs

  findConfig(hex: string): ConfigInfo | undefined {
    return this.configsByHex.get(hex);
  }

  /** Adds a reference to a config, storing it if new (canonical must then be given). */
  configRef(hex: string, canonical: CanonicalConfig | null, describe: ConfigFacts | null): ConfigInfo {
    const found = this.configsByHex.get(hex);
    if (found !== undefined) {
      found.refs++;
      return found;
    }
    assert(canonical !== null && describe !== null, 'a new config needs its canonical bytes');
    this.configsNew.push(hex);
    const bytes = canonical.bytes;
    const blob = this.allocator.alloc(configBlobHeaderBytes + bytes.length);
    const u32 = this.view.u32;
    u32[blob >>> 2] = bytes.length;
    u32[(blob >>> 2) + 1] = 0;
    this.view.u8.set(canonical.hash, blob + 8);
    this.view.u8.set(bytes, blob + configBlobHeaderBytes);
    const row = this.freeConfigRows.pop() ?? this.configsByRow.length + (this.configsByRow.length === 0 ? 1 : 0);
    const info: ConfigInfo = {
      hex, row, refs: 1, blob, bytes: configBlobHeaderBytes + bytes.length,
      roleId: this.intern(describe.role), envId: this.intern(describe.environment), nameId: this.intern(describe.name),
      bucket: describe.bucket, totals: describe.totals,
    };
    this.configsByHex.set(hex, info);
    while (this.configsByRow.length <= row) this.configsByRow.push(undefined);
    this.configsByRow[row] = info;
    radixSet(this.context, this.configRows, row, blob);
    this.syncRadix();
    this.setBlob(layout.rootConfigHashWord, fourKeyShape, hashWords(canonical.hash), row);
    this.configCount++;
    return info;
  }

  /** More references to a stored config, known by its ConfigInfo (restore-tasks.ts: no lookup by hash). */
  configRefAgain(info: ConfigInfo, count: number): void {
    assert(info.refs > 0 && this.configsByRow[info.row] === info, 'a reference to a config that is not stored');
    assert(count >= 0);
    info.refs += count;
  }

  configUnref(info: ConfigInfo): void {
    assert(info.refs > 0);
    info.refs--;
    if (info.refs === 0) this.configsUnreferenced.push(info);
  }

  /** Removes configs whose count is still 0: called when a transaction's operations are all applied. */
  flushConfigs(): void {
    const list = this.configsUnreferenced;
    if (list.length === 0) return;
    this.configsUnreferenced = [];
    for (const info of list) {
      if (info.refs !== 0 || this.configsByHex.get(info.hex) !== info) continue;
      this.configsByHex.delete(info.hex);
      this.configsByRow[info.row] = undefined;
      this.freeConfigRows.push(info.row);
      this.retire(info.blob, info.bytes);
      radixSet(this.context, this.configRows, info.row, 0);
      this.setBlob(layout.rootConfigHashWord, fourKeyShape, hashWords(this.configHash(info.blob)), 0);
      this.release(info.roleId);
      this.release(info.envId);
      this.release(info.nameId);
      this.configCount--;
    }
    this.syncRadix();
  }

  configFactsOf(hex: string): ConfigFacts {
    const info = this.configsByHex.get(hex);
    assert(info !== undefined);
    return {
      role: this.internedById[info.roleId]!.value, environment: this.internedById[info.envId]!.value,
      name: this.internedById[info.nameId]!.value, bucket: info.bucket, totals: info.totals,
    };
  }

  configOfRow(row: number): ConfigInfo {
    const info = this.configsByRow[row];
    assert(info !== undefined, 'task refers to a missing config');
    return info;
  }

  // ----------------------------------------------------------------------------------------------------------
  // Aggregates

  /** A writable aggregate block for the key, created (zeroed) if absent. */
  aggWritable(rootWord: number, shape: TreeShape, role: number, env: number, name: number): number {
    const found = shape.keyWords === 1 ? this.find1(rootWord, role) : shape.keyWords === 2 ?
      this.find2(rootWord, role, env) : this.find3(rootWord, role, env, name);
    const u32 = () => this.view.u32;
    if (found !== 0 && this.view.f64[(found >>> 3) + layout.aggEpochF64] === this.context.epochBuilding) return found;
    const block = this.allocator.alloc(layout.aggBytes);
    if (found !== 0) {
      u32().copyWithin(block >>> 2, found >>> 2, (found + layout.aggBytes) >>> 2);
      this.retire(found, layout.aggBytes);
    } else {
      u32().fill(0, block >>> 2, (block + layout.aggBytes) >>> 2);
    }
    this.view.f64[(block >>> 3) + layout.aggEpochF64] = this.context.epochBuilding;
    this.setBlob(rootWord, shape, keyOf(shape.keyWords, role, env, name), block);
    return block;
  }

  /** Adds (sign 1) or removes (sign -1) one task's contribution to its job, role/env and role aggregates. */
  aggTask(role: number, env: number, name: number, status: number, config: ConfigInfo, sign: number): void {
    const job = this.aggWritable(layout.rootJobAggWord, threeKeyShape, role, env, name);
    const jobTasksBefore = this.view.i32[(job >>> 2) + layout.aggTaskCountWord]!;
    this.aggAdd(job, status, config, sign);
    const jobTasksAfter = jobTasksBefore + sign;
    const cron = this.view.i32[(job >>> 2) + layout.aggCronCountWord]!;
    let jobsWithTasks = 0;
    if (jobTasksBefore === 0 && jobTasksAfter === 1) jobsWithTasks = 1;
    if (jobTasksBefore === 1 && jobTasksAfter === 0) jobsWithTasks = -1;
    const jobs = cron === 0 ? jobsWithTasks : 0;
    if (jobs !== 0) this.view.i32[(job >>> 2) + layout.aggJobCountWord] = jobTasksAfter > 0 ? 1 : 0;
    const envBlock = this.aggWritable(layout.rootEnvAggWord, twoKeyShape, role, env, 0);
    this.aggAdd(envBlock, status, config, sign);
    this.aggJobs(envBlock, jobsWithTasks, 0, jobs);
    const roleBlock = this.aggWritable(layout.rootRoleAggWord, oneKeyShape, role, 0, 0);
    this.aggAdd(roleBlock, status, config, sign);
    this.aggJobs(roleBlock, jobsWithTasks, 0, jobs);
    if (jobTasksAfter === 0 && cron === 0) this.aggDropEmpty(role, env, name);
  }

  /** Moves one task from status `from` to `to` in its three aggregates (task and job counts do not change). */
  aggMove(role: number, env: number, name: number, from: number, to: number, config: ConfigInfo): void {
    const active = (isActive(to) ? 1 : 0) - (isActive(from) ? 1 : 0);
    this.aggShift(this.aggWritable(layout.rootJobAggWord, threeKeyShape, role, env, name), from, to, config, active);
    this.aggShift(this.aggWritable(layout.rootEnvAggWord, twoKeyShape, role, env, 0), from, to, config, active);
    this.aggShift(this.aggWritable(layout.rootRoleAggWord, oneKeyShape, role, 0, 0), from, to, config, active);
  }

  private aggShift(block: number, from: number, to: number, config: ConfigInfo, active: number): void {
    const i32 = this.view.i32;
    const word = (block >>> 2) + layout.aggStatusCountsWord;
    i32[word + from]! -= 1;
    i32[word + to]! += 1;
    if (active === 0) return;
    const f64 = this.view.f64;
    const at = (block >>> 3) + layout.aggTotalsF64 + config.bucket * 4;
    const totals = config.totals;
    for (let i = 0; i < 4; i++) f64[at + i]! += active * totals[i]!;
  }

  /** Adds or removes a cron job from its job, role/env and role aggregates. */
  aggCron(role: number, env: number, name: number, sign: number): void {
    const job = this.aggWritable(layout.rootJobAggWord, threeKeyShape, role, env, name);
    const tasks = this.view.i32[(job >>> 2) + layout.aggTaskCountWord]!;
    this.view.i32[(job >>> 2) + layout.aggCronCountWord]! += sign;
    const jobs = tasks === 0 ? sign : 0;
    this.view.i32[(job >>> 2) + layout.aggJobCountWord] = tasks > 0 || sign > 0 ? 1 : 0;
    this.aggJobs(this.aggWritable(layout.rootEnvAggWord, twoKeyShape, role, env, 0), 0, sign, jobs);
    this.aggJobs(this.aggWritable(layout.rootRoleAggWord, oneKeyShape, role, 0, 0), 0, sign, jobs);
    if (tasks === 0 && sign < 0) this.aggDropEmpty(role, env, name);
  }

  private aggAdd(block: number, status: number, config: ConfigInfo, sign: number): void {
    const i32 = this.view.i32;
    const word = block >>> 2;
    i32[word + layout.aggStatusCountsWord + status]! += sign;
    i32[word + layout.aggTaskCountWord]! += sign;
    if (!isActive(status)) return;
    const f64 = this.view.f64;
    const at = (block >>> 3) + layout.aggTotalsF64 + config.bucket * 4;
    const totals = config.totals;
    for (let i = 0; i < 4; i++) f64[at + i]! += sign * totals[i]!;
  }

  private aggJobs(block: number, withTasks: number, cron: number, jobs: number): void {
    const i32 = this.view.i32;
    const word = block >>> 2;
    i32[word + layout.aggJobsWithTasksWord]! += withTasks;
    i32[word + layout.aggCronCountWord]! += cron;
    i32[word + layout.aggJobCountWord]! += jobs;
  }

  /** Removes the job's aggregate (no tasks, no cron job), then the role/env's and role's if they have no job. */
  private aggDropEmpty(role: number, env: number, name: number): void {
    const job = this.find3(layout.rootJobAggWord, role, env, name);
    this.retire(job, layout.aggBytes);
    this.setBlob(layout.rootJobAggWord, threeKeyShape, [role, env, name], 0);
    const envBlock = this.find2(layout.rootEnvAggWord, role, env);
    if (this.view.i32[(envBlock >>> 2) + layout.aggJobCountWord] === 0) {
      this.retire(envBlock, layout.aggBytes);
      this.setBlob(layout.rootEnvAggWord, twoKeyShape, [role, env], 0);
    }
    const roleBlock = this.find1(layout.rootRoleAggWord, role);
    if (this.view.i32[(roleBlock >>> 2) + layout.aggJobCountWord] === 0) {
      this.retire(roleBlock, layout.aggBytes);
      this.setBlob(layout.rootRoleAggWord, oneKeyShape, [role], 0);
    }
  }

  // ----------------------------------------------------------------------------------------------------------
  // Task rows and indexes

  allocRow(): number {
    return this.freeRows.pop() ?? this.rowNext++;
  }

  /**
   * Takes rows 0..count-1 at once for tasks loaded in bulk (restore-tasks.ts), which write the rows trie
   * themselves. Only for an empty table: rows are then what allocRow() would have given one by one.
   */
  claimRows(count: number): void {
    assert(this.rowNext === 0 && this.freeRows.length === 0 && this.taskCount === 0, 'rows are claimed when empty');
    this.rowNext = count;
  }

  freeRow(row: number): void {
    this.freeRows.push(row);
  }

  setTaskRecord(row: number, record: number): void {
    radixSet(this.context, this.rows, row, record);
    this.roots[layout.rootRowsWord] = this.rows.node;
    this.roots[layout.rootRowsDepthWord] = this.rows.depth;
  }

  taskIdIndex(idBytes: Uint8Array, idBlob: number, row: number, insert: boolean): void {
    this.taskKeyW.setTaskId(idBytes, idBlob);
    if (insert) {
      this.value1[0] = row;
      this.setRoot(layout.rootTaskIdTreeWord, taskIdShape, this.taskKeyW, this.value1);
    } else {
      assert(this.removeRoot(layout.rootTaskIdTreeWord, taskIdShape, this.taskKeyW));
    }
  }

  jobIndex(role: number, env: number, name: number, row: number, insert: boolean): void {
    const key = this.key4w;
    key.words[0] = role;
    key.words[1] = env;
    key.words[2] = name;
    key.words[3] = row;
    if (insert) this.setRoot(layout.rootJobIndexWord, jobIndexShape, key, this.noValue);
    else assert(this.removeRoot(layout.rootJobIndexWord, jobIndexShape, key));
  }

  pairIndex(rootWord: number, first: number, row: number, insert: boolean): void {
    const key = this.key2w;
    key.words[0] = first;
    key.words[1] = row;
    if (insert) this.setRoot(rootWord, pairShape, key, this.noValue);
    else assert(this.removeRoot(rootWord, pairShape, key));
  }

  /** Writes the root block of the working roots and returns it (publish is the writer's). */
  writeRootBlock(revision: number): number {
    this.syncRadix();
    const block = this.allocator.alloc(layout.rootBytes);
    const u32 = this.view.u32;
    u32.set(this.roots, block >>> 2);
    this.view.f64[(block >>> 3) + layout.rootRevisionF64] = revision;
    u32[(block >>> 2) + layout.rootEpochWord] = this.context.epochBuilding;
    u32[(block >>> 2) + layout.rootTaskCountWord] = this.taskCount;
    u32[(block >>> 2) + layout.rootConfigCountWord] = this.configCount;
    return block;
  }
}

/** What the aggregates need of a config, computed once when it is first stored. */
export interface ConfigFacts {
  role: string;
  environment: string;
  name: string;
  bucket: number;
  totals: Float64Array;
}


/** The four key words of a config hash (its first 16 bytes, big-endian words). */
export function hashWords(hash: Uint8Array): number[] {
  return [prefixWord(hash, 0), prefixWord(hash, 4), prefixWord(hash, 8), prefixWord(hash, 12)];
}

function keyOf(words: number, role: number, env: number, name: number): number[] {
  return words === 1 ? [role] : words === 2 ? [role, env] : [role, env, name];
}
