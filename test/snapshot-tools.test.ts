/**
 * The snapshot commands of the strata CLI (cli/snapshot-create.ts, cli/snapshot-tools.ts, through
 * cli/commands.ts and the binary) on data directories written by the Engine with 64 KiB segments and automatic
 * snapshots off. Owner: the test runner (ava worker thread).
 * Invariants checked: `snapshot create` writes a snapshot of exactly the recovered revision, from which the
 * Engine then recovers the same state (every task, cron job, job update and quota) with a short replay; it keeps
 * the newest --keep snapshots and removes the log segments wholly before the oldest kept one, never the newest;
 * it refuses a held data directory (exit 3), a corrupt log and a damaged newest snapshot (exit 1, file and
 * offset) and then changes nothing. `snapshot dump` prints a file, the newest or --revision's snapshot of a data
 * directory, as text or JSON lines, exits 1 naming the file and offset of damage and 2 on bad arguments.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runSync as run } from '../cli/commands.js';
import { exitFailure, exitLocked, exitOk, exitUsage } from '../cli/tool-support.js';
import { decodeQueryResponse, decodeTransactionResult } from '../core/codec.js';
import { headerBytes } from '../core/files.js';
import { listSegments } from '../core/wal.js';
import { Engine } from '../daemon/engine.js';
import { f, jobConfig, make, op, query, task, taskQuery, transition, txn, upsert } from './support/build.js';

const segmentBytes = 64 * 1024;
const noAutomaticSnapshots = { everyMs: 0, logBytes: 0 };
const mainFile = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const config = jobConfig('www', 'prod', 'api', { data: `{"pad":"${'p'.repeat(300)}"}` });
const scratch = mkdtempSync(join(tmpdir(), 'strata-snapshot-tools-'));

test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

interface Ran { code: number; out: string[]; err: string[] }

function strata(...argv: string[]): Ran {
  const out: string[] = [];
  const err: string[] = [];
  const code = run(argv, { write: (line) => out.push(line), writeError: (line) => err.push(line) });
  return { code, out, err };
}

async function commitOk(engine: Engine, bytes: Uint8Array): Promise<void> {
  const result = decodeTransactionResult(await engine.commit(bytes));
  if (result.error !== null) throw new Error(`commit failed: ${String(result.error.message)}`);
}

const pad = 'm'.repeat(300); // a long event message: a long log (many 64 KiB segments) from few tasks
const batchTransactions = 25; // committed in one tick: one log group (a group never straddles segments)

async function commitBatches(engine: Engine, transactions: Uint8Array[]): Promise<void> {
  for (let i = 0; i < transactions.length; i += batchTransactions) {
    await Promise.all(transactions.slice(i, i + batchTransactions).map((bytes) => commitOk(engine, bytes)));
  }
}

/** Tasks first..last-1 (a transaction each), then each ASSIGNED (every third with a key), a quota, a cron job. */
async function load(engine: Engine, first: number, last: number): Promise<void> {
  const upserts: Uint8Array[] = [];
  const transitions: Uint8Array[] = [];
  for (let i = first; i < last; i++) {
    upserts.push(txn([upsert([task(`t-${i}`, config, i)])]));
    transitions.push(txn([transition(`t-${i}`, f.ScheduleStatus.ASSIGNED, { message: `m${i} ${pad}` })],
      i % 3 === 0 ? { idempotency: make(f.IdempotencyKeyT, { clientId: 'loader', sequence: BigInt(i) }) } : {}));
  }
  await commitBatches(engine, upserts);
  await commitBatches(engine, transitions);
  await commitOk(engine, txn([op(f.Op.SaveQuota, make(f.SaveQuotaT, { role: 'www', quota: make(f.ResourceAggregateT,
    { resources: [make(f.ResourceT, { type: f.ResourceType.NUM_CPUS, numCpus: last })] }) })),
  op(f.Op.SaveCronJob, make(f.SaveCronJobT, { job: make(f.JobConfigurationT, {
    key: make(f.JobKeyT, { role: 'www', environment: 'prod', name: `cron-${last}` }), cronSchedule: '*/5 * * * *',
    instanceCount: 1, taskConfig: jobConfig('www', 'prod', `cron-${last}`) }) }))]));
}

