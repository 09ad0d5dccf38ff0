/**
 * The offline log tools (cli/log-tools.ts, cli/commands.ts, the strata binary) on real data directories written
 * by the Engine with 64 KiB segments (several segments, groups of one and of several transactions), after the
 * engine closed. Owner: the test runner (ava worker thread).
 * Invariants checked: dump shows every logged transaction once, in order, and each filter selects exactly the
 * transactions the test committed that match it; verify is clean on a clean log, exits 1 naming file and offset
 * on corruption, missing and misplaced segments, and 4 on a torn tail alone; truncate and edit leave a log that
 * the Engine recovers to the state of a reference engine that committed the same transactions; cut and replaced
 * bytes are kept; a held lock, bad arguments and the binary give their documented exit codes.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runSync as run } from '../cli/commands.js';
import { readLog } from '../cli/log-read.js';
import {
  exitFailure, exitLocked, exitOk, exitTornTail, exitUsage, logDump, logEdit, logTruncate, logVerify,
} from '../cli/log-tools.js';
import { decodeQueryResponse, decodeTransactionResult } from '../core/codec.js';
import { encodeHeader, magicLog } from '../core/files.js';
import { listSegments, recordBytes, recordGroup, segmentName } from '../core/wal.js';
import { Engine } from '../daemon/engine.js';
import { f, jobConfig, make, op, query, task, taskQuery, transition, txn, upsert } from './support/build.js';

const S = f.ScheduleStatus;
const segmentBytes = 64 * 1024;
const rounds = 150;
const jobs = ['api', 'web', 'db', 'cache'];
const mainFile = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** A transaction the test committed: its bytes, what it touches, and the revision the engine gave it. */
interface Committed {
  bytes: Uint8Array;
  revision: number;     // a noop: the revision it was committed at
  noop: boolean;
  ops: f.Op[];
  jobs: string[];       // role/env/name
  tasks: string[];
}

interface Base { dir: string; committed: Committed[]; lastRevision: number }

let base: Base;
const scratch = mkdtempSync(join(tmpdir(), 'strata-log-tools-'));

function taskId(job: string, instance: number): string {
  const uuid = (instance * 7919).toString(16).padStart(8, '0');
  return `${1_700_000_000_000 + instance}-www-prod-${job}-${instance}-${uuid}`;
}

/** The transactions of one round, in batches: a batch is committed in one tick, so it is one log group. */
function roundBatches(round: number): Omit<Committed, 'revision' | 'noop'>[][] {
  const job = jobs[round % jobs.length]!;
  const key = `www/prod/${job}`;
  const config = jobConfig('www', 'prod', job, { data: `{"task":"${job}","pad":"${'x'.repeat(200)}"}` });
  const ids = [0, 1, 2].map((k) => taskId(job, round * 3 + k));
  const one = (ops: f.OperationT[], jobKeys: string[], tasks: string[], extra: Partial<f.TransactionT> = {}) =>
    ({ bytes: txn(ops, extra), ops: ops.map((o) => o.opType), jobs: jobKeys, tasks });
  const batches = [
    [one([upsert(ids.map((id, k) => task(id, config, round * 3 + k)))], [key], ids)],
    ids.map((id, k) => one([transition(id, S.ASSIGNED, { slaveHost: `host-${k}`, slaveId: `agent-${k}`,
      assignedPorts: [make(f.PortT, { name: 'http', port: 31000 + k })], message: 'assigned' })], [key], [id])),
    ids.map((id, k) => one([transition(id, S.RUNNING, { timestamp: 3n })], [key], [id], k === 0 ?
      { idempotency: make(f.IdempotencyKeyT, { clientId: 'scheduler-1', sequence: BigInt(round) }) } : {})),
  ];
  if (round % 5 === 4) {
    const cron = `www/prod/cron-${round % 3}`;
    const updateKey = make(f.JobUpdateKeyT, { job: make(f.JobKeyT, { role: 'www', environment: 'prod', name: job }),
      id: `update-${round}` });
    batches.push([
      one([op(f.Op.SaveQuota, make(f.SaveQuotaT, { role: 'www', quota: make(f.ResourceAggregateT, {
        resources: [make(f.ResourceT, { type: f.ResourceType.NUM_CPUS, numCpus: 100 + round })] }) }))], [], []),
      one([op(f.Op.SaveCronJob, make(f.SaveCronJobT, { job: make(f.JobConfigurationT, {
        key: make(f.JobKeyT, { role: 'www', environment: 'prod', name: `cron-${round % 3}` }),
        cronSchedule: '*/5 * * * *', instanceCount: 1, taskConfig: jobConfig('www', 'prod', `cron-${round % 3}`),
      }) }))],
      [cron], []),
      one([op(f.Op.SaveJobUpdate, make(f.SaveJobUpdateT, { update: make(f.JobUpdateT, {
        summary: make(f.JobUpdateSummaryT, { key: updateKey, user: 'alice' }),
        instructions: make(f.JobUpdateInstructionsT, { desiredState: make(f.InstanceTaskConfigT, { task: config,
          instances: [make(f.RangeT, { first: 0, last: 2 })] }) }) }) }))], [key], []),
    ]);
  }
  if (round % 7 === 6) {
    const gone = [0, 1, 2].map((k) => taskId(jobs[(round - 6) % jobs.length]!, (round - 6) * 3 + k));
    batches.push([one([op(f.Op.DeleteTasks, make(f.DeleteTasksT, { taskIds: gone }))],
      [`www/prod/${jobs[(round - 6) % jobs.length]!}`], gone)]);
  }
  if (round === 3) {
    // A transition to the current status changes nothing: logged (noop) only for its idempotency key.
    batches.push([one([transition(ids[0]!, S.RUNNING)], [key], [ids[0]!],
      { idempotency: make(f.IdempotencyKeyT, { clientId: 'scheduler-1', sequence: 100_000n }) })]);
  }
  return batches;
}

