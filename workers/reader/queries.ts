/**
 * Queries on one pinned revision, straight from shared memory. Owner: a reader thread (piscina worker).
 *
 * Invariants:
 * - Reads only what is reachable from `store.roots` (the pinned revision's root block); never writes the arena.
 * - Summaries and quota consumption read the writer's aggregates: no scan of tasks.
 * - A malformed or invalid query is INVALID_ARGUMENT; long scans check the pin every 1024 records and stop with
 *   DeadlineError once it has expired.
 */
import * as flatbuffers from 'flatbuffers';
import type { ArenaView } from '../../core/arena.js';
import { TreeKey } from '../../core/btree.js';
import { checkedBuffer } from '../../core/checked.js';
import { canonicalConfig, decodeConfig } from '../../core/config.js';
import {
  ConfigDetail, CronJobsQuery, CronJobsResultT, ErrorCode, ErrorT, HostAttributes,
  HostAttributesQuery, HostAttributesResultT, HostMaintenanceRequest, JobConfiguration, JobConfigurationT,
  JobInstanceUpdateEvent, JobKey, JobKeyT, JobKeysQuery, JobKeysResult, JobStats, JobSummary, JobSummaryQuery,
  JobSummaryResult, JobUpdate, JobUpdateDetailsT, JobUpdateEvent, JobUpdateQuery, JobUpdatesResultT,
  JobUpdateStateT, JobUpdateStatus, MaintenanceQuery, MaintenanceResultT, Query, QueryRequest,
  QueryResponse, Quota, QuotaQuery, QuotaResultT, ResourceTotalsT, Result, RoleSummary, RoleSummaryResult,
  SchedulerMetadata, SchedulerResultT, StoredConfigT, TaskQuery,
  } from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import * as limits from '../../core/limits.js';
import { isStatus, jobStatsBucket, statusValueMax } from '../../core/status.js';
import {
  fourKeyShape, jobIndexShape, oneKeyShape, pairShape, StoreReader, taskIdShape, threeKeyShape, twoKeyShape,
} from '../../core/store.js';
import { AssertionError } from '../../core/assert.js';
import { cpuUnitsPerCpu } from '../writer/plan.js';
import { DeadlineError } from './pin.js';
import { compareUtf8, text } from '../../core/text.js';
import { TaskResponseWriter } from './task-encoder.js';

export class QueryError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const invalid = (message: string) => new QueryError(ErrorCode.INVALID_ARGUMENT, message);
const UTF8 = flatbuffers.Encoding.UTF8_BYTES;


function checkPaging(offset: number, limit: number): void {
  if (offset < 0 || limit < 0) throw invalid('offset and limit must be >= 0');
}

/** Whether a TaskQuery restricts nothing (Aurora's Query.unscoped(): a role of only whitespace is no role). */
function unrestricted(q: TaskQuery): boolean {
  return text(q.role()).trim() === '' && text(q.environment()) === '' && text(q.jobName()) === '' &&
    q.taskIdsLength() === 0 && q.statusesLength() === 0 && q.instanceIdsLength() === 0 &&
    q.slaveHostsLength() === 0 && q.jobKeysLength() === 0;
}

const portsMax = 1024; // as the writer's plan allows

/** Aurora's JobStats bucket of each status value, -1 for a value that is not a status. */
const statsBuckets = Int8Array.from({ length: layout.statusValueCount },
  (_, status) => (isStatus(status) ? jobStatsBucket(status) : -1));

interface SortedEntries { blobs: number[]; values: number[]; ids: number[]; order: number[] }

interface TaskFilter {
  role: number; env: number; name: number;           // -1 when not filtered
  statuses: Uint8Array | null;
  instances: Set<number> | null;
  hosts: Set<number> | null;
  jobs: Set<string> | null;                          // "role,env,name" of ids
}

export class QueryRunner {
  readonly view: ArenaView;
  readonly store: StoreReader;
  readonly builder = new flatbuffers.Builder(64 * 1024);
  private readonly expired: () => boolean;
  private readonly key = new TreeKey(4);
  private readonly request = new QueryRequest();
  private readonly eventNodes: number[] = [];
  private readonly taskWriter = new TaskResponseWriter();
  private readonly blobOf = (id: number): number => this.store.stringBlob(id);
  private readonly strings = new Map<number, flatbuffers.Offset>(); // string blob -> offset, for one response

  constructor(view: ArenaView, store: StoreReader, expired: () => boolean) {
    this.view = view;
    this.store = store;
    this.expired = expired;
  }

  /** Answers one QueryRequest with QueryResponse bytes (a fresh copy). */
  run(bytes: Uint8Array): Uint8Array {
    const b = this.builder;
    b.clear();
    this.strings.clear();
    let response: flatbuffers.Offset;
    try {
      const request = QueryRequest.getRootAsQueryRequest(checkedBuffer(bytes), this.request);
      if (request.queryType() === Query.TaskQuery) return this.tasks(request.query(new TaskQuery()) as TaskQuery);
      const [type, result] = this.dispatch(request);
      response = createResponse(b, this.store.revision, type, result, 0);
    } catch (error) {
      if (error instanceof DeadlineError || error instanceof AssertionError) throw error; // not the client's
      b.clear();
      const code = error instanceof QueryError ? error.code : ErrorCode.INVALID_ARGUMENT;
      const message = error instanceof QueryError ? error.message : `malformed query: ${(error as Error).message}`;
      const errorOffset = new ErrorT(code, message, -1, -1, BigInt(this.store.revision)).pack(b);
      response = createResponse(b, this.store.revision, Result.NONE, 0, errorOffset);
    }
    b.finish(response);
    return b.asUint8Array().slice();
  }

