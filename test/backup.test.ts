/**
 * Backups: on request and periodic, named by UTC time, kept to a count; offline restore into an empty data
 * directory; Aurora's staged recovery: stage, query the staged copy, unload, commit (one logged restore entry,
 * after which a reopen, a restart or a replay of the log all end in the backup's state).
 */
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { commitOk, tempDir as tempDirOf } from './support/durable.js';
import { decodeQueryResponse } from '../core/codec.js';
import { runSync as run } from '../cli/commands.js';
import { recoverDataDirectory } from '../cli/offline-recovery.js';
import { Engine } from '../daemon/engine.js';
import { backupName, restoreBackupOffline } from '../workers/snapshot/backups.js';
import { f, jobConfig, make, op, task, taskQuery, transition, txn, upsert } from './support/build.js';

const config = jobConfig('www', 'prod', 'hello', { data: 'b'.repeat(200) });
const quiet = { snapshot: { everyMs: 0, logBytes: 0 }, backup: { everyMs: 0 } };

const tempDir = (t: { teardown: (fn: () => void) => void }): string => tempDirOf(t, 'backup');

async function tasksOf(answer: Promise<Uint8Array>): Promise<string> {
  const response = decodeQueryResponse(await answer);
  const tasks = (response.result as f.TasksResultT).tasks.map((x) => [String(x.assignedTask!.taskId), x.status,
    String(x.modRevision), x.taskEvents.length]);
  return JSON.stringify(tasks);
}

const allTasks = () => taskQuery({ configDetail: f.ConfigDetail.HASH_ONLY });

/** State A: 150 tasks, every fifth ASSIGNED, a quota. */
async function stateA(engine: Engine): Promise<void> {
  await commitOk(engine, txn([upsert(Array.from({ length: 150 }, (_, i) => task(`a-${i}`, config, i)))]));
  for (let i = 0; i < 150; i += 5) await commitOk(engine, txn([transition(`a-${i}`, f.ScheduleStatus.ASSIGNED)]));
  await commitOk(engine, txn([op(f.Op.SaveQuota, make(f.SaveQuotaT, { role: 'www', quota: make(f.ResourceAggregateT,
    { resources: [make(f.ResourceT, { type: f.ResourceType.NUM_CPUS, numCpus: 10 })] }) }))]));
}

/** State B from A: 50 tasks deleted, 60 new ones, transitions. */
async function stateB(engine: Engine): Promise<void> {
  await commitOk(engine, txn([op(f.Op.DeleteTasks, make(f.DeleteTasksT, {
    taskIds: Array.from({ length: 50 }, (_, i) => `a-${i + 100}`) }))]));
  await commitOk(engine, txn([upsert(Array.from({ length: 60 }, (_, i) => task(`b-${i}`, config, 200 + i)))]));
  for (let i = 1; i < 100; i += 7) await commitOk(engine, txn([transition(`a-${i}`, f.ScheduleStatus.ASSIGNED)]));
}

test('backup names follow Aurora (UTC minute), a second one in the same minute adds seconds', (t) => {
  const dir = tempDir(t);
  const at = new Date(Date.UTC(2026, 10, 25, 23, 5, 42));
  t.is(backupName(dir, at), 'scheduler-backup-2026-11-25-23-05.bak');
  writeFileSync(join(dir, 'scheduler-backup-2026-11-25-23-05.bak'), '');
  t.is(backupName(dir, at), 'scheduler-backup-2026-11-25-23-05-42.bak');
});