async function commitAll(engine: Engine, batch: Omit<Committed, 'revision' | 'noop'>[]): Promise<Committed[]> {
  const results = await Promise.all(batch.map((item) => engine.commit(item.bytes)));
  return results.map((bytes, i) => {
    const result = decodeTransactionResult(bytes);
    if (result.error !== null) throw new Error(`commit failed: ${result.error.message}`);
    const noop = result.ops.every((o) => o.noop);
    return { ...batch[i]!, revision: Number(result.revision), noop };
  });
}

test.before(async () => {
  const dir = join(scratch, 'base');
  const engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  const committed: Committed[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const batch of roundBatches(round)) committed.push(...await commitAll(engine, batch));
  }
  const lastRevision = engine.stats().revision;
  await engine.close();
  base = { dir, committed, lastRevision };
});

test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

let copies = 0;
function copyBase(): string {
  const dir = join(scratch, `copy-${copies++}`);
  cpSync(base.dir, dir, { recursive: true });
  return dir;
}

function capture(): { lines: string[]; output: { write: (line: string) => void } } {
  const lines: string[] = [];
  return { lines, output: { write: (line: string) => lines.push(line) } };
}

/** Everything a client can read: every table, on one revision. */
async function state(engine: Engine): Promise<f.QueryResponseT[]> {
  const responses = await engine.queryBatch([
    taskQuery({ configDetail: f.ConfigDetail.FULL }),
    query(f.Query.CronJobsQuery, make(f.CronJobsQueryT, {})),
    query(f.Query.JobUpdateQuery, make(f.JobUpdateQueryT, {})),
    query(f.Query.QuotaQuery, make(f.QuotaQueryT, { role: 'www' })),
    query(f.Query.RoleSummaryQuery, make(f.RoleSummaryQueryT, {})),
  ]);
  return responses.map((bytes) => decodeQueryResponse(bytes));
}

/** The state of an in-memory engine that committed `transactions` one by one. */
async function referenceState(transactions: Uint8Array[]): Promise<{ revision: number; state: f.QueryResponseT[] }> {
  const engine = await Engine.open({ readerThreads: 1 });
  try {
    for (const bytes of transactions) {
      const result = decodeTransactionResult(await engine.commit(bytes));
      if (result.error !== null) throw new Error(`reference commit failed: ${result.error.message}`);
    }
    return { revision: engine.stats().revision, state: await state(engine) };
  } finally {
    await engine.close();
  }
}

