/**
 * Golden files of the log format: test/fixtures/log-v1 is a data directory whose log (two segments, format
 * version 1) was written by test/support/golden-log.ts. This test reads it as recovery and the tools do (scanLog,
 * entryTransaction) and checks what it is known to hold: revisions, entry forms, op types, task ids, configs
 * logged once; recovers it with Engine.open; and checks that this build still writes the same bytes.
 * The snapshot format's golden file (test/fixtures/snapshot-v1.snap) is checked in test/snapshot.test.ts.
 *
 * A format change must keep reading these files: a newer build reads every older format version and migrates
 * it on read (docs/formats.md, "Versions"). The fixture must never be regenerated for a new format version: the
 * new version gets a new fixture (log-v2, from a copy of the script) and a test of its own, and log-v1 stays
 * byte for byte as version 1 daemons left their logs on disk. Only while formatVersion is 1 must this build write
 * the very same bytes (the last test); a change that fails it without a version bump is a format change.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import * as flatbuffers from 'flatbuffers';
import { decodeQueryResponse, decodeTransactionResult, encode } from '../core/codec.js';
import { canonicalConfig } from '../core/config.js';
import {
  CronJobsQueryT, HostAttributesQueryT, JobUpdateQueryT, MaintenanceQueryT, Op, QuotaQueryT, SaveCronJobT,
  SaveJobUpdateT, ScheduleStatus, SchedulerQueryT, TaskQueryT, Transaction, TransitionTaskT, UpsertTasksT,
  DeleteTasksT, type CronJobsResultT, type HostAttributesResultT, type JobUpdatesResultT, type MaintenanceResultT,
  type QuotaResultT, type SchedulerResultT, type TasksResultT, type TransactionT,
} from '../core/fbs/strata.js';
import { formatVersion, headerBytes } from '../core/files.js';
import { entryTransaction } from '../core/log-entry.js';
import { listSegments, scanLog } from '../core/wal.js';
import { Engine } from '../daemon/engine.js';
import { ops, request, transaction } from './model/build.js';
import { writeGoldenLog } from './support/golden-log.js';

const fixture = fileURLToPath(new URL('../../test/fixtures/log-v1', import.meta.url));
const fixtureLog = join(fixture, 'log');

// What the fixture holds, known independently of the code that reads it.
const segmentNames = ['0000000000000000-0000000000000001.log', '0000000000000001-0000000000000007.log'];
const lastRevision = 15;
const groupFirstRevisions = [1, 2, 3, 5, 7, 9, 11, 12, 14, 15];
const hashA = '69232b660a8022ca595a7350a9c34fa3'; // config of golden/prod/api
const hashB = '80802f8c81b83a2417dc15c8135e26e4'; // config of golden/prod/batch
/** One line per entry: revision [noop], form, idempotency key, ops, task ids, configs inline, configs by hash. */
const entries = [
  `1 general key golden-client/1 UpsertTasks tasks golden-api-0,golden-api-1 inline ${hashA} refs ${hashA},${hashA}`,
  `2 general - UpsertTasks tasks golden-api-2 inline - refs ${hashA}`,
  '3 compact key scheduler/1 TransitionTask tasks golden-api-0 inline - refs -',
  '4 compact - TransitionTask tasks golden-api-1 inline - refs -',
  '4 noop compact key scheduler/2 TransitionTask tasks golden-api-0 inline - refs -',
  '5 general key scheduler/3 TransitionTask tasks golden-api-0 inline - refs -',
  '6 general - TransitionTask,TransitionTask tasks golden-api-1,golden-api-1 inline - refs -',
  `7 general - SaveCronJob tasks - inline ${hashB} refs ${hashB}`,
  '8 general - SaveQuota tasks - inline - refs -',
  '9 general - SaveHostAttributes tasks - inline - refs -',
  '10 general - SaveMaintenanceRequest tasks - inline - refs -',
  '11 general - SaveSchedulerMetadata tasks - inline - refs -',
  `12 general - SaveJobUpdate tasks - inline - refs ${hashA},${hashA}`,
  '13 general - SaveJobUpdateEvent tasks - inline - refs -',
  '14 general key golden-client/2 DeleteTasks tasks golden-api-2 inline - refs -',
  `15 general - UpsertTasks tasks golden-batch-0 inline - refs ${hashB}`,
];

