/**
 * Fault suite, issue 7 part 4b: ENOSPC and EIO injected (core/failpoints.ts) into a running stratad under a load of
 * concurrent clients over the network, each transaction with its idempotency key.
 * - The log (the group's write, its fdatasync before and after it ran, a segment cut): the daemon fail-stops (exit
 *   74, the error's code in its failure line); no client holds an acknowledgement the restart does not show; when
 *   the failed group's bytes reached the file (a failed sync), none of its transactions was acknowledged; the
 *   restart without the failpoint recovers; every transaction resent with its key resolves once.
 * - Snapshots and backups (every write, the fsync, the rename): not fail-stop (the log holds everything): the
 *   request fails with the code, the daemon logs it and goes on serving, no file (nor temporary) is left, and the
 *   next request installs one that a restart loads.
 * Which hit fails (the N of name=action@N) and where a segment ends vary over rounds from a printed seed.
 */
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { StrataClient } from '../../client/index.js';
import { Prng } from '../../core/prng.js';
import { scanLog, type LogGroupRecord } from '../../core/wal.js';
import { tempDir } from '../support/durable.js';
import { byMode, report } from './mode.js';
import { logLines, startQuiet, type Teardown } from './support/io-daemon.js';
import { checkRecovered, runLoad, type SentTransaction } from './support/io-load.js';

const seed = Number(process.env.STRATA_FAULTS_SEED ?? Date.now() % 1_000_000);
const exitIo = 74;
const clients = 12;
/** Per client, sequentially: at least this many groups, so any N below it is reached. */
const perClient = 40;
const hitMax = 30;

const logPoints = ['log.before-write', 'log.after-write', 'log.after-sync', 'log.segment-create'] as const;
const filePoints = ['snapshot.write', 'snapshot.sync', 'snapshot.before-rename', 'backup.write', 'backup.sync',
  'backup.before-rename'] as const;

const figures = {
  seed, logRounds: 0, fileRounds: 0, faultsInjected: {} as Record<string, number>, acknowledgedChecked: 0,
  resent: 0, presentUnacknowledged: 0, appliedOnResend: 0, snapshotsFailedThenWritten: 0, problems: [] as string[],
};

function count(kind: string): void {
  figures.faultsInjected[kind] = (figures.faultsInjected[kind] ?? 0) + 1;
}

/** The log's records after a stop: the last one is the failed group's when its bytes reached the file. */
function logRecords(dataDir: string): LogGroupRecord[] {
  const records: LogGroupRecord[] = [];
  scanLog(join(dataDir, 'log'), (record) => records.push(record));
  return records;
}

/** A history written cleanly, then the daemon stopped and its segment cut short (capacity = valid data + slack). */
async function shortSegment(t: Teardown, dataDir: string, slack: number): Promise<SentTransaction[]> {
  const daemon = await startQuiet(t, dataDir);
  const sent = await runLoad(daemon.url, 4, 10);
  if ((await daemon.stop()) !== 0) throw new Error('the clean daemon did not stop with 0');
  const scan = scanLog(join(dataDir, 'log'), () => undefined);
  const segment = scan.segments.at(-1)!;
  truncateSync(join(dataDir, 'log', segment.name), segment.validEnd + slack);
  return sent;
}

test.serial('log I/O errors under load: fail-stop (74), no acknowledgement of the failed group, clean recovery, resends resolve once', async (t) => {
  const rounds = byMode(4, 32);
  const random = new Prng(seed, 1);
  const scratch = tempDir(t, 'io-log');
  t.log(`seed ${seed} (STRATA_FAULTS_SEED), ${rounds} rounds`);
  for (let round = 0; round < rounds; round++) {
    const point = logPoints[round % logPoints.length]!;
    const code = (round + (round >> 2)) % 2 === 0 ? 'eio' : 'enospc';
    const dataDir = join(mkdtempSync(join(scratch, 'r')), 'data');
    let sent: SentTransaction[] = [];
    let failpoint: string;
    let firstSeq = 0;
    if (point === 'log.segment-create') {
      const slack = random.int(32 * 1024);
      sent = await shortSegment(t, dataDir, slack);
      firstSeq = 10;
      failpoint = `${point}=${code}@1`;
    } else {
      failpoint = `${point}=${code}@${1 + random.int(hitMax)}`;
    }
    const what = `round ${round}: ${failpoint}`;
    const daemon = await startQuiet(t, dataDir, failpoint);
    sent = sent.concat(await runLoad(daemon.url, clients, perClient, firstSeq));
    const exitCode = await daemon.exited;
    count(`${point}=${code}`);
    t.is(exitCode, exitIo, `${what}: exit code`);
    const failure = logLines(daemon, 'stratad failed');
    t.is(failure.length, 1, `${what}: one failure line`);
    t.regex(String(failure[0]?.error), new RegExp(code.toUpperCase()), `${what}: the failure line names the code`);
    t.true(sent.some((e) => e.outcome === 'failed'), `${what}: some client saw the failure`);
    const records = logRecords(dataDir);
    const ackedMax = Math.max(0, ...sent.filter((e) => e.outcome === 'acked').map((e) => e.revision));
    if (point === 'log.after-write' || point === 'log.after-sync') {
      // The failed group's record is in the file (its sync failed, or was reported failed): none of it acknowledged.
      const failed = records.at(-1)!;
      t.true(ackedMax < failed.firstRevision, `${what}: acknowledged up to ${ackedMax}, the failed group starts at ${failed.firstRevision}`);
    }
    const restarted = await startQuiet(t, dataDir);
    const check = await checkRecovered(restarted.url, sent);
    t.deepEqual(check.problems, [], what);
    figures.problems.push(...check.problems.map((p) => `${what}: ${p}`));
    figures.acknowledgedChecked += check.acked;
    figures.resent += check.resent;
    figures.presentUnacknowledged += check.presentUnacked;
    figures.appliedOnResend += check.appliedOnResend;
    t.is(await restarted.stop(), 0, `${what}: the restarted daemon stops cleanly`);
    figures.logRounds++;
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/** The snapshot or backup files in `dir` (temporaries included); none when the directory does not exist. */
function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => statSync(join(dir, name)).isFile());
  } catch {
    return [];
  }
}