async function recoveredState(dir: string): Promise<{ revision: number; state: f.QueryResponseT[] }> {
  const engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  try {
    return { revision: engine.stats().revision, state: await state(engine) };
  } finally {
    await engine.close();
  }
}

function dumpJson(dir: string, options: Record<string, unknown> = {}): { revision: number; noop: boolean;
  file: string; offset: number; transaction: Record<string, unknown> & { ops: { opType: number }[] } }[] {
  const { lines, output } = capture();
  const code = logDump({ dataDir: dir, json: true, ...options }, output);
  if (code !== exitOk) throw new Error(`dump failed (${code}): ${lines.join('\n')}`);
  return lines.map((line) => JSON.parse(line));
}

const revisionsOf = (items: { revision: number; noop: boolean }[]) =>
  items.map((x) => `${x.revision}${x.noop ? 'n' : ''}`);

test('the data directory has several segments, multi-entry groups and a noop entry', (t) => {
  const read = readLog(join(base.dir, 'log'));
  t.true(read.segments.length >= 4, `${read.segments.length} segments`);
  t.true(read.groups.some((g) => g.entryCount >= 3));
  t.is(read.lastRevision, base.lastRevision);
  t.true(base.committed.some((c) => c.noop));
});

test('dump: every transaction once and in order, as text and as JSON lines', (t) => {
  const all = dumpJson(base.dir);
  t.deepEqual(revisionsOf(all), revisionsOf(base.committed));
  const noop = all.find((x) => x.noop)!;
  t.is((noop.transaction['idempotency'] as { sequence: string }).sequence, '100000', 'bigints are strings');
  const upserted = all.find((x) => x.transaction.ops[0]!.opType === f.Op.UpsertTasks)!;
  const assigned = ((upserted.transaction.ops[0] as unknown as { op: f.UpsertTasksT }).op.tasks[0]!.assignedTask!);
  t.regex(assigned.configHash as unknown as string, /^[0-9a-f]{32}$/, 'config hashes are hex');
  t.true(all.every((x) => /^[0-9a-f]{16}-[0-9a-f]{16}\.log$/.test(x.file) && x.offset >= 128));

  const { lines, output } = capture();
  t.is(logDump({ dataDir: base.dir }, output), exitOk);
  const heads = lines.filter((line) => line.startsWith('rev '));
  t.is(heads.length, base.committed.length);
  t.is(lines.at(-1), `-- ${base.committed.length} of ${base.committed.length} entries shown`);
  t.regex(lines.join('\n'), /rev \d+ noop {2}\S+\.log:\d+ entry \d+\/\d+ {2}key scheduler-1\/100000/);
  t.regex(lines.join('\n'), /UpsertTasks 3 task\(s\): \S+-www-prod-api-0-\S+ PENDING www\/prod\/api/);
  t.regex(lines.join('\n'), /TransitionTask \S+ -> ASSIGNED host host-0 ports http=31000 at 2 "assigned"/);
  t.regex(lines.join('\n'), /configs stored: [0-9a-f]{32} www\/prod\/api/);
  t.regex(lines.join('\n'), /SaveQuota www cpus=104/);
});

test('dump: revision range, op, job and task filters select exactly the matching transactions', (t) => {
  const range = dumpJson(base.dir, { from: 100, to: 120 });
  t.deepEqual(revisionsOf(range), revisionsOf(base.committed.filter((c) => c.revision >= 100 && c.revision <= 120)));
  const transitions = dumpJson(base.dir, { op: 'transitiontask' });
  t.deepEqual(revisionsOf(transitions), revisionsOf(base.committed.filter((c) => c.ops.includes(f.Op.TransitionTask))));
  const quota = dumpJson(base.dir, { op: 'SaveQuota', from: 50 });
  t.deepEqual(revisionsOf(quota),
    revisionsOf(base.committed.filter((c) => c.ops.includes(f.Op.SaveQuota) && c.revision >= 50)));
  for (const job of ['www/prod/db', 'www/prod/cron-1']) {
    const expected = base.committed.filter((c) => c.jobs.includes(job));
    t.deepEqual(revisionsOf(dumpJson(base.dir, { job })), revisionsOf(expected), job);
  }
  const id = taskId('web', 3 * 5 + 1);
  const touching = base.committed.filter((c) => c.tasks.includes(id));
  t.true(touching.length >= 3);
  t.deepEqual(revisionsOf(dumpJson(base.dir, { task: id })), revisionsOf(touching));
  const combined = dumpJson(base.dir, { task: id, op: 'TransitionTask', job: 'www/prod/web' });
  t.deepEqual(revisionsOf(combined), revisionsOf(touching.filter((c) => c.ops.includes(f.Op.TransitionTask))));
  t.deepEqual(dumpJson(base.dir, { job: 'www/prod/nothing' }), []);
});