const hex = (bytes: ArrayLike<number>): string => Buffer.from(Uint8Array.from(bytes)).toString('hex');
const list = (items: string[]): string => (items.length === 0 ? '-' : items.join(','));

/** The task ids and config hashes (by reference) an op names. */
function opFacts(op: TransactionT['ops'][number]['op']): { tasks: string[]; refs: string[] } {
  if (op instanceof UpsertTasksT) {
    return { tasks: op.tasks.map((task) => String(task.assignedTask!.taskId)),
      refs: op.tasks.map((task) => hex(task.assignedTask!.configHash)) };
  }
  if (op instanceof TransitionTaskT) return { tasks: [String(op.taskId)], refs: [] };
  if (op instanceof DeleteTasksT) return { tasks: op.taskIds.map(String), refs: [] };
  if (op instanceof SaveCronJobT) return { tasks: [], refs: [hex(op.job!.configHash)] };
  if (op instanceof SaveJobUpdateT) {
    const instructions = op.update!.instructions!;
    return { tasks: [], refs: [...instructions.initialState, instructions.desiredState!]
      .map((config) => hex(config.configHash)) };
  }
  return { tasks: [], refs: [] };
}

interface Read { lines: string[]; groups: number[]; inlineConfigs: string[]; inlineInTasks: number }

function readFixture(): Read & { scan: ReturnType<typeof scanLog> } {
  const read: Read = { lines: [], groups: [], inlineConfigs: [], inlineInTasks: 0 };
  const scan = scanLog(fixtureLog, (record) => {
    read.groups.push(record.firstRevision);
    let revision = record.firstRevision - 1;
    for (let i = 0; i < record.group.entriesLength(); i++) {
      const entry = record.group.entries(i)!;
      if (!entry.noop()) revision++;
      const compact = entry.transition() !== null;
      const txn = Transaction.getRootAsTransaction(new flatbuffers.ByteBuffer(entryTransaction(entry))).unpack();
      const facts = txn.ops.map((o) => opFacts(o.op));
      // A config inline is hashed here from its bytes: the hash the references name must come out.
      const inline = txn.configs.map((config) => canonicalConfig(config).hashHex);
      read.inlineConfigs.push(...inline);
      for (const o of txn.ops) {
        if (o.op instanceof UpsertTasksT) {
          read.inlineInTasks += o.op.tasks.filter((task) => task.assignedTask!.task !== null).length;
        }
      }
      const key = txn.idempotency === null ? '-' :
        `key ${String(txn.idempotency.clientId)}/${txn.idempotency.sequence}`;
      read.lines.push(`${revision}${entry.noop() ? ' noop' : ''} ${compact ? 'compact' : 'general'} ${key} ` +
        `${txn.ops.map((o) => Op[o.opType]).join(',')} tasks ${list(facts.flatMap((x) => x.tasks))} ` +
        `inline ${list(inline)} refs ${list(facts.flatMap((x) => x.refs))}`);
    }
  });
  return { ...read, scan };
}

test('the golden log (format version 1) reads: segments, revisions, entry forms, ops, tasks, configs once', (t) => {
  const { scan, lines, groups, inlineConfigs, inlineInTasks } = readFixture();
  t.deepEqual(listSegments(fixtureLog).map((segment) => segment.name), segmentNames);
  t.deepEqual(scan.segments.map((segment) => segment.header.version), [1, 1]);
  t.is(scan.segments[1]!.header.c, scan.segments[0]!.lastCrc, 'the second segment chains to the first');
  t.is(scan.lastRevision, lastRevision);
  t.is(scan.torn, null);
  t.deepEqual(groups, groupFirstRevisions);
  t.deepEqual(lines, entries);
  // Each config is logged once, inline, where it was first stored; everything else names it by hash.
  t.deepEqual(inlineConfigs, [hashA, hashB]);
  t.is(inlineInTasks, 0, 'no task carries its config inline in the log');
});

