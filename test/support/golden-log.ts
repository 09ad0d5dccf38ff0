/**
 * The deterministic script that wrote test/fixtures/log-v1 (a data directory holding only a log): a fixed list of
 * commit groups, committed by a WriterCore and appended by the daemon's own WriteAheadLog and LogGroupBuilder,
 * exactly as workers/writer/main.ts group() does, but in this thread so that nothing depends on timing (the next
 * segment's preallocation is awaited before every group, so that both segments are whole preallocated files).
 * Owner: tests only (test/golden.test.ts regenerates it in a temporary directory and compares the bytes).
 *
 *   node dist/test/support/golden-log.js OUT_DIR     writes OUT_DIR/log/<segments>
 *
 * Never rewrite test/fixtures/log-v1 with it after a format change: a new format version gets a new fixture
 * (log-v2, from a copy of this script), and log-v1 stays as the files old daemons wrote, which must still read.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeTransactionResult, encode } from '../../core/codec.js';
import {
  HostMaintenanceRequestT, PreconditionKind, RecordTable, ResourceType, ScheduleStatus, type TransactionT,
} from '../../core/fbs/strata.js';
import * as layout from '../../core/layout.js';
import { LogGroupBuilder } from '../../core/log-entry.js';
import { WriteAheadLog } from '../../workers/writer/log.js';
import { WriterCore } from '../../workers/writer/writer.js';
import {
  cronJob, hostAttributes, instanceConfig, jobKey, jobUpdate, ops, precondition, resource, scheduledTask,
  taskConfig, taskEvent, transaction, updateEvent, updateKey,
} from '../model/build.js';

/** Small segments: the fixture's groups fill more than one, so the log has two segments (and a CRC chain across). */
export const goldenSegmentBytes = 4096;

const jobA = jobKey('golden', 'prod', 'api');
const jobB = jobKey('golden', 'prod', 'batch');
/** Two configs with large executor data, so that a few groups fill a segment. */
export const goldenConfigA = taskConfig(jobA, { production: true, executorData: `{"a":"${'a'.repeat(900)}"}` });
export const goldenConfigB = taskConfig(jobB, { cpus: 0.5, executorData: `{"b":"${'b'.repeat(900)}"}` });
const updateA = updateKey(jobA, 'update-1');