test('verify: a clean log, and it replays', (t) => {
  const { lines, output } = capture();
  t.is(logVerify({ dataDir: base.dir, replay: true }, output), exitOk, lines.join('\n'));
  const text = lines.join('\n');
  t.regex(text, new RegExp(`revisions 1\\.\\.${base.lastRevision}`));
  t.regex(text, /verify: clean/);
  t.regex(text, new RegExp(`replay: ${base.committed.length} transactions re-executed to revision ` +
    `${base.lastRevision}`));
});

test('verify: a flipped bit in a middle segment is corruption, named by file and offset', (t) => {
  const dir = copyBase();
  const segment = listSegments(join(dir, 'log'))[1]!;
  const path = join(dir, 'log', segment.name);
  const bytes = readFileSync(path);
  bytes[128 + 40]! ^= 0x10; // inside the first record's payload
  writeFileSync(path, bytes);
  const { lines, output } = capture();
  t.is(logVerify({ dataDir: dir, replay: true }, output), exitFailure);
  const text = lines.join('\n');
  t.regex(text, new RegExp(`problem: \\S*${segment.name} at offset 128 \\(revision ${segment.firstRevision}\\): ` +
    'CRC mismatch'));
  t.regex(text, /replay: skipped \(the log is corrupt\)/);
});

test('verify: a torn tail alone exits 4, and the engine recovers past it', async (t) => {
  const dir = copyBase();
  const read = readLog(join(dir, 'log'));
  const last = read.groups.at(-1)!;
  const path = join(dir, 'log', read.segments.at(-1)!.name);
  const bytes = readFileSync(path);
  // A group write that reached the disk only in part: its header and the first bytes, then zeros.
  const length = 4000;
  const torn = Buffer.alloc(recordBytes(length));
  torn.writeUInt32LE(length, 0);
  torn[4] = recordGroup;
  torn[5] = recordBytes(length) - 12 - length;
  torn.fill(0xab, 12, 300);
  const grown = Buffer.concat([bytes, Buffer.alloc(Math.max(0, last.end + torn.length - bytes.length))]);
  torn.copy(grown, last.end);
  writeFileSync(path, grown);
  const { lines, output } = capture();
  t.is(logVerify({ dataDir: dir }, output), exitTornTail, lines.join('\n'));
  t.regex(lines.join('\n'), new RegExp(`torn tail: \\S*${read.segments.at(-1)!.name} at offset ${last.end}`));
  t.regex(lines.join('\n'), /verify: torn tail only/);
  const recovered = await recoveredState(dir);
  t.is(recovered.revision, base.lastRevision);
});

test('verify: a missing middle segment and a segment renamed out of order are corruption', (t) => {
  const missing = copyBase();
  const segments = listSegments(join(missing, 'log'));
  rmSync(join(missing, 'log', segments[2]!.name));
  const first = capture();
  t.is(logVerify({ dataDir: missing }, first.output), exitFailure);
  t.regex(first.lines.join('\n'), new RegExp(`${segments[3]!.name} at offset 0 .*segments 2\\.\\.2 are missing`));

  const renamed = copyBase();
  const moved = segmentName(segments.at(-1)!.seq + 1, segments[1]!.firstRevision);
  renameSync(join(renamed, 'log', segments[1]!.name), join(renamed, 'log', moved));
  const second = capture();
  t.is(logVerify({ dataDir: renamed }, second.output), exitFailure);
  const text = second.lines.join('\n');
  t.regex(text, new RegExp(`${moved} at offset 48 .*the name disagrees`));
  t.regex(text, /segments 1\.\.1 are missing/);
});