  private dispatch(request: QueryRequest): [Result, flatbuffers.Offset] {
    switch (request.queryType()) {
      case Query.JobKeysQuery: return [Result.JobKeysResult, this.jobKeys(request.query(new JobKeysQuery()) as JobKeysQuery)];
      case Query.RoleSummaryQuery: return [Result.RoleSummaryResult, this.roleSummary()];
      case Query.JobSummaryQuery:
        return [Result.JobSummaryResult, this.jobSummary(request.query(new JobSummaryQuery()) as JobSummaryQuery)];
      case Query.QuotaQuery: return [Result.QuotaResult, this.quota(request.query(new QuotaQuery()) as QuotaQuery)];
      case Query.CronJobsQuery:
        return [Result.CronJobsResult, this.cronJobs(request.query(new CronJobsQuery()) as CronJobsQuery)];
      case Query.JobUpdateQuery:
        return [Result.JobUpdatesResult, this.jobUpdates(request.query(new JobUpdateQuery()) as JobUpdateQuery)];
      case Query.HostAttributesQuery:
        return [Result.HostAttributesResult, this.hosts(request.query(new HostAttributesQuery()) as HostAttributesQuery)];
      case Query.MaintenanceQuery:
        return [Result.MaintenanceResult, this.maintenance(request.query(new MaintenanceQuery()) as MaintenanceQuery)];
      case Query.SchedulerQuery: return [Result.SchedulerResult, this.scheduler()];
      default: throw invalid(`unknown query type ${request.queryType()}`);
    }
  }

  /**
   * A count or length read from shared memory, checked against its limit. Past it the memory was reused under an
   * expired pin (DeadlineError) or this is a bug (assertion): never a reason to loop or allocate without bound.
   */
  private bounded(value: number, max: number): number {
    if (value <= max) return value;
    if (this.expired()) throw new DeadlineError();
    throw new AssertionError(`a stored count or length ${value} is over its limit ${max}`);
  }

  /** The length of a string blob, checked against its limit and the arena's end. */
  private length(blob: number, max: number): number {
    const length = this.bounded(this.view.u32[blob >>> 2]!, max);
    return blob + 4 + length <= this.view.bytes ? length : this.bounded(Number.MAX_SAFE_INTEGER, 0);
  }

  private checkPin(count: number): void {
    if ((count & 1023) === 0 && this.expired()) throw new DeadlineError();
  }

  // ----------------------------------------------------------------------------------------------------------
  // Tasks

  /** A whole QueryResponse with a TasksResult, written by the specialised encoder (task-encoder.ts). */
  private tasks(q: TaskQuery): Uint8Array {
    checkPaging(q.offset(), q.limit());
    const detail = q.configDetail();
    if (detail < ConfigDetail.FULL || detail > ConfigDetail.HASH_ONLY) throw invalid('unknown config_detail');
    for (let i = 0; i < q.statusesLength(); i++) if (!isStatus(q.statuses(i)!)) throw invalid(`unknown status ${q.statuses(i)}`);
    const records: number[] = [];
    let total: number;
    if (unrestricted(q)) {
      // Every task matches: walk the id index only as far as the page needs; the count is the table's.
      total = this.store.roots[layout.rootTaskCountWord]!;
      this.firstTasks(q.limit() > 0 ? q.offset() + q.limit() : total, records);
    } else {
      const rows: number[] = [];
      const ordered = this.candidates(q, rows);
      const filter = this.filter(q);
      if (filter !== null) {
        for (let i = 0; i < rows.length; i++) {
          const record = this.store.taskRecord(rows[i]!);
          if (record !== 0 && this.matches(record, filter)) records.push(record);
          this.checkPin(i);
        }
      }
      if (!ordered) sortById(this.view, records);
      total = records.length;
    }
    const start = Math.min(q.offset(), total);
    const end = q.limit() > 0 ? Math.min(total, start + q.limit()) : total;
    const writer = this.taskWriter;
    writer.begin(this.store.revision, end - start, total);
    const configRows = new Map<number, number>(); // config row -> config blob, in order of first use
    for (let i = start; i < end; i++) {
      const record = records[i]!;
      const configRow = this.store.taskWord(record, layout.taskConfigRowWord);
      let configBlob = configRows.get(configRow);
      if (configBlob === undefined) {
        configBlob = this.store.configBlob(configRow);
        configRows.set(configRow, configBlob);
      }
      this.encodeTask(record, configBlob);
      if (writer.bytesWritten > limits.resultBytesMax) {
        throw new QueryError(ErrorCode.RESOURCE_EXHAUSTED, 'result too large: page it');
      }
    }
    if (detail === ConfigDetail.HASH_ONLY) {
      writer.configs(0);
    } else {
      let entry = writer.configs(configRows.size);
      for (const blob of configRows.values()) {
        writer.storedConfig(entry, this.store.configHash(blob), this.configBytes(blob, detail));
        entry += 4;
      }
    }
    return writer.finish(this.view.u8, this.view.u32, this.blobOf);
  }