/** The commit groups, in order: each inner list is one group (one log record), its transactions in commit order. */
export function goldenGroups(): TransactionT[][] {
  return [
    // 1: configs inline in the tasks: config A is logged in this entry only.
    [transaction([ops.upsert(
      scheduledTask('golden-api-0', goldenConfigA, { events: [taskEvent(1000, ScheduleStatus.PENDING, 'created')] }),
      scheduledTask('golden-api-1', goldenConfigA, { instanceId: 1,
        events: [taskEvent(1000, ScheduleStatus.PENDING, 'created')] }))], { idempotency: ['golden-client', 1] })],
    // 2: config A inline again: logged by its hash.
    [transaction([ops.upsert(scheduledTask('golden-api-2', goldenConfigA, { instanceId: 2,
      events: [taskEvent(1001, ScheduleStatus.PENDING, 'created')] }))])],
    // 3: one group of lone transitions (compact entries): keyed, unkeyed, a keyed no-op (logged, takes no
    // revision) and an unkeyed no-op (not logged at all).
    [
      transaction([ops.transition('golden-api-0', ScheduleStatus.ASSIGNED, { timestamp: 2000n,
        slaveHost: 'host-1', slaveId: 'agent-1', message: 'assigned' })], { idempotency: ['scheduler', 1] }),
      transaction([ops.transition('golden-api-1', ScheduleStatus.ASSIGNED, { timestamp: 2001n,
        slaveHost: 'host-2', slaveId: 'agent-2', message: 'assigned' })]),
      transaction([ops.transition('golden-api-0', ScheduleStatus.ASSIGNED, { timestamp: 2002n })],
        { idempotency: ['scheduler', 2] }),
      transaction([ops.transition('golden-api-1', ScheduleStatus.ASSIGNED, { timestamp: 2003n })]),
    ],
    // 4: a transition with a precondition, and two transitions in one transaction: the general form.
    [
      transaction([ops.transition('golden-api-0', ScheduleStatus.RUNNING, { timestamp: 3000n })], {
        preconditions: [precondition(RecordTable.TASK, PreconditionKind.TASK_STATUS, { taskId: 'golden-api-0',
          status: ScheduleStatus.ASSIGNED })], idempotency: ['scheduler', 3] }),
      transaction([ops.transition('golden-api-1', ScheduleStatus.STARTING, { timestamp: 3001n }),
        ops.transition('golden-api-1', ScheduleStatus.RUNNING, { timestamp: 3002n })]),
    ],
    // 5: a cron job with config B inline (logged once, here), and a quota.
    [
      transaction([ops.saveCron(cronJob(jobB, goldenConfigB, { instanceCount: 2 }))]),
      transaction([ops.saveQuota('golden', [resource(ResourceType.NUM_CPUS, 8), resource(ResourceType.RAM_MB, 4096)])]),
    ],
    // 6: host attributes and a maintenance request.
    [
      transaction([ops.saveHosts(hostAttributes('host-1', [['rack', ['r1']], ['zone', ['z1']]]),
        hostAttributes('host-2', [['rack', ['r2']]]))]),
      transaction([ops.saveMaintenance(new HostMaintenanceRequestT('host-2', undefined, undefined, 600n,
        1_700_000_000_000n))]),
    ],
    // 7: the scheduler's metadata.
    [transaction([ops.saveScheduler('golden-framework', [['cluster', 'golden']])])],
    // 8: a job update with config A inline (by hash in the log) and an event.
    [
      transaction([ops.saveUpdate(jobUpdate(updateA, [instanceConfig(goldenConfigA, [[0, 2]])],
        instanceConfig(goldenConfigA, [[0, 2]])))]),
      transaction([ops.updateEvent(updateA, updateEvent(0, 4000, 'deployer'))]),
    ],
    // 9: a delete.
    [transaction([ops.delete(['golden-api-2'])], { idempotency: ['golden-client', 2] })],
    // 10: a task of config B, stored by the cron job before: by hash.
    [transaction([ops.upsert(scheduledTask('golden-batch-0', goldenConfigB, {
      events: [taskEvent(5000, ScheduleStatus.PENDING, 'created')] }))])],
  ];
}

/** Writes the golden log into `logDir` (which must be empty or absent); returns the last revision. */
export async function writeGoldenLog(logDir: string): Promise<number> {
  const arena = new SharedArrayBuffer(16 * 1024 * 1024, { maxByteLength: 64 * 1024 * 1024 });
  const writer = new WriterCore({ arena, control: new SharedArrayBuffer(layout.controlBytes),
    arenaBytesMax: 64 * 1024 * 1024, pinMsMax: 30_000, now: () => 0 });
  const log = new WriteAheadLog({ dir: logDir, segmentBytes: goldenSegmentBytes });
  log.open({ segment: null, lastCrc: 0, lastRevision: 0, torn: null }, 0);
  const builder = new LogGroupBuilder();
  writer.log = builder;
  try {
    for (const group of goldenGroups()) {
      await log.settle(); // the next segment is preallocated before any cut: whole segment files, every run
      builder.begin(writer.revision + 1, 0);
      for (const item of group) {
        const result = decodeTransactionResult(writer.commit(encode(item)));
        if (result.error !== null) throw new Error(`golden transaction failed: ${String(result.error.message)}`);
      }
      if (builder.count > 0) log.append(builder.finish(), writer.revision);
      writer.publish();
    }
    await log.settle();
  } finally {
    log.close();
  }
  rmSync(join(logDir, 'next.tmp'), { force: true }); // the preallocated next segment: not part of the log
  return writer.revision;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (out === undefined) throw new Error('usage: node dist/test/support/golden-log.js OUT_DIR');
  mkdirSync(out, { recursive: true });
  const revision = await writeGoldenLog(join(out, 'log'));
  process.stdout.write(`wrote ${join(out, 'log')}: revisions 1..${revision}\n`);
}