test('truncate --after REV inside a group: the engine recovers exactly the first REV transactions', async (t) => {
  const dir = copyBase();
  const before = readLog(join(dir, 'log'));
  const spanning = before.groups.find((g) => g.segmentIndex === 1 && g.entryCount >= 3 &&
    g.lastRevision - g.firstRevision >= 2)!;
  const after = spanning.firstRevision;
  const { lines, output } = capture();
  t.is(logTruncate({ dataDir: dir, after }, output), exitOk, lines.join('\n'));
  t.regex(lines.join('\n'), /re-encoded with its first 1 of \d+ entries/);
  t.regex(lines.join('\n'), /verify|revisions 1\.\./);

  const kept = readdirSync(join(dir, 'log')).filter((name) => name.startsWith('truncated-'));
  t.is(kept.length, 1);
  const keptFiles = readdirSync(join(dir, 'log', kept[0]!)).sort();
  const laterNames = before.segments.slice(2).map((s) => s.name);
  t.deepEqual(keptFiles.filter((name) => name.endsWith('.log')), laterNames);
  const tail = keptFiles.find((name) => name.startsWith(`${before.segments[1]!.name}.from-${spanning.offset}`));
  t.truthy(tail, 'the cut tail of the segment holding REV is kept');
  const original = readFileSync(join(base.dir, 'log', before.segments[1]!.name));
  const tailBytes = readFileSync(join(dir, 'log', kept[0]!, tail!));
  t.deepEqual(tailBytes, original.subarray(spanning.offset, spanning.offset + tailBytes.length));

  const read = readLog(join(dir, 'log'));
  t.is(read.lastRevision, after);
  t.is(read.corruption, null);
  const prefix = base.committed.filter((c) => c.revision < after || (c.revision === after && !c.noop));
  const [recovered, reference] = await Promise.all([recoveredState(dir), referenceState(prefix.map((c) => c.bytes))]);
  t.is(recovered.revision, after);
  t.is(reference.revision, after);
  t.deepEqual(recovered.state, reference.state);

  // The daemon appends after the cut, and the log stays valid.
  const engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  const next = decodeTransactionResult(await engine.commit(txn([op(f.Op.RemoveQuota, make(f.RemoveQuotaT,
    { role: 'www' }))])));
  t.is(next.revision, BigInt(after + 1));
  await engine.close();
  t.is(logVerify({ dataDir: dir }, capture().output), exitOk);
});

test('truncate --after the first revision - 1 empties the log; snapshots past REV are kept aside', async (t) => {
  const dir = copyBase();
  mkdirSync(join(dir, 'snapshots'));
  writeFileSync(join(dir, 'snapshots', `snapshot-${(40).toString(16).padStart(16, '0')}.snap`), 'not a real one');
  const { lines, output } = capture();
  t.is(logTruncate({ dataDir: dir, after: 0 }, output), exitOk, lines.join('\n'));
  t.regex(lines.join('\n'), /moved snapshot snapshot-0000000000000028\.snap/);
  t.deepEqual(readdirSync(join(dir, 'snapshots')), []);
  const kept = readdirSync(join(dir, 'log')).find((name) => name.startsWith('truncated-'))!;
  t.true(existsSync(join(dir, 'log', kept, 'snapshot-0000000000000028.snap')));
  t.is(listSegments(join(dir, 'log')).length, 1);
  const recovered = await recoveredState(dir);
  t.is(recovered.revision, 0);
  t.is((recovered.state[0]!.result as f.TasksResultT).total, 0);
});

/** A revision of a SaveQuota in a middle segment (nothing later depends on it). */
function quotaRevision(): Committed {
  const read = readLog(join(base.dir, 'log'));
  const middle = read.groups.filter((g) => g.segmentIndex === 1);
  return base.committed.find((c) => c.ops[0] === f.Op.SaveQuota && c.revision >= middle[0]!.firstRevision &&
    c.revision <= middle.at(-1)!.lastRevision)!;
}