/** Everything the test committed, on one revision: every task (full configs), cron jobs, updates, the quota. */
async function everything(engine: Engine): Promise<string> {
  const responses = await engine.queryBatch([
    taskQuery({ configDetail: f.ConfigDetail.FULL }),
    query(f.Query.CronJobsQuery, make(f.CronJobsQueryT, {})),
    query(f.Query.JobUpdateQuery, make(f.JobUpdateQueryT, {})),
    query(f.Query.QuotaQuery, make(f.QuotaQueryT, { role: 'www' })),
  ]);
  const decoded = responses.map((bytes) => decodeQueryResponse(bytes));
  checkResponses(decoded);
  return JSON.stringify(decoded, (_, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
}

function checkResponses(responses: f.QueryResponseT[]): void {
  for (const response of responses) if (response.error !== null) throw new Error(String(response.error.message));
}

function open(dir: string): Promise<Engine> {
  return Engine.open({ dataDir: dir, segmentBytes, readerThreads: 1, snapshot: noAutomaticSnapshots });
}

/** A data directory with a long log (many segments) and no snapshot; its final state and revision. */
interface Base { dir: string; state: string; revision: number }
let base: Base;

test.before(async () => {
  const dir = join(scratch, 'base');
  const engine = await open(dir);
  try {
    await load(engine, 0, 900);
    base = { dir, state: await everything(engine), revision: engine.stats().revision };
  } finally {
    await engine.close();
  }
});

let copies = 0;
function copyBase(): string {
  const dir = join(scratch, `copy-${copies++}`);
  cpSync(base.dir, dir, { recursive: true });
  return dir;
}

const snapshotsIn = (dir: string): string[] =>
  existsSync(join(dir, 'snapshots')) ? readdirSync(join(dir, 'snapshots')).sort() : [];
const snapshotName = (revision: number): string => `snapshot-${revision.toString(16).padStart(16, '0')}.snap`;

test('the base data directory has a long log and no snapshot', (t) => {
  const segments = listSegments(join(base.dir, 'log'));
  t.true(segments.length >= 6, `${segments.length} segments`);
  t.is(segments[0]!.firstRevision, 1);
  t.deepEqual(snapshotsIn(base.dir), []);
});

test('create: a snapshot of the recovered revision; the engine recovers the same state from it, the log cut short',
  async (t) => {
    const dir = copyBase();
    const segmentsBefore = listSegments(join(dir, 'log'));
    const created = strata('snapshot', 'create', '--data-dir', dir);
    t.is(created.code, exitOk, [...created.out, ...created.err].join('\n'));
    const text = created.out.join('\n');
    t.regex(text, new RegExp(`recovered revision ${base.revision} in \\d+ ms: no snapshot \\+ ${base.revision} ` +
      'transaction\\(s\\) replayed from the log; 900 tasks'));
    t.regex(text, new RegExp(`wrote \\S+${snapshotName(base.revision)}: revision ${base.revision}, \\d+ bytes`));
    const segmentsAfter = listSegments(join(dir, 'log'));
    // Every segment but the newest is wholly at or before the snapshot's revision.
    t.deepEqual(segmentsAfter, segmentsBefore.slice(-1), 'only the newest segment is left');
    t.regex(text, new RegExp(`removed ${segmentsBefore.length - 1} log segment\\(s\\) wholly at or before revision ` +
      `${base.revision}: ${segmentsBefore[0]!.name} `));
    t.deepEqual(snapshotsIn(dir), [snapshotName(base.revision)]);
    t.false(existsSync(join(dir, 'LOCK')), 'the lock was released');

    const engine = await open(dir);
    t.is(engine.recovery?.snapshot?.revision, base.revision);
    t.is(engine.recovery?.replayed, 0, 'nothing to replay after the snapshot');
    t.is(engine.stats().revision, base.revision);
    t.is(await everything(engine), base.state);
    // The idempotency window came with the snapshot: a retry of a remembered key is a duplicate.
    const retry = decodeTransactionResult(await engine.commit(txn([transition('t-0', f.ScheduleStatus.ASSIGNED)],
      { idempotency: make(f.IdempotencyKeyT, { clientId: 'loader', sequence: 0n }) })));
    t.true(retry.duplicate);
    await engine.close();
  });

test('create after a daemon snapshot: recovery starts from it, --keep 1 removes it, a second create writes nothing',
  async (t) => {
    const dir = join(scratch, `daemon-${copies++}`);
    let engine = await open(dir);
    await load(engine, 0, 300);
    const daemonSnapshot = await engine.snapshot();
    await load(engine, 300, 600);
    const revision = engine.stats().revision;
    const state = await everything(engine);
    await engine.close();

    const created = strata('snapshot', 'create', '--data-dir', dir, '--keep', '1');
    t.is(created.code, exitOk, [...created.out, ...created.err].join('\n'));
    const text = created.out.join('\n');
    t.regex(text, new RegExp(`recovered revision ${revision} in \\d+ ms: snapshot \\S+${snapshotName(
      daemonSnapshot.revision)} \\+ ${revision - daemonSnapshot.revision} transaction\\(s\\) replayed`));
    t.regex(text, new RegExp(`removed snapshot \\S+${snapshotName(daemonSnapshot.revision)} \\(older than the ` +
      'newest 1\\)'));
    t.deepEqual(snapshotsIn(dir), [snapshotName(revision)]);
    t.is(listSegments(join(dir, 'log')).length, 1);

    const again = strata('snapshot', 'create', '--data-dir', dir);
    t.is(again.code, exitOk);
    t.regex(again.out.join('\n'), new RegExp(`nothing to snapshot: the newest snapshot is already at revision ` +
      `${revision}`));
    t.regex(again.out.at(-1)!, /no snapshot written; 0 snapshot\(s\) and 0 log segment\(s\) removed/);

    // Commits after the snapshot: the next start replays only them; a new create keeps two snapshots.
    engine = await open(dir);
    t.is(engine.recovery?.replayed, 0);
    t.is(await everything(engine), state);
    await load(engine, 600, 650);
    const later = await everything(engine);
    const laterRevision = engine.stats().revision;
    await engine.close();
    t.is(strata('snapshot', 'create', '--data-dir', dir).code, exitOk);
    t.deepEqual(snapshotsIn(dir), [snapshotName(revision), snapshotName(laterRevision)]);
    engine = await open(dir);
    t.is(engine.recovery?.snapshot?.revision, laterRevision);
    t.is(await everything(engine), later);
    await engine.close();
  });

test('create refuses a data directory held by a live engine (exit 3) and changes nothing', async (t) => {
  const dir = copyBase();
  const segments = listSegments(join(dir, 'log'));
  const engine = await open(dir);
  try {
    const refused = strata('snapshot', 'create', '--data-dir', dir);
    t.is(refused.code, exitLocked);
    t.regex(refused.err.join('\n'), /is in use by stratad \(pid \d+/);
    const child = spawnSync(process.execPath, [mainFile, 'snapshot', 'create', '--data-dir', dir],
      { encoding: 'utf8' });
    t.is(child.status, exitLocked, child.stderr);
  } finally {
    await engine.close();
  }
  t.deepEqual(snapshotsIn(dir), []);
  t.deepEqual(listSegments(join(dir, 'log')), segments);
});

test('create refuses a corrupt log and a damaged newest snapshot (exit 1, file and offset) and removes nothing',
  (t) => {
    const dir = copyBase();
    const segments = listSegments(join(dir, 'log'));
    const victim = join(dir, 'log', segments[1]!.name);
    const bytes = readFileSync(victim);
    const flipped = Buffer.from(bytes);
    flipped[headerBytes + 40] = flipped[headerBytes + 40]! ^ 0x10;
    writeFileSync(victim, flipped);
    const corrupt = strata('snapshot', 'create', '--data-dir', dir);
    t.is(corrupt.code, exitFailure);
    t.regex(corrupt.err.join('\n'), new RegExp(`${segments[1]!.name} at offset ${headerBytes}: CRC mismatch`));
    t.deepEqual(snapshotsIn(dir), []);
    t.deepEqual(listSegments(join(dir, 'log')), segments);
    writeFileSync(victim, bytes);

    t.is(strata('snapshot', 'create', '--data-dir', dir, '--keep', '3').code, exitOk);
    const [name] = snapshotsIn(dir);
    const path = join(dir, 'snapshots', name!);
    const snapshot = readFileSync(path);
    snapshot[snapshot.length >>> 1] = snapshot[snapshot.length >>> 1]! ^ 0x40;
    writeFileSync(path, snapshot);
    const segmentsNow = listSegments(join(dir, 'log'));
    const damaged = strata('snapshot', 'create', '--data-dir', dir);
    t.is(damaged.code, exitFailure);
    t.regex(damaged.err.join('\n'), new RegExp(`${name!} at offset \\d+: frame \\d+: checksum mismatch .*the newest ` +
      'snapshot is damaged'));
    t.deepEqual(snapshotsIn(dir), [name!], 'not renamed, not removed');
    t.deepEqual(listSegments(join(dir, 'log')), segmentsNow);
  });

test('create: --keep must be a count >= 1 (exit 2)', (t) => {
  for (const keep of ['0', 'two', '1.5']) {
    const ran = strata('snapshot', 'create', '--data-dir', base.dir, '--keep', keep);
    t.is(ran.code, exitUsage, keep);
    t.regex(ran.err.join('\n'), /--keep takes a count/);
  }
  t.deepEqual(snapshotsIn(base.dir), []);
});

test('dump: a file, the newest or --revision\'s snapshot of a data directory, text and JSON lines', async (t) => {
  const dir = join(scratch, `dump-${copies++}`);
  const engine = await open(dir);
  await load(engine, 0, 30);
  const older = await engine.snapshot();
  await load(engine, 30, 40);
  const newer = await engine.snapshot();
  const byFile = strata('snapshot', 'dump', older.path);
  t.is(byFile.code, exitOk, byFile.err.join('\n'));
  t.regex(byFile.out[0]!, new RegExp(`^header STRATSNP version 1 revision ${older.revision} `));
  t.regex(byFile.out.at(-1)!, new RegExp(`^end revision ${older.revision} term 0 chunks 1 bytes ${older.bytes} ` +
    'configs 2 tasks 30 '));
  t.is(byFile.out.filter((line) => line.startsWith('task ')).length, 30);
  // No lock: the snapshots of a running engine can be dumped.
  const newest = strata('snapshot', 'dump', '--data-dir', dir);
  t.is(newest.code, exitOk, newest.err.join('\n'));
  t.regex(newest.out.at(-1)!, new RegExp(`^end revision ${newer.revision} .* tasks 40 `));
  const chosen = strata('snapshot', 'dump', '--data-dir', dir, '--revision', String(older.revision), '--json');
  t.is(chosen.code, exitOk);
  const lines = chosen.out.map((line) => JSON.parse(line) as { kind: string; revision?: number });
  t.deepEqual([lines[0]!.kind, lines.at(-1)!.kind], ['header', 'end']);
  t.is(lines.at(-1)!.revision, older.revision);
  t.is(lines.filter((line) => line.kind === 'task').length, 30);
  await engine.close();
});

test('dump: a damaged file exits 1 naming the file and the offset; bad arguments exit 2', (t) => {
  const dir = copyBase();
  t.is(strata('snapshot', 'create', '--data-dir', dir).code, exitOk);
  const path = join(dir, 'snapshots', snapshotName(base.revision));
  const bytes = readFileSync(path);
  const frame = headerBytes + 16 + 4000; // inside the first chunk's payload
  bytes[frame] = bytes[frame]! ^ 0x01;
  const damaged = join(dir, 'damaged.snap');
  writeFileSync(damaged, bytes);
  const ran = strata('snapshot', 'dump', damaged);
  t.is(ran.code, exitFailure);
  t.regex(ran.err.join('\n'), new RegExp(`^strata: ${damaged} at offset ${headerBytes}: frame 0: checksum mismatch`));
  t.regex(ran.out[0]!, /^header STRATSNP/, 'the lines before the damage are printed');
  const header = Buffer.from(bytes.subarray(0, 100));
  writeFileSync(damaged, header);
  t.regex(strata('snapshot', 'dump', damaged).err.join('\n'), new RegExp(`${damaged} at offset 0: shorter than`));
  t.is(strata('snapshot', 'dump', join(dir, 'missing.snap')).code, exitFailure);
  t.is(strata('snapshot', 'dump', '--data-dir', join(scratch, 'nowhere')).code, exitFailure);

  const cases: [string[], RegExp][] = [
    [['snapshot', 'dump', path, '--data-dir', dir], /a FILE or --data-dir, not both/],
    [['snapshot', 'dump', path, path], /one FILE at most, not 2/],
    [['snapshot', 'dump', path, '--revision', '3'], /--revision goes with --data-dir/],
    [['snapshot', 'dump', '--data-dir', dir, '--revision', '3'],
      new RegExp(`--revision 3: no snapshot of that revision in \\S+ \\(there are: ${base.revision}\\)`)],
    [['snapshot', 'dump', '--data-dir', dir, '--revision', 'x'], /--revision takes a revision/],
    [['snapshot', 'bogus'], /unknown command 'snapshot bogus'/],
    [['snapshot', 'create', path], /Unexpected argument/],
  ];
  for (const [argv, message] of cases) {
    const bad = strata(...argv);
    t.is(bad.code, exitUsage, argv.join(' '));
    t.regex(bad.err.join('\n'), message, argv.join(' '));
  }
});

test('the strata binary: snapshot --help, dump and create --help, a dump', (t) => {
  const binary = (...args: string[]) => spawnSync(process.execPath, [mainFile, ...args], { encoding: 'utf8' });
  const help = binary('--help');
  t.is(help.status, exitOk);
  for (const name of ['snapshot dump', 'snapshot create']) t.true(help.stdout.includes(name), name);
  const group = binary('snapshot', '--help');
  t.is(group.status, exitOk);
  t.false(group.stdout.includes('log dump'));
  t.is(binary('snapshot', 'bogus').status, exitUsage); // a bare `strata snapshot` is the online command
  const dumpHelp = binary('snapshot', 'dump', '--help');
  t.is(dumpHelp.status, exitOk);
  t.regex(dumpHelp.stdout, /^usage: strata snapshot dump \[--data-dir DIR\] \[--revision REV\] \[--json\] \[FILE\]/);
  const createHelp = binary('snapshot', 'create', '--help');
  t.is(createHelp.status, exitOk);
  t.regex(createHelp.stdout, /^usage: strata snapshot create \[--data-dir DIR\] \[--keep N\]\n/);
  t.regex(createHelp.stdout, /3 {2}the data directory is in use/);
  const dir = copyBase();
  const created = binary('snapshot', 'create', '--data-dir', dir);
  t.is(created.status, exitOk, created.stderr);
  const dump = binary('snapshot', 'dump', join(dir, 'snapshots', snapshotName(base.revision)), '--json');
  t.is(dump.status, exitOk, dump.stderr);
  t.is(dump.stdout.trim().split('\n').filter((line) => JSON.parse(line).kind === 'task').length, 900);
});