  private configBytes(blob: number, detail: ConfigDetail): Uint8Array {
    const bytes = this.store.configBytes(blob);
    if (detail !== ConfigDetail.WITHOUT_EXECUTOR_DATA) return bytes;
    const config = decodeConfig(bytes.slice());
    if (config.executorConfig !== null) config.executorConfig.data = null;
    return canonicalConfig(config).bytes;
  }

  /** Candidate rows from the most selective index; true if they come in task id order already. */
  private candidates(q: TaskQuery, rows: number[]): boolean {
    const store = this.store;
    const idCount = q.taskIdsLength();
    if (idCount > limits.queryKeysMax || q.jobKeysLength() > limits.queryKeysMax ||
      q.slaveHostsLength() > limits.queryKeysMax || q.statusesLength() > limits.queryKeysMax ||
      q.instanceIdsLength() > limits.queryKeysMax) throw invalid(`a query vector holds at most ${limits.queryKeysMax}`);
    if (idCount > 0) {
      const seen = new Set<number>();
      for (let i = 0; i < idCount; i++) {
        const row = store.taskRow(q.taskIds(i, UTF8) as Uint8Array);
        if (row >= 0 && !seen.has(row)) {
          seen.add(row);
          rows.push(row);
        }
      }
      return false;
    }
    if (q.jobKeysLength() > 0) {
      const seen = new Set<string>();
      for (let i = 0; i < q.jobKeysLength(); i++) {
        const job = q.jobKeys(i)!;
        const ids = [store.stringId(text(job.role())), store.stringId(text(job.environment())),
          store.stringId(text(job.name()))];
        const key = ids.join(',');
        if (!ids.includes(0) && !seen.has(key)) this.scanJobIndex(ids, rows);
        seen.add(key);
      }
      return false;
    }
    const role = text(q.role());
    if (role.trim() !== '') {
      const ids = [store.stringId(role)];
      const env = text(q.environment());
      if (env !== '') {
        ids.push(store.stringId(env));
        const name = text(q.jobName());
        if (name !== '') ids.push(store.stringId(name));
      }
      if (!ids.includes(0)) this.scanJobIndex(ids, rows);
      return false;
    }
    if (q.slaveHostsLength() > 0) {
      const seen = new Set<number>();
      for (let i = 0; i < q.slaveHostsLength(); i++) {
        const host = store.stringId(text(q.slaveHosts(i)));
        if (host !== 0 && !seen.has(host)) this.scanPairs(layout.rootHostIndexWord, host, rows);
        seen.add(host);
      }
      return false;
    }
    if (q.statusesLength() > 0) {
      const statuses = q.statusesArray()!;
      for (const status of new Set(statuses)) this.scanPairs(layout.rootStatusIndexWord, status, rows);
      return false;
    }
    const cursor = store.cursor;
    let count = 0;
    for (let ok = cursor.seek(store.roots[layout.rootTaskIdTreeWord]!, null, taskIdShape); ok; ok = cursor.next()) {
      rows.push(cursor.value(0));
      this.checkPin(++count);
    }
    return true;
  }

  /** The records of the first `count` tasks in task id order. */
  private firstTasks(count: number, records: number[]): void {
    const store = this.store;
    const cursor = store.cursor;
    for (let ok = cursor.seek(store.roots[layout.rootTaskIdTreeWord]!, null, taskIdShape); ok && records.length < count;
      ok = cursor.next()) {
      records.push(store.taskRecord(cursor.value(0)));
      this.checkPin(records.length);
    }
  }

  private scanJobIndex(prefix: number[], rows: number[]): void {
    const cursor = this.store.cursor;
    const key = this.key;
    key.words.fill(0);
    for (let i = 0; i < prefix.length; i++) key.words[i] = prefix[i]!;
    let count = 0;
    for (let ok = cursor.seek(this.store.roots[layout.rootJobIndexWord]!, key, jobIndexShape); ok; ok = cursor.next()) {
      let same = true;
      for (let i = 0; i < prefix.length && same; i++) same = cursor.keyWord(i) === prefix[i];
      if (!same) break;
      rows.push(cursor.keyWord(3));
      this.checkPin(++count);
    }
  }

  private scanPairs(rootWord: number, first: number, rows: number[]): void {
    const cursor = this.store.cursor;
    const key = new TreeKey(2);
    key.words[0] = first;
    let count = 0;
    for (let ok = cursor.seek(this.store.roots[rootWord]!, key, pairShape); ok && cursor.keyWord(0) === first;
      ok = cursor.next()) {
      rows.push(cursor.keyWord(1));
      this.checkPin(++count);
    }
  }