test('edit --drop: later transactions are kept with their revisions shifted down by one', async (t) => {
  const dir = copyBase();
  const dropped = quotaRevision();
  const { lines, output } = capture();
  t.is(logEdit({ dataDir: dir, revision: dropped.revision, drop: true }, output), exitOk, lines.join('\n'));
  const text = lines.join('\n');
  t.regex(text, new RegExp(`dropped revision ${dropped.revision}`));
  t.regex(text, /replay: \d+ transactions re-executed/);
  const keep = readdirSync(join(dir, 'log')).find((name) => name.startsWith('edited-'))!;
  t.true(readdirSync(join(dir, 'log', keep)).some((name) => name.endsWith('.log')));

  const next = base.committed.find((c) => c.revision === dropped.revision + 1 && !c.noop)!;
  const shifted = dumpJson(dir, { from: dropped.revision, to: dropped.revision }).filter((x) => !x.noop);
  t.deepEqual(shifted.map((x) => x.transaction.ops.map((o) => o.opType)), [next.ops]);
  const kept = base.committed.filter((c) => c !== dropped);
  const [recovered, reference] = await Promise.all([recoveredState(dir), referenceState(kept.map((c) => c.bytes))]);
  t.is(recovered.revision, base.lastRevision - 1);
  t.deepEqual(recovered.state, reference.state);
});

test('edit --replace: the transaction at REV is the one in the file', async (t) => {
  const dir = copyBase();
  const replaced = quotaRevision();
  const replacement = txn([op(f.Op.SaveQuota, make(f.SaveQuotaT, { role: 'other', quota: make(f.ResourceAggregateT, {
    resources: [make(f.ResourceT, { type: f.ResourceType.RAM_MB, ramMb: 4096n })] }) }))]);
  const file = join(scratch, 'replacement.fb');
  writeFileSync(file, replacement);
  const { lines, output } = capture();
  t.is(logEdit({ dataDir: dir, revision: replaced.revision, replace: file }, output), exitOk, lines.join('\n'));
  const at = dumpJson(dir, { from: replaced.revision, to: replaced.revision }).filter((x) => !x.noop);
  t.is(at.length, 1);
  t.is((at[0]!.transaction.ops[0] as unknown as { op: f.SaveQuotaT }).op.role, 'other');
  const transactions = base.committed.map((c) => (c === replaced ? replacement : c.bytes));
  const [recovered, reference] = await Promise.all([recoveredState(dir), referenceState(transactions)]);
  t.is(recovered.revision, base.lastRevision);
  t.deepEqual(recovered.state, reference.state);

  const json = join(scratch, 'replacement.json');
  writeFileSync(json, '{"ops": []}');
  const refused = capture();
  t.is(logEdit({ dataDir: dir, revision: 3, replace: json }, refused.output), exitUsage);
  t.regex(refused.lines.join('\n'), /binary FlatBuffers Transaction/);
});

test('edit --drop of a transaction later ones depend on: the log checks but does not replay, and says how to undo',
  (t) => {
    const dir = copyBase();
    const { lines, output } = capture();
    t.is(logEdit({ dataDir: dir, revision: 1, drop: true }, output), exitFailure);
    const text = lines.join('\n');
    t.regex(text, /verify|revisions 1\.\./);
    t.regex(text, /replay: FAILED: .*replay diverged/);
    t.regex(text, /to undo, remove .* and move the \.log files of .*edited-\S+ back/);
    t.is(logVerify({ dataDir: dir }, capture().output), exitOk, 'the new log itself is well formed');
  });

test('a data directory held by a live engine is refused (exit 3), and nothing is changed', async (t) => {
  const dir = copyBase();
  const engine = await Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1 });
  try {
    for (const tool of [
      (output: { write: (line: string) => void }) => logVerify({ dataDir: dir }, output),
      (output: { write: (line: string) => void }) => logTruncate({ dataDir: dir, after: 5 }, output),
      (output: { write: (line: string) => void }) => logDump({ dataDir: dir }, output),
    ]) {
      const { lines, output } = capture();
      t.is(tool(output), exitLocked);
      t.regex(lines.join('\n'), /is in use by stratad \(pid \d+/);
    }
    t.false(readdirSync(join(dir, 'log')).some((name) => name.startsWith('truncated-')));
    const child = spawnSync(process.execPath, [mainFile, 'log', 'verify', '--data-dir', dir], { encoding: 'utf8' });
    t.is(child.status, exitLocked, child.stderr);
    t.regex(child.stderr, /in use by stratad/);
  } finally {
    await engine.close();
  }
  t.is(logVerify({ dataDir: dir }, capture().output), exitOk, 'the lock was released with the engine');
});