test('backup now, list, retention; periodic backups; offline restore into an empty data directory', async (t) => {
  const dir = tempDir(t);
  const engine = await Engine.open({ dataDir: join(dir, 'live'), readerThreads: 1, ...quiet,
    backup: { everyMs: 0, keep: 2 } });
  t.teardown(() => engine.close());
  await stateA(engine);
  const expected = await tasksOf(engine.query(allTasks()));
  const first = await engine.backup();
  t.regex(first.path, /scheduler-backup-\d{4}-\d\d-\d\d-\d\d-\d\d(-\d\d)?\.bak$/);
  t.is(first.revision, engine.stats().revision);
  await commitOk(engine, txn([transition('a-1', f.ScheduleStatus.ASSIGNED)]));
  await engine.backup();
  await engine.backup();
  const list = engine.listBackups();
  t.is(list.length, 2, 'keep 2: the oldest was deleted');
  t.true(list[0]!.revision >= list[1]!.revision);
  await engine.close();

  // Offline restore of the first backup (copied before it was pruned? no: restore the oldest kept one instead).
  const kept = list.at(-1)!;
  const restored = restoreBackupOffline(kept.path, join(dir, 'restored'));
  t.is(restored.revision, kept.revision);
  const reopened = await Engine.open({ dataDir: join(dir, 'restored'), readerThreads: 1, ...quiet });
  try {
    t.is(reopened.stats().revision, kept.revision);
    t.not(await tasksOf(reopened.query(allTasks())), expected, 'the kept backups are after the a-1 transition');
    await commitOk(reopened, txn([transition('a-2', f.ScheduleStatus.ASSIGNED)]));
  } finally {
    await reopened.close();
  }
  t.throws(() => restoreBackupOffline(kept.path, join(dir, 'restored')), { message: /not empty/ });

  const periodic = await Engine.open({ dataDir: join(dir, 'periodic'), readerThreads: 1, snapshot: quiet.snapshot,
    backup: { everyMs: 150, keep: 48 } });
  await stateA(periodic);
  // Every 150 ms; polled with a generous bound, not a fixed wait: a busy machine may take its time.
  let taken = 0;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && taken < 2;) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    taken = (await periodic.writerStats()).backupsTaken!;
  }
  await periodic.close();
  t.true(taken >= 2, `periodic backups taken: ${taken}`);
});

test('staged recovery: stage, query the staged copy, unload, stage again, commit; reopen and replay agree', async (t) => {
  const dir = tempDir(t);
  const dataDir = join(dir, 'live');
  let engine = await Engine.open({ dataDir, readerThreads: 1, ...quiet });
  await stateA(engine);
  const a = await tasksOf(engine.query(allTasks()));
  const backup = await engine.backup();
  await stateB(engine);
  const b = await tasksOf(engine.query(allTasks()));
  const revisionB = engine.stats().revision;
  t.not(a, b);

  const name = engine.listBackups()[0]!.name;
  await t.throwsAsync(engine.stageBackup('scheduler-backup-1999-01-01-00-00.bak'), { message: /no backup/ });
  await t.throwsAsync(engine.commitStaged(), { message: /no backup is staged/ });
  const staged = await engine.stageBackup(name);
  t.is(staged.revision, backup.revision);
  t.is(await tasksOf(engine.queryStaged(allTasks())), a, 'the staged copy answers with the backup\'s state');
  t.is(await tasksOf(engine.query(allTasks())), b, 'the live state is untouched');
  await t.throwsAsync(engine.stageBackup(name), { message: /staged already/ });
  await engine.unstage();
  await t.throwsAsync(engine.queryStaged(allTasks()), { message: /no backup is staged/ });
  await engine.stageBackup(name);
  const committed = await engine.commitStaged();
  t.is(committed.revision, revisionB + 1, 'the restore is one logged entry at the next revision');

  engine = await Engine.open({ dataDir, readerThreads: 1, ...quiet });
  t.is(engine.stats().revision, revisionB + 1);
  t.is(await tasksOf(engine.query(allTasks())), a);
  const next = await commitOk(engine, txn([transition('a-3', f.ScheduleStatus.ASSIGNED)]));
  t.is(next.revision, BigInt(revisionB + 2));
  const afterRestore = await tasksOf(engine.query(allTasks()));
  await engine.close();

  // A standby (a copy of the data directory) replays the same log through the restore entry to the same state.
  cpSync(dataDir, join(dir, 'standby'), { recursive: true });
  rmSync(join(dir, 'standby', 'LOCK'), { force: true });
  const standby = await Engine.open({ dataDir: join(dir, 'standby'), readerThreads: 1, ...quiet });
  t.is(await tasksOf(standby.query(allTasks())), afterRestore);
  await standby.close();

  // The offline tools recover through the restore entry too.
  const offline = recoverDataDirectory(dataDir);
  t.is(offline.recovery.revision, revisionB + 2);
  t.is(offline.writer.stats().taskCount, 150);

  // The restore entry names its file by SHA-256: a changed file stops recovery loudly.
  const restores = readdirSync(join(dataDir, 'restores'));
  t.is(restores.length, 1);
  const path = join(dataDir, 'restores', restores[0]!);
  const bytes = readFileSync(path);
  bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 1;
  writeFileSync(path, bytes);
  await t.throwsAsync(Engine.open({ dataDir, readerThreads: 1, ...quiet }), { message: /SHA-256/ });
});