  /** The query's restrictions as ids; null when one names a string no record has (nothing can match). */
  private filter(q: TaskQuery): TaskFilter | null {
    const store = this.store;
    const filter: TaskFilter = { role: -1, env: -1, name: -1, statuses: null, instances: null, hosts: null, jobs: null };
    const role = text(q.role());
    if (role.trim() !== '') filter.role = store.stringId(role);
    const env = text(q.environment());
    if (env !== '') filter.env = store.stringId(env);
    const name = text(q.jobName());
    if (name !== '') filter.name = store.stringId(name);
    if (filter.role === 0 || filter.env === 0 || filter.name === 0) return null;
    if (q.statusesLength() > 0) {
      filter.statuses = new Uint8Array(statusValueMax + 1);
      for (const status of q.statusesArray()!) {
        if (!isStatus(status)) throw invalid(`unknown status ${status}`);
        filter.statuses[status] = 1;
      }
    }
    if (q.instanceIdsLength() > 0) filter.instances = new Set(q.instanceIdsArray()!);
    if (q.slaveHostsLength() > 0) {
      filter.hosts = new Set();
      for (let i = 0; i < q.slaveHostsLength(); i++) filter.hosts.add(store.stringId(text(q.slaveHosts(i))));
      filter.hosts.delete(0);
    }
    if (q.jobKeysLength() > 0) {
      filter.jobs = new Set();
      for (let i = 0; i < q.jobKeysLength(); i++) {
        const job = q.jobKeys(i)!;
        filter.jobs.add(`${store.stringId(text(job.role()))},${store.stringId(text(job.environment()))},` +
          `${store.stringId(text(job.name()))}`);
      }
    }
    return filter;
  }

  private matches(record: number, f: TaskFilter): boolean {
    const u32 = this.view.u32;
    const w = record >>> 2;
    const role = u32[w + layout.taskRoleWord]!;
    const env = u32[w + layout.taskEnvWord]!;
    const name = u32[w + layout.taskNameWord]!;
    if (f.role >= 0 && role !== f.role) return false;
    if (f.env >= 0 && env !== f.env) return false;
    if (f.name >= 0 && name !== f.name) return false;
    if (f.statuses !== null && f.statuses[u32[w + layout.taskStatusWord]!] !== 1) return false;
    if (f.instances !== null && !f.instances.has(this.view.i32[w + layout.taskInstanceWord]!)) return false;
    if (f.hosts !== null && !f.hosts.has(u32[w + layout.taskHostWord]!)) return false;
    if (f.jobs !== null && !f.jobs.has(`${role},${env},${name}`)) return false;
    return true;
  }

  /** Writes one task (ScheduledTask, AssignedTask, strings, ports, events) from its record. */
  private encodeTask(record: number, configBlob: number): void {
    const writer = this.taskWriter;
    const view = this.view;
    const store = this.store;
    const u8 = view.u8;
    const u32 = view.u32;
    const w = record >>> 2;
    const ancestor = u32[w + layout.taskAncestorWord]!;
    const table = writer.task(ancestor !== 0);
    writer.taskScalars(table, u32[w + layout.taskStatusWord]!, view.i32[w + layout.taskFailureCountWord]!,
      view.i32[w + layout.taskTimesPartitionedWord]!, view.f64[(record >>> 3) + layout.taskModRevisionF64]!,
      view.f64[(record >>> 3) + layout.taskCreateRevisionF64]!);
    const slaveId = u32[w + layout.taskSlaveIdWord]!;
    const host = u32[w + layout.taskHostWord]!;
    const ports = u32[w + layout.taskPortsWord]!;
    const assigned = writer.assigned(table, (slaveId !== 0 ? 1 : 0) | (host !== 0 ? 2 : 0) | (ports !== 0 ? 4 : 0),
      view.i32[w + layout.taskInstanceWord]!);
    const id = u32[w + layout.taskIdWord]!;
    writer.string(assigned + 4, u8, id + 4, this.length(id, limits.textBytesMax));
    if (slaveId !== 0) writer.string(assigned + 8, u8, slaveId + 4, this.length(slaveId, limits.textBytesMax));
    if (host !== 0) writer.sharedString(assigned + 12, host);  // an interned string id
    if (ports !== 0) {
      const count = this.bounded(u32[(ports >>> 2) + 1]!, portsMax);
      let entry = writer.offsets(assigned + 16, count);
      let at = ports + 8;
      for (let i = 0; i < count; i++) {
        const length = u32[(at >>> 2) + 1]!;
        const port = writer.port(entry, view.i32[at >>> 2]!);
        writer.string(port + 4, u8, at + 8, length);
        entry += 4;
        at += 8 + ((length + 3) & ~3);
      }
    }
    writer.byteVector(assigned + 24, store.configHash(configBlob));
    this.encodeEvents(table + 24, u32[w + layout.taskEventsWord]!, u32[w + layout.taskEventCountWord]!);
    if (ancestor !== 0) writer.string(table + 36, u8, ancestor + 4, this.length(ancestor, limits.textBytesMax));
  }