test('bad arguments exit 2 with a message and change nothing', (t) => {
  const dir = copyBase();
  const cases: [string[], RegExp][] = [
    [['log', 'truncate', '--data-dir', dir], /--after is required/],
    [['log', 'truncate', '--data-dir', dir, '--after', String(base.lastRevision + 1)],
      /--after \d+ is out of range: the log holds revisions 1\.\.\d+/],
    [['log', 'truncate', '--data-dir', dir, '--after', '-3'], /--after/],
    [['log', 'truncate', '--data-dir', dir, '--after', 'ten'], /--after takes a revision/],
    [['log', 'bogus'], /unknown command 'log bogus'/],
    [['bogus'], /unknown command 'bogus'/],
    [['log', 'dump', '--data-dir', dir, '--op', 'Nope'],
      /--op Nope: not an operation; one of UpsertTasks, TransitionTask/],
    [['log', 'dump', '--data-dir', dir, '--job', 'www/prod'], /ROLE\/ENV\/NAME/],
    [['log', 'dump', '--data-dir', dir, '--from', '9', '--to', '3'], /--from 9 is after --to 3/],
    [['log', 'dump', '--data-dir', dir, '--colour'], /Unknown option '--colour'.*see strata log dump --help/],
    [['log', 'edit', '--data-dir', dir, '--revision', '3'], /exactly one of --drop and --replace/],
    [['log', 'edit', '--data-dir', dir, '--revision', String(base.lastRevision + 1), '--drop'], /out of range/],
    [['log', 'verify', 'extra'], /Unexpected argument 'extra'/],
  ];
  for (const [argv, message] of cases) {
    const lines: string[] = [];
    const write = (line: string) => lines.push(line);
    const code = run(argv, { write, writeError: write });
    t.is(code, exitUsage, argv.join(' '));
    t.regex(lines.join('\n'), message, argv.join(' '));
  }
  t.deepEqual(readdirSync(join(dir, 'log')).filter((name) => !name.endsWith('.log') && name !== 'next.tmp'), []);
  t.is(logVerify({ dataDir: dir }, capture().output), exitOk);
});

test('the strata binary: --help everywhere, and exit codes', (t) => {
  const strata = (...args: string[]) => spawnSync(process.execPath, [mainFile, ...args], { encoding: 'utf8' });
  const help = strata('--help');
  t.is(help.status, exitOk);
  for (const name of ['log dump', 'log verify', 'log truncate', 'log edit']) t.true(help.stdout.includes(name), name);
  t.regex(help.stdout, /3 {2}the data directory is in use/);
  t.is(strata('log', '--help').status, exitOk);
  for (const name of ['dump', 'verify', 'truncate', 'edit']) {
    const one = strata('log', name, '--help');
    t.is(one.status, exitOk, name);
    t.regex(one.stdout, new RegExp(`^usage: strata log ${name} \\[--data-dir DIR\\]`), name);
  }
  t.true(strata('log', 'dump', '--help').stdout.includes('<ts>-<role>-<env>-<job>-<instance>-<uuid>'));
  t.true(strata('log', 'edit', '--help').stdout.includes('binary FlatBuffers only'));
  t.is(strata().status, exitUsage);
  t.is(strata('log').status, exitUsage);
  const missing = strata('log', 'truncate', '--data-dir', base.dir);
  t.is(missing.status, exitUsage);
  t.regex(missing.stderr, /--after is required/);
  const verify = strata('log', 'verify', '--data-dir', base.dir);
  t.is(verify.status, exitOk, verify.stderr);
  t.regex(verify.stdout, /verify: clean/);
  const dump = strata('log', 'dump', '--data-dir', base.dir, '--json', '--to', '10');
  t.is(dump.status, exitOk);
  t.deepEqual(dump.stdout.trim().split('\n').map((line) => JSON.parse(line).revision),
    revisionsOf(base.committed.filter((c) => c.revision <= 10)).map((r) => parseInt(r, 10)));
  t.is(strata('log', 'verify', '--data-dir', join(scratch, 'nowhere')).status, exitFailure);
  const torn = copyBase();
  const last = listSegments(join(torn, 'log')).at(-1)!;
  const path = join(torn, 'log', last.name);
  const bytes = readFileSync(path);
  const end = readLog(join(torn, 'log')).groups.at(-1)!.end;
  const grown = Buffer.concat([bytes, Buffer.alloc(Math.max(0, end + 4096 - bytes.length))]);
  grown.writeUInt32LE(4000, end);
  grown[end + 4] = recordGroup;
  grown[end + 5] = recordBytes(4000) - 12 - 4000;
  grown.fill(0x5a, end + 12, end + 100);
  writeFileSync(path, grown);
  t.is(strata('log', 'verify', '--data-dir', torn).status, exitTornTail);
});