test('a damaged backup cannot be staged, and nothing stays staged', async (t) => {
  const dir = tempDir(t);
  const engine = await Engine.open({ dataDir: join(dir, 'live'), readerThreads: 1, ...quiet });
  await stateA(engine);
  const backup = await engine.backup();
  const bytes = readFileSync(backup.path);
  bytes[Math.floor(bytes.length / 2)] = bytes[Math.floor(bytes.length / 2)]! ^ 0x20;
  writeFileSync(backup.path, bytes);
  await t.throwsAsync(engine.stageBackup(engine.listBackups()[0]!.name), { message: /staging .* failed/ });
  await t.throwsAsync(engine.queryStaged(allTasks()), { message: /no backup is staged/ });
  await engine.close();
});

test('strata backup list and backup restore (offline), with bad arguments', async (t) => {
  const dir = tempDir(t);
  const engine = await Engine.open({ dataDir: join(dir, 'live'), readerThreads: 1, ...quiet });
  await stateA(engine);
  const backup = await engine.backup();
  await engine.close();
  const lines: string[] = [];
  const io = { write: (line: string) => lines.push(line), writeError: (line: string) => lines.push(line) };
  t.is(run(['backup', 'list', '--data-dir', join(dir, 'live')], io), 0);
  t.regex(lines[0]!, new RegExp(`scheduler-backup-.* revision ${backup.revision} .* 150 tasks`));
  lines.length = 0;
  t.is(run(['backup', 'list', '--data-dir', join(dir, 'live'), '--json'], io), 0);
  t.is(JSON.parse(lines[0]!).revision, backup.revision);
  t.is(run(['backup', 'restore', backup.path, '--data-dir', join(dir, 'new')], io), 0);
  t.is(run(['backup', 'restore', backup.path, '--data-dir', join(dir, 'new')], io), 1, 'not empty any more');
  t.is(run(['backup', 'restore', '--data-dir', join(dir, 'other')], io), 2, 'no FILE');
  t.is(run(['backup', 'restore', join(dir, 'missing.bak'), '--data-dir', join(dir, 'other')], io), 1);
  const reopened = await Engine.open({ dataDir: join(dir, 'new'), readerThreads: 1, ...quiet });
  t.is(reopened.stats().revision, backup.revision);
  t.is(reopened.stats().taskCount, 150);
  await reopened.close();
});

test('a backup newer than the store cannot be committed (records would be newer than the revision)', async (t) => {
  const dir = tempDir(t);
  const source = await Engine.open({ dataDir: join(dir, 'a'), readerThreads: 1, ...quiet });
  await stateA(source);
  const backup = await source.backup();
  await source.close();
  const engine = await Engine.open({ dataDir: join(dir, 'b'), readerThreads: 1, ...quiet });
  t.teardown(() => engine.close());
  await commitOk(engine, txn([upsert([task('x', config, 0)])]));
  await engine.stageBackup(backup.path);
  await t.throwsAsync(engine.commitStaged(), { message: /not older than this store/ });
  t.is(engine.stats().revision, 1);
});