  private encodeEvents(slot: number, head: number, count: number): void {
    const writer = this.taskWriter;
    const view = this.view;
    const u32 = view.u32;
    const nodes = this.eventNodes;
    nodes.length = 0;
    const events = this.bounded(count, limits.taskEventsMax);
    for (let node = head; node !== 0 && nodes.length < events; node = u32[(node >>> 2) + layout.eventPrevWord]!) {
      nodes.push(node);
    }
    let entry = writer.offsets(slot, nodes.length);
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      const w = node >>> 2;
      const message = u32[w + layout.eventMessageWord]!;
      const scheduler = u32[w + layout.eventSchedulerWord]!;  // an interned string id
      const event = writer.event(entry, (message !== 0 ? 1 : 0) | (scheduler !== 0 ? 2 : 0),
        view.f64[(node >>> 3) + layout.eventTimestampF64]!, u32[w + layout.eventStatusWord]!);
      if (message !== 0) writer.string(event + 4, view.u8, message + 4, this.length(message, limits.messageBytesMax));
      if (scheduler !== 0) writer.sharedString(event + 16, scheduler);
      entry += 4;
    }
  }

  /** The same, as object-API values for results built with pack(). */
  private storedConfigs(hashes: Uint8Array[], detail: ConfigDetail): StoredConfigT[] {
    if (detail === ConfigDetail.HASH_ONLY) return [];
    const seen = new Set<string>();
    const out: StoredConfigT[] = [];
    for (const hash of hashes) {
      const hex = Buffer.from(hash).toString('hex');
      if (seen.has(hex)) continue;
      seen.add(hex);
      const blob = this.configBlobByHash(hash);
      if (blob === 0) continue;
      let bytes: Uint8Array = this.store.configBytes(blob).slice();
      if (detail === ConfigDetail.WITHOUT_EXECUTOR_DATA) {
        const config = decodeConfig(bytes);
        if (config.executorConfig !== null) config.executorConfig.data = null;
        bytes = canonicalConfig(config).bytes;
      }
      out.push(new StoredConfigT(Array.from(hash), Array.from(bytes)));
    }
    return out;
  }

  private configBlobByHash(hash: Uint8Array): number {
    const words = [0, 4, 8, 12].map((i) => ((hash[i]! << 24) | (hash[i + 1]! << 16) | (hash[i + 2]! << 8) | hash[i + 3]!) >>> 0);
    const row = this.store.find4(layout.rootConfigHashWord, words[0]!, words[1]!, words[2]!, words[3]!);
    return row === 0 ? 0 : this.store.configBlob(row);
  }

  // ----------------------------------------------------------------------------------------------------------
  // Jobs and summaries (from aggregates)

  /** Visits aggregate entries of a tree under an optional role prefix: (key words, block). */
  private scanTree(rootWord: number, keyWords: number, role: number, visit: (words: number[], value: number) => void):
    void {
    const shape = keyWords === 1 ? oneKeyShape : keyWords === 2 ? twoKeyShape : keyWords === 3 ? threeKeyShape :
      fourKeyShape;
    const cursor = this.store.cursor;
    const key = new TreeKey(keyWords);
    if (role > 0) key.words[0] = role;
    for (let ok = cursor.seek(this.store.roots[rootWord]!, role > 0 ? key : null, shape); ok; ok = cursor.next()) {
      if (role > 0 && cursor.keyWord(0) !== role) break;
      const words: number[] = [];
      for (let i = 0; i < keyWords; i++) words.push(cursor.keyWord(i));
      visit(words, cursor.value(0));
    }
  }

  private roleFilter(value: string | Uint8Array | null): number {
    const role = text(value);
    if (role === '') return -1;
    return this.store.stringId(role);
  }

  /**
   * The entries of an aggregate tree (under a role prefix when role > 0), sorted by their key strings: `ids` has
   * keyWords interned ids per entry, `blobs` their string blobs, `values` the aggregate blocks, `order` the sort.
   * No string is decoded: keys are compared and copied as UTF-8 bytes.
   */
  private sortedEntries(rootWord: number, keyWords: number, role: number): SortedEntries {
    const shape = keyWords === 1 ? oneKeyShape : keyWords === 2 ? twoKeyShape : threeKeyShape;
    const cursor = this.store.cursor;
    const key = new TreeKey(keyWords);
    key.words[0] = role > 0 ? role : 0;
    const entries: SortedEntries = { blobs: [], values: [], ids: [], order: [] };
    for (let ok = cursor.seek(this.store.roots[rootWord]!, role > 0 ? key : null, shape); ok; ok = cursor.next()) {
      if (role > 0 && cursor.keyWord(0) !== role) break;
      for (let i = 0; i < keyWords; i++) {
        const id = cursor.keyWord(i);
        entries.ids.push(id);
        entries.blobs.push(this.store.stringBlob(id));
      }
      entries.order.push(entries.values.length);
      entries.values.push(cursor.value(0));
    }
    const view = this.view;
    const blobs = entries.blobs;
    entries.order.sort((x, y) => {
      for (let i = 0; i < keyWords; i++) {
        const c = view.compareBlobs(blobs[x * keyWords + i]!, blobs[y * keyWords + i]!);
        if (c !== 0) return c;
      }
      return 0;
    });
    return entries;
  }

  /** A string of the arena in the response, once per response (the builder lets offsets be shared). */
  private stringAt(blob: number): flatbuffers.Offset {
    let offset = this.strings.get(blob);
    if (offset === undefined) {
      const length = this.view.u32[blob >>> 2]!;
      offset = this.builder.createString(this.view.u8.subarray(blob + 4, blob + 4 + length));
      this.strings.set(blob, offset);
    }
    return offset;
  }

  private jobKeyAt(entries: SortedEntries, index: number): flatbuffers.Offset {
    const blobs = entries.blobs;
    return JobKey.createJobKey(this.builder, this.stringAt(blobs[index * 3]!), this.stringAt(blobs[index * 3 + 1]!),
      this.stringAt(blobs[index * 3 + 2]!));
  }

  private jobKeys(q: JobKeysQuery): flatbuffers.Offset {
    const role = this.roleFilter(q.role());
    const offsets: flatbuffers.Offset[] = [];
    if (role !== 0) {
      const entries = this.sortedEntries(layout.rootJobAggWord, 3, role);
      for (const i of entries.order) {
        if (this.view.i32[(entries.values[i]! >>> 2) + layout.aggTaskCountWord]! > 0) offsets.push(this.jobKeyAt(entries, i));
      }
    }
    const b = this.builder;
    return JobKeysResult.createJobKeysResult(b, JobKeysResult.createJobsVector(b, offsets));
  }

  private roleSummary(): flatbuffers.Offset {
    const entries = this.sortedEntries(layout.rootRoleAggWord, 1, -1);
    const b = this.builder;
    const i32 = this.view.i32;
    const offsets = entries.order.map((i) => {
      const block = entries.values[i]! >>> 2;
      return RoleSummary.createRoleSummary(b, this.stringAt(entries.blobs[i]!), i32[block + layout.aggJobCountWord]!,
        i32[block + layout.aggCronCountWord]!, i32[block + layout.aggTaskCountWord]!);
    });
    return RoleSummaryResult.createRoleSummaryResult(b, RoleSummaryResult.createRolesVector(b, offsets));
  }

  private jobSummary(q: JobSummaryQuery): flatbuffers.Offset {
    const role = this.roleFilter(q.role());
    const b = this.builder;
    const i32 = this.view.i32;
    const offsets: flatbuffers.Offset[] = [];
    if (role !== 0) {
      const entries = this.sortedEntries(layout.rootJobAggWord, 3, role);
      const stats = [0, 0, 0, 0];
      for (const i of entries.order) {
        const block = entries.values[i]! >>> 2;
        const counts = i32.subarray(block + layout.aggStatusCountsWord, block + layout.aggStatusCountsWord +
          layout.statusValueCount);
        stats.fill(0);
        for (let status = 0; status < counts.length; status++) {
          const bucket = statsBuckets[status]!;
          if (bucket >= 0) stats[bucket]! += counts[status]!;
        }
        let cron = 0;
        if (i32[block + layout.aggCronCountWord]! > 0) {
          const ids = entries.ids;
          cron = this.cronJob(this.store.find3(layout.rootCronWord, ids[i * 3]!, ids[i * 3 + 1]!, ids[i * 3 + 2]!)).pack(b);
        }
        const keyOffset = this.jobKeyAt(entries, i);
        const countsOffset = JobSummary.createStatusCountsVector(b, counts);
        const statsOffset = JobStats.createJobStats(b, stats[1]!, stats[2]!, stats[3]!, stats[0]!);
        JobSummary.startJobSummary(b);
        JobSummary.addJob(b, keyOffset);
        JobSummary.addStats(b, statsOffset);
        JobSummary.addStatusCounts(b, countsOffset);
        if (cron !== 0) JobSummary.addCron(b, cron);
        offsets.push(JobSummary.endJobSummary(b));
      }
    }
    return JobSummaryResult.createJobSummaryResult(b, JobSummaryResult.createJobsVector(b, offsets));
  }

  private quota(q: QuotaQuery): flatbuffers.Offset {
    const role = text(q.role());
    if (role === '') throw invalid('QuotaQuery needs a role');
    const id = this.store.stringId(role);
    const result = new QuotaResultT(role);
    const blob = id === 0 ? 0 : this.store.find1(layout.rootQuotaWord, id);
    if (blob !== 0) {
      result.quota = Quota.getRootAsQuota(new flatbuffers.ByteBuffer(this.store.blobBytes(blob).slice())).unpack().quota;
      result.quotaRevision = BigInt(this.store.blobRevision(blob));
    }
    const block = id === 0 ? 0 : this.store.find1(layout.rootRoleAggWord, id);
    const totals = (bucket: number): ResourceTotalsT => {
      if (block === 0) return new ResourceTotalsT(0, 0, 0, 0);
      const at = (block >>> 3) + layout.aggTotalsF64 + bucket * 4;
      const f64 = this.view.f64;
      return new ResourceTotalsT(f64[at]! / cpuUnitsPerCpu, f64[at + 1]!, f64[at + 2]!, f64[at + 3]!);
    };
    result.prodShared = totals(layout.bucketProdShared);
    result.prodDedicated = totals(layout.bucketProdDedicated);
    result.nonProdShared = totals(layout.bucketNonProdShared);
    result.nonProdDedicated = totals(layout.bucketNonProdDedicated);
    return result.pack(this.builder);
  }

  // ----------------------------------------------------------------------------------------------------------
  // Cron jobs, updates, hosts, scheduler

  private cronJob(blob: number): JobConfigurationT {
    const job = JobConfiguration.getRootAsJobConfiguration(new flatbuffers.ByteBuffer(this.store.blobBytes(blob).slice())).unpack();
    job.modRevision = BigInt(this.store.blobRevision(blob));
    return job;
  }

  private cronJobs(q: CronJobsQuery): flatbuffers.Offset {
    const role = this.roleFilter(q.role());
    const jobKey = q.job()?.unpack() ?? null;
    const jobs: { key: string[]; job: JobConfigurationT }[] = [];
    if (role !== 0) {
      this.scanTree(layout.rootCronWord, 3, role, (words, blob) => {
        const key = words.map((id) => this.store.stringOf(id));
        if (jobKey !== null && (key[0] !== text(jobKey.role) || key[1] !== text(jobKey.environment) ||
          key[2] !== text(jobKey.name))) return;
        jobs.push({ key, job: this.cronJob(blob) });
      });
    }
    jobs.sort((a, b) => compareKeys(a.key, b.key));
    const result = new CronJobsResultT(jobs.map((j) => j.job),
      this.storedConfigs(jobs.map((j) => Uint8Array.from(j.job.configHash)), ConfigDetail.FULL));
    return result.pack(this.builder);
  }

  private jobUpdates(q: JobUpdateQuery): flatbuffers.Offset {
    checkPaging(q.offset(), q.limit());
    const detail = q.configDetail();
    if (detail < ConfigDetail.FULL || detail > ConfigDetail.HASH_ONLY) throw invalid('unknown config_detail');
    const statuses = q.updateStatusesLength() > 0 ? new Set(q.updateStatusesArray()!) : null;
    for (const status of statuses ?? []) {
      if (status < JobUpdateStatus.ROLLING_FORWARD || status > JobUpdateStatus.ROLL_BACK_AWAITING_PULSE) {
        throw invalid('unknown job update status');
      }
    }
    const key = q.key()?.unpack() ?? null;
    const jobKey = q.jobKey()?.unpack() ?? null;
    const user = text(q.user());
    const role = this.roleFilter(q.role());
    const found: { key: string[]; details: JobUpdateDetailsT; modified: bigint }[] = [];
    if (role !== 0) {
      this.scanTree(layout.rootUpdateWord, 4, role, (words, record) => {
        const k = words.map((id) => this.store.stringOf(id));
        if (key !== null && !sameUpdateKey(k, key)) return;
        if (jobKey !== null && !sameJob(k, jobKey)) return;
        const details = this.updateDetails(record);
        const summary = details.update!.summary!;
        if (user !== '' && text(summary.user) !== user) return;
        if (statuses !== null && !statuses.has(summary.state!.status)) return;
        found.push({ key: k, details, modified: summary.state!.lastModifiedTimestampMs });
      });
    }
    found.sort((a, b) => (a.modified > b.modified ? -1 : a.modified < b.modified ? 1 : compareKeys(a.key, b.key)));
    const total = found.length;
    const start = Math.min(q.offset(), total);
    const end = q.limit() > 0 ? Math.min(total, start + q.limit()) : total;
    const page = found.slice(start, end).map((f) => f.details);
    const hashes: Uint8Array[] = [];
    for (const details of page) {
      const instructions = details.update!.instructions!;
      for (const entry of instructions.initialState) hashes.push(Uint8Array.from(entry.configHash));
      if (instructions.desiredState !== null) hashes.push(Uint8Array.from(instructions.desiredState.configHash));
    }
    return new JobUpdatesResultT(page, this.storedConfigs(hashes, detail), total).pack(this.builder);
  }

  /** An update with its events (oldest first) and its derived state. */
  private updateDetails(record: number): JobUpdateDetailsT {
    const view = this.view;
    const w = record >>> 2;
    const update = JobUpdate.getRootAsJobUpdate(new flatbuffers.ByteBuffer(
      this.store.blobBytes(view.u32[w + layout.updateBlobWord]!).slice())).unpack();
    const events = this.listBlobs(view.u32[w + layout.updateEventsWord]!, view.u32[w + layout.updateEventCountWord]!)
      .map((bytes) => JobUpdateEvent.getRootAsJobUpdateEvent(new flatbuffers.ByteBuffer(bytes)).unpack());
    const instanceEvents = this.listBlobs(view.u32[w + layout.updateInstanceEventsWord]!,
      view.u32[w + layout.updateInstanceEventCountWord]!)
      .map((bytes) => JobInstanceUpdateEvent.getRootAsJobInstanceUpdateEvent(new flatbuffers.ByteBuffer(bytes)).unpack());
    const last = events[events.length - 1];
    const lastInstance = instanceEvents[instanceEvents.length - 1];
    let modified = last?.timestampMs ?? 0n;
    if (lastInstance !== undefined && lastInstance.timestampMs > modified) modified = lastInstance.timestampMs;
    update.summary!.state = new JobUpdateStateT(last?.status ?? JobUpdateStatus.ROLLING_FORWARD,
      events[0]?.timestampMs ?? 0n, modified);
    return new JobUpdateDetailsT(update, events, instanceEvents,
      BigInt(view.f64[(record >>> 3) + layout.updateModRevisionF64]!));
  }

  /** The blobs of a newest-first list, oldest first. */
  private listBlobs(head: number, count: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const bound = this.bounded(count, limits.updateEventsMax);
    for (let node = head; node !== 0 && out.length < bound; node = this.view.u32[(node >>> 2) + layout.listPrevWord]!) {
      out.push(this.store.blobBytes(this.view.u32[(node >>> 2) + layout.listBlobWord]!).slice());
    }
    return out.reverse();
  }

  private hostBlobs(rootWord: number, count: number, host: (i: number) => string): { host: string; blob: number }[] {
    if (count > limits.queryKeysMax) throw invalid(`a query vector holds at most ${limits.queryKeysMax}`);
    const out: { host: string; blob: number }[] = [];
    if (count === 0) {
      this.scanTree(rootWord, 1, -1, (words, blob) => out.push({ host: this.store.stringOf(words[0]!), blob }));
    } else {
      const seen = new Set<string>();
      for (let i = 0; i < count; i++) {
        const name = host(i);
        if (seen.has(name)) continue;
        seen.add(name);
        const id = this.store.stringId(name);
        const blob = id === 0 ? 0 : this.store.find1(rootWord, id);
        if (blob !== 0) out.push({ host: name, blob });
      }
    }
    return out.sort((a, b) => compareUtf8(a.host, b.host));
  }

  private hosts(q: HostAttributesQuery): flatbuffers.Offset {
    const found = this.hostBlobs(layout.rootHostAttributesWord, q.hostsLength(), (i) => text(q.hosts(i)));
    return new HostAttributesResultT(found.map(({ blob }) => {
      const host = HostAttributes.getRootAsHostAttributes(new flatbuffers.ByteBuffer(this.store.blobBytes(blob).slice())).unpack();
      host.modRevision = BigInt(this.store.blobRevision(blob));
      return host;
    })).pack(this.builder);
  }

  private maintenance(q: MaintenanceQuery): flatbuffers.Offset {
    const found = this.hostBlobs(layout.rootMaintenanceWord, q.hostsLength(), (i) => text(q.hosts(i)));
    return new MaintenanceResultT(found.map(({ blob }) => {
      const request = HostMaintenanceRequest.getRootAsHostMaintenanceRequest(
        new flatbuffers.ByteBuffer(this.store.blobBytes(blob).slice())).unpack();
      request.modRevision = BigInt(this.store.blobRevision(blob));
      return request;
    })).pack(this.builder);
  }

  private scheduler(): flatbuffers.Offset {
    const blob = this.store.roots[layout.rootSchedulerWord]!;
    const result = new SchedulerResultT(null);
    if (blob !== 0) {
      const metadata = SchedulerMetadata.getRootAsSchedulerMetadata(new flatbuffers.ByteBuffer(this.store.blobBytes(blob).slice())).unpack();
      metadata.modRevision = BigInt(this.store.blobRevision(blob));
      result.metadata = metadata;
    }
    return result.pack(this.builder);
  }
}