test('a segment header that does not check is corruption at its offset', (t) => {
  const dir = copyBase();
  const segment = listSegments(join(dir, 'log'))[2]!;
  const path = join(dir, 'log', segment.name);
  const bytes = readFileSync(path);
  encodeHeader(magicLog, BigInt(segment.seq), BigInt(segment.firstRevision), 12345).copy(bytes, 0);
  writeFileSync(path, bytes);
  const { lines, output } = capture();
  t.is(logVerify({ dataDir: dir }, output), exitFailure);
  t.regex(lines.join('\n'), new RegExp(`${segment.name} at offset 64 .*CRC chain .* is broken`));
  // truncate repairs it: everything from the stale segment on goes.
  const repaired = capture();
  const lastGood = readLog(join(dir, 'log')).lastRevision;
  t.is(logTruncate({ dataDir: dir, after: lastGood }, repaired.output), exitOk, repaired.lines.join('\n'));
  t.is(logVerify({ dataDir: dir }, capture().output), exitOk);
});

test('a log that starts after a snapshot: replay is skipped; truncate and edit keep a snapshot to start from', (t) => {
  const dir = copyBase();
  const segments = listSegments(join(dir, 'log'));
  rmSync(join(dir, 'log', segments[0]!.name)); // as the daemon does once a snapshot covers a segment
  const first = segments[1]!.firstRevision;
  const unserved = capture();
  t.is(logVerify({ dataDir: dir, replay: true }, unserved.output), exitFailure);
  t.regex(unserved.lines.join('\n'), new RegExp(`the log starts at revision ${first} but there is no snapshot`));

  mkdirSync(join(dir, 'snapshots'));
  const snapshotName = (revision: number) => `snapshot-${revision.toString(16).padStart(16, '0')}.snap`;
  writeFileSync(join(dir, 'snapshots', snapshotName(first - 1)), 'a snapshot at the revision before the log');
  writeFileSync(join(dir, 'snapshots', snapshotName(first + 10)), 'a later snapshot');
  const served = capture();
  t.is(logVerify({ dataDir: dir, replay: true }, served.output), exitOk, served.lines.join('\n'));
  t.regex(served.lines.join('\n'), new RegExp(`replay: skipped: the log starts at revision ${first}; replaying it ` +
    'needs the snapshot loader'));

  const below = capture();
  t.is(logTruncate({ dataDir: dir, after: first - 2 }, below.output), exitUsage);
  t.regex(below.lines.join('\n'), new RegExp(`--after takes ${first - 1}\\.\\.`));
  rmSync(join(dir, 'snapshots', snapshotName(first - 1)));
  const unkept = capture();
  t.is(logEdit({ dataDir: dir, revision: first + 5, drop: true }, unkept.output), exitUsage);
  t.regex(unkept.lines.join('\n'), new RegExp(`--revision takes ${first + 11}\\.\\.`));
  const cut = capture();
  t.is(logTruncate({ dataDir: dir, after: first + 20 }, cut.output), exitOk, cut.lines.join('\n'));
  t.deepEqual(readdirSync(join(dir, 'snapshots')), [snapshotName(first + 10)]);
});