test('the golden log recovers: revision, tasks, the small tables and the idempotency window', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'strata-golden-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(fixture, dir, { recursive: true });
  const engine = await Engine.open({ dataDir: dir, readerThreads: 1, snapshot: { everyMs: 0, logBytes: 0 } });
  try {
    t.is(engine.stats().revision, lastRevision);
    t.is(engine.recovery?.replayed, entries.length);
    t.is(engine.recovery?.torn, null);
    const [tasks, cron, updates, quota, hosts, maintenance, scheduler] = (await engine.queryBatch([
      request(Object.assign(new TaskQueryT(), { configDetail: 2 })), request(new CronJobsQueryT(null, null)),
      request(new JobUpdateQueryT()), request(new QuotaQueryT('golden')), request(new HostAttributesQueryT([])),
      request(new MaintenanceQueryT([])), request(new SchedulerQueryT()),
    ].map((query) => encode(query)))).map((bytes) => decodeQueryResponse(bytes).result);
    t.deepEqual((tasks as TasksResultT).tasks.map((task) => [String(task.assignedTask!.taskId),
      ScheduleStatus[task.status], hex(task.assignedTask!.configHash), Number(task.modRevision)]), [
      ['golden-api-0', 'RUNNING', hashA, 5], ['golden-api-1', 'RUNNING', hashA, 6],
      ['golden-batch-0', 'PENDING', hashB, 15]]);
    t.deepEqual((cron as CronJobsResultT).jobs.map((job) => [String(job.key!.name), job.instanceCount]),
      [['batch', 2]]);
    const update = (updates as JobUpdatesResultT).updates;
    t.deepEqual(update.map((u) => [String(u.update!.summary!.key!.id), u.updateEvents.length]), [['update-1', 1]]);
    t.is((quota as QuotaResultT).quota!.resources.length, 2);
    t.deepEqual((hosts as HostAttributesResultT).hosts.map((host) => String(host.host)), ['host-1', 'host-2']);
    t.deepEqual((maintenance as MaintenanceResultT).requests.map((r) => [String(r.host), r.timeoutSecs]),
      [['host-2', 600n]]);
    t.is(String((scheduler as SchedulerResultT).metadata!.frameworkId), 'golden-framework');
    // Keyed entries are remembered: a retry answers the first outcome (the noop one too), applying nothing.
    for (const [client, sequence, revision] of [['golden-client', 2, 14], ['scheduler', 2, 4]] as const) {
      const retry = decodeTransactionResult(await engine.commit(encode(transaction(
        [ops.transition('golden-api-0', ScheduleStatus.KILLING)], { idempotency: [client, sequence] }))));
      t.true(retry.duplicate, `${client}/${sequence}`);
      t.is(Number(retry.revision), revision);
    }
    t.is(engine.stats().revision, lastRevision);
  } finally {
    await engine.close();
  }
});

test('this build writes the golden log byte for byte (while the format version is 1)', async (t) => {
  if (formatVersion !== 1) {
    t.pass(`format version ${formatVersion}: log-v1 is only read (above); the new version has a fixture of its own`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'strata-golden-write-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.is(await writeGoldenLog(join(dir, 'log')), lastRevision);
  t.deepEqual(listSegments(join(dir, 'log')).map((segment) => segment.name), segmentNames);
  for (const name of segmentNames) {
    const written = readFileSync(join(dir, 'log', name));
    const golden = readFileSync(join(fixtureLog, name));
    t.is(written.length, golden.length, name);
    // Bytes 16..48 are the SHA-256 of schema.fbs (any edit of it changes them) and 124..128 the header's CRC
    // over them; the records do not depend on them (the CRC chain is seeded by header field c, not the CRC).
    t.deepEqual(written.subarray(0, 16), golden.subarray(0, 16), `${name}: magic, version, header bytes`);
    t.deepEqual(written.subarray(48, 124), golden.subarray(48, 124), `${name}: seq, first revision, seed, term`);
    t.true(written.subarray(headerBytes).equals(golden.subarray(headerBytes)), `${name}: every record, same bytes`);
  }
});