/**
 * Sorts task records by id (UTF-8 byte order). Ids of one job share a long prefix, so the sort compares numbers
 * made of the 6 bytes after the common prefix first, and whole ids only on a tie.
 */
function sortById(view: ArenaView, records: number[]): void {
  const count = records.length;
  if (count < 2) return;
  const u8 = view.u8;
  const u32 = view.u32;
  const first = u32[(records[0]! >>> 2) + layout.taskIdWord]!;
  let prefix = Math.min(u32[first >>> 2]!, 4096); // bounded even over memory reused under an expired pin
  for (let i = 1; i < count && prefix > 0; i++) {
    const blob = u32[(records[i]! >>> 2) + layout.taskIdWord]!;
    const length = Math.min(prefix, u32[blob >>> 2]!);
    let same = 0;
    while (same < length && u8[first + 4 + same] === u8[blob + 4 + same]) same++;
    prefix = same;
  }
  const keys = new Float64Array(count);
  const order = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const blob = u32[(records[i]! >>> 2) + layout.taskIdWord]!;
    const length = u32[blob >>> 2]!;
    let key = 0;
    for (let k = 0; k < 6; k++) key = key * 256 + (prefix + k < length ? u8[blob + 4 + prefix + k]! + 1 : 0);
    keys[i] = key;
    order[i] = i;
  }
  order.sort((a, b) => keys[a]! - keys[b]! || view.compareBlobs(u32[(records[a]! >>> 2) + layout.taskIdWord]!,
    u32[(records[b]! >>> 2) + layout.taskIdWord]!));
  const sorted = order.map((i) => records[i]!);
  for (let i = 0; i < count; i++) records[i] = sorted[i]!;
}

function createResponse(b: flatbuffers.Builder, revision: number, type: Result, result: flatbuffers.Offset,
  error: flatbuffers.Offset): flatbuffers.Offset {
  QueryResponse.startQueryResponse(b);
  QueryResponse.addRevision(b, BigInt(revision));
  if (type !== Result.NONE) {
    QueryResponse.addResultType(b, type);
    QueryResponse.addResult(b, result);
  }
  if (error !== 0) QueryResponse.addError(b, error);
  return QueryResponse.endQueryResponse(b);
}

function compareKeys(a: string[], b: string[]): number {
  for (let i = 0; i < a.length; i++) {
    const c = compareUtf8(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return 0;
}

function sameJob(key: string[], job: JobKeyT): boolean {
  return key[0] === text(job.role) && key[1] === text(job.environment) && key[2] === text(job.name);
}

function sameUpdateKey(key: string[], updateKey: { job: JobKeyT | null; id: string | Uint8Array | null }): boolean {
  return updateKey.job !== null && sameJob(key, updateKey.job) && key[3] === text(updateKey.id);
}