test.serial('snapshot and backup I/O errors: not fail-stop, logged, nothing installed, the next one succeeds', async (t) => {
  const rounds = byMode(filePoints.length, 4 * filePoints.length);
  const random = new Prng(seed, 2);
  const scratch = tempDir(t, 'io-file');
  for (let round = 0; round < rounds; round++) {
    const point = filePoints[round % filePoints.length]!;
    const kind = point.startsWith('backup') ? 'backup' : 'snapshot';
    const code = (round + Math.floor(round / filePoints.length)) % 2 === 0 ? 'eio' : 'enospc';
    // A small store's file: the header, one chunk, the end frame.
    const failpoint = `${point}=${code}@${point.endsWith('.write') ? 1 + random.int(3) : 1}`;
    const what = `round ${round}: ${failpoint}`;
    const dataDir = join(mkdtempSync(join(scratch, 'r')), 'data');
    const directory = join(dataDir, kind === 'backup' ? 'backups' : 'snapshots');
    const daemon = await startQuiet(t, dataDir, failpoint);
    const sent = await runLoad(daemon.url, 6, 20);
    const admin = await StrataClient.connect({ url: daemon.url, reconnect: false, requestTimeoutMs: 120_000 });
    // The request goes while more clients commit: the writer must not wait for the snapshot worker, nor fail.
    const during = runLoad(daemon.url, 6, 30, 20);
    const refused = await (kind === 'backup' ? admin.backup() : admin.snapshot()).then(() => null, (error: unknown) => error);
    count(`${point}=${code}`);
    t.truthy(refused, `${what}: the request fails`);
    t.regex(String(refused), new RegExp(code.toUpperCase()), `${what}: the answer names the code`);
    sent.push(...await during);
    t.is(daemon.child.exitCode, null, `${what}: the daemon keeps running`);
    t.true(sent.every((e) => e.outcome === 'acked'), `${what}: every commit acknowledged around the failure`);
    const logged = logLines(daemon, `${kind} failed`);
    t.is(logged.length, 1, `${what}: one '${kind} failed' line`);
    t.regex(JSON.stringify(logged[0] ?? {}), new RegExp(code.toUpperCase()), `${what}: the line names the code`);
    t.deepEqual(filesIn(directory), [], `${what}: nothing installed, no temporary left`);
    const written = await (kind === 'backup' ? admin.backup() : admin.snapshot());
    admin.close();
    const name = String(written.path).split('/').pop()!;
    t.deepEqual(filesIn(directory), [name], `${what}: the next ${kind} is installed, alone`);
    await daemon.kill();
    const restarted = await startQuiet(t, dataDir);
    if (kind === 'snapshot') {
      const ready = logLines(restarted, 'stratad ready')[0] as { recovery?: { snapshot?: { revision?: number } } };
      t.is(ready.recovery?.snapshot?.revision, Number(written.revision), `${what}: the restart loads the snapshot written after the failure`);
    }
    const check = await checkRecovered(restarted.url, sent);
    t.deepEqual(check.problems, [], what);
    figures.problems.push(...check.problems.map((p) => `${what}: ${p}`));
    figures.acknowledgedChecked += check.acked;
    figures.resent += check.resent;
    figures.snapshotsFailedThenWritten++;
    t.is(await restarted.stop(), 0);
    figures.fileRounds++;
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test.after.always('report', (t) => {
  t.log(report('io-errors', figures));
});
