/**
 * Fault suite, issue 7 part 4c: damaged files under a real stratad, after a history of acknowledged writes (several
 * clients over the network, a snapshot, a backup, a second snapshot, more writes; then SIGKILL). Each case damages
 * a copy of that data directory and starts a daemon on it. What the design says (DESIGN.md "Log, snapshots,
 * recovery", docs/formats.md "the torn-tail rule", docs/operations.md) is what is checked:
 * - a torn tail (the newest segment cut inside its last records) is cut, logged, and exactly the acknowledged
 *   prefix before it is served; `strata log verify` calls it a torn tail (exit 4);
 * - a bit flip in a record before the tail stops the start (exit 65) naming the file and the record's offset, and
 *   `strata log verify` agrees (exit 1); a flip in the last record is cut or refused by the torn-tail rule, and
 *   the daemon and verify agree on which; a flip in a record's padding (no CRC covers it, no reader uses it)
 *   changes nothing;
 * - a damaged newest snapshot is set aside (`.broken`, named in the ready line) and the next older one plus the log
 *   serve the whole state; both damaged: the log alone;
 * - a damaged backup is refused by the online stage, the live store untouched; `strata backup restore` refuses it;
 * - zero-length, garbage and truncated snapshot and segment files put in the directory.
 * Never silently wrong data: whenever a daemon starts, the state it serves is compared whole with the expected one.
 */
import test, { type ExecutionContext } from 'ava';
import { readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, existsSync, copyFileSync, mkdtempSync } from 'node:fs';
import { basename, join } from 'node:path';
import { StrataClient } from '../../client/index.js';
import { Prng } from '../../core/prng.js';
import { snapshotFileName } from '../../core/snapshot-format.js';
import { recordHeaderBytes, segmentName, type LogGroupRecord } from '../../core/wal.js';
import { tempDir } from '../support/durable.js';
import { byMode, report } from './mode.js';
import { buildBase, copyBase, flipBit, inCopy, openCase, type Base, type Outcome } from './support/corrupt-files.js';
import { startQuiet, strata } from './support/io-daemon.js';
import { expectedAt, servedState, stateDifferences } from './support/io-load.js';

const seed = Number(process.env.STRATA_FAULTS_SEED ?? Date.now() % 1_000_000);
const exitCorrupt = 65;
const verifyCorrupt = 1;
const verifyTorn = 4;

const figures = {
  seed, cases: 0, acknowledgedChecked: 0, filesCorrupted: {} as Record<string, number>,
  handled: {} as Record<string, number>, problems: [] as string[],
};

function tally(kind: string, how: string): void {
  figures.filesCorrupted[kind] = (figures.filesCorrupted[kind] ?? 0) + 1;
  figures.handled[`${kind}: ${how}`] = (figures.handled[`${kind}: ${how}`] ?? 0) + 1;
  figures.cases++;
}

let base: Base;
let scratch: string;
const cleanup: (() => unknown)[] = [];

test.before(async () => {
  scratch = mkdtempSync(join((await import('node:os')).tmpdir(), 'strata-corrupt-'));
  base = await buildBase({ teardown: (fn) => cleanup.push(fn) }, scratch, 6, byMode(12, 20));
});

test.after.always(async (t) => {
  for (const fn of cleanup) await fn();
  rmSync(scratch, { recursive: true, force: true });
  t.log(report('corrupt-files', figures));
});

/** Checks a started daemon served exactly the state at `revision`; counts the acknowledged writes checked. */
function servesExactly(t: ExecutionContext, outcome: Outcome, revision: number, what: string): void {
  if (outcome.kind !== 'started') {
    t.deepEqual(outcome, { kind: 'started' }, `${what}: the daemon should have started`);
    return;
  }
  t.is(outcome.revision, revision, `${what}: the revision served`);
  const differences = stateDifferences(outcome.state, expectedAt(base.sent, revision));
  t.deepEqual(differences, [], `${what}: the state served`);
  if (differences.length > 0) figures.problems.push(`${what}: ${differences.join('; ')}`);
  figures.acknowledgedChecked += base.sent.filter((e) => e.revision <= revision).length;
}

function refusedNaming(t: ExecutionContext, outcome: Outcome, file: string, offset: number | null, what: string): void {
  if (outcome.kind !== 'refused') {
    t.is(String(outcome.kind), 'refused', `${what}: the daemon should have refused to start`);
    return;
  }
  t.is(outcome.exitCode, exitCorrupt, `${what}: exit code (${outcome.output.slice(0, 300)})`);
  t.true(outcome.output.includes(basename(file)), `${what}: the message names the file: ${outcome.output.slice(0, 300)}`);
  if (offset !== null) t.true(outcome.output.includes(`at offset ${offset}`), `${what}: the message names offset ${offset}: ${outcome.output.slice(0, 300)}`);
  t.true(outcome.output.includes('strata log'), `${what}: the message says which tool to use`);
}

const segmentOf = (copy: string): string => inCopy(base, copy, base.segment);
const lastRecord = (): LogGroupRecord => base.records.at(-1)!;

test.serial('torn tail: the newest segment cut inside its last records is cut at start, logged, and the durable prefix served exactly', async (t) => {
  const random = new Prng(seed, 1);
  const cases = byMode(3, 24);
  for (let i = 0; i < cases; i++) {
    const record = base.records[base.records.length - 1 - random.int(Math.min(3, base.records.length))]!;
    const cut = record.offset + 1 + random.int(record.end - record.offset - 1);
    const what = `torn tail at ${cut} (record at ${record.offset}, revisions ${record.firstRevision}..${record.lastRevision})`;
    const copy = copyBase(base, scratch);
    truncateSync(segmentOf(copy), cut);
    const verify = await strata(['log', 'verify', '--data-dir', copy]);
    const headerWhole = cut - record.offset >= recordHeaderBytes;
    if (headerWhole) t.is(verify.exitCode, verifyTorn, `${what}: verify calls it a torn tail: ${verify.output}`);
    const outcome = await openCase(t, copy);
    servesExactly(t, outcome, record.firstRevision - 1, what);
    if (outcome.kind === 'started' && headerWhole) {
      t.is(outcome.recovery.torn?.offset, record.offset, `${what}: the ready line reports the cut`);
      t.true(existsSync(`${segmentOf(copy)}.torn-${record.offset}`), `${what}: the cut bytes are kept`);
    }
    tally('segment torn tail', outcome.kind === 'started' ? 'cut' : `refused ${outcome.exitCode}`);
    rmSync(join(copy, '..'), { recursive: true, force: true });
  }
});

/** Where a flip lands in a record: its header and payload (CRC-covered), or its padding (nothing reads it). */
function inPadding(record: LogGroupRecord, offset: number): boolean {
  return offset >= record.offset + recordHeaderBytes + record.payload.length;
}

test.serial('bit flips before the tail: refused (65) naming the file and offset, strata log verify agrees; padding flips change nothing', async (t) => {
  const random = new Prng(seed, 2);
  const cases = byMode(3, 40);
  for (let i = 0; i < cases; i++) {
    const copy = copyBase(base, scratch);
    const segment = segmentOf(copy);
    // One case in eight hits the segment's header; the others a record with records after it.
    const header = i % 8 === 7;
    const record = header ? null : base.records[random.int(base.records.length - 1)]!;
    const offset = record === null ? random.int(128) : record.offset + random.int(record.end - record.offset);
    const what = `flip at ${offset} bit ${i % 8} (${record === null ? 'segment header' : `record at ${record.offset}`})`;
    flipBit(segment, offset, i % 8);
    const verify = await strata(['log', 'verify', '--data-dir', copy]);
    const outcome = await openCase(t, copy);
    if (record !== null && inPadding(record, offset)) {
      t.is(verify.exitCode, 0, `${what}: verify ignores padding: ${verify.output}`);
      servesExactly(t, outcome, base.lastRevision, what);
      tally('segment flip in padding', outcome.kind === 'started' ? 'ignored' : `refused ${outcome.exitCode}`);
    } else {
      t.is(verify.exitCode, verifyCorrupt, `${what}: verify finds corruption: ${verify.output}`);
      if (record !== null) t.true(verify.output.includes(`at offset ${record.offset}`), `${what}: verify names the record: ${verify.output}`);
      refusedNaming(t, outcome, segment, record?.offset ?? null, what);
      tally('segment flip before the tail', outcome.kind === 'refused' ? `refused ${outcome.exitCode}` : 'started');
    }
    rmSync(join(copy, '..'), { recursive: true, force: true });
  }
});

test.serial('bit flips in the last record: cut or refused as the torn-tail rule says, daemon and verify agree, never wrong data', async (t) => {
  const random = new Prng(seed, 3);
  const cases = byMode(2, 16);
  const record = lastRecord();
  for (let i = 0; i < cases; i++) {
    const copy = copyBase(base, scratch);
    const segment = segmentOf(copy);
    const offset = record.offset + random.int(record.end - record.offset);
    const what = `flip at ${offset} of the last record (at ${record.offset})`;
    flipBit(segment, offset, random.int(8));
    const verify = await strata(['log', 'verify', '--data-dir', copy]);
    const outcome = await openCase(t, copy);
    if (inPadding(record, offset)) {
      servesExactly(t, outcome, base.lastRevision, what);
      tally('segment flip in the last record', 'ignored (padding)');
    } else if (outcome.kind === 'started') {
      t.is(verify.exitCode, verifyTorn, `${what}: the daemon cut it, so verify must call it torn: ${verify.output}`);
      servesExactly(t, outcome, record.firstRevision - 1, what);
      t.is(outcome.recovery.torn?.offset, record.offset, `${what}: the cut is logged`);
      tally('segment flip in the last record', 'cut (a zero sector: torn by the rule)');
    } else {
      t.is(verify.exitCode, verifyCorrupt, `${what}: the daemon refused, so verify must call it corrupt: ${verify.output}`);
      refusedNaming(t, outcome, segment, record.offset, what);
      tally('segment flip in the last record', `refused ${outcome.exitCode} (no zero sector: corruption by the rule)`);
    }
    rmSync(join(copy, '..'), { recursive: true, force: true });
  }
});

test.serial('bit flips in snapshots: the damaged one set aside (.broken, logged), the older one or the log serves the whole state', async (t) => {
  const random = new Prng(seed, 4);
  const cases = byMode(3, 20);
  t.is(base.snapshots.length, 2, 'the base has two snapshots');
  for (let i = 0; i < cases; i++) {
    const both = i % 3 === 2;
    const copy = copyBase(base, scratch);
    const damaged = (both ? base.snapshots : base.snapshots.slice(0, 1)).map((s) => inCopy(base, copy, s.path));
    const where: string[] = [];
    for (const path of damaged) {
      const offset = random.int(statSync(path).size);
      flipBit(path, offset, random.int(8));
      where.push(`${basename(path)}@${offset}`);
    }
    const what = `snapshot flip ${where.join(', ')}`;
    const outcome = await openCase(t, copy);
    servesExactly(t, outcome, base.lastRevision, what);
    if (outcome.kind === 'started') {
      const broken = outcome.recovery.brokenSnapshots ?? [];
      t.is(broken.length, damaged.length, `${what}: the ready line names every damaged snapshot: ${JSON.stringify(broken)}`);
      for (const path of damaged) t.true(existsSync(`${path}.broken`), `${what}: ${basename(path)} set aside`);
      t.is(outcome.recovery.snapshot?.revision ?? 0, both ? 0 : base.snapshots[1]!.revision, `${what}: loaded from`);
    }
    tally(both ? 'both snapshots flipped' : 'newest snapshot flipped',
      outcome.kind === 'started' ? (both ? 'fallback to the log' : 'fallback to the older snapshot') : `refused ${outcome.exitCode}`);
    rmSync(join(copy, '..'), { recursive: true, force: true });
  }
});

test.serial('bit flips in a backup: the online stage refuses it and the live store is untouched', async (t) => {
  const random = new Prng(seed, 5);
  const cases = byMode(3, 16);
  const copy = copyBase(base, scratch);
  const daemon = await startQuiet(t, copy);
  const admin = await StrataClient.connect({ url: daemon.url, reconnect: false, requestTimeoutMs: 120_000 });
  const backups = join(copy, 'backups');
  for (let i = 0; i < cases; i++) {
    const name = `scheduler-backup-2001-01-01-00-${String(i).padStart(2, '0')}.bak`;
    copyFileSync(base.backup, join(backups, name));
    const offset = random.int(statSync(base.backup).size);
    flipBit(join(backups, name), offset, random.int(8));
    const what = `backup flip at ${offset}`;
    const staged = await admin.stageBackup(name).then(() => null, (error: unknown) => String(error));
    t.truthy(staged, `${what}: staging is refused`);
    t.regex(staged ?? '', /offset|checksum|truncated|damaged|magic|header|CRC/i, `${what}: a clear reason: ${staged}`);
    tally('backup flipped (online stage)', staged !== null ? 'refused' : 'staged');
  }
  const status = await admin.status();
  t.is(String(status.staged ?? ''), '', 'nothing is staged');
  admin.close();
  const { state, revision } = await servedState(daemon.url);
  t.is(revision, base.lastRevision, 'the live revision');
  t.deepEqual(stateDifferences(state, expectedAt(base.sent, revision)), [], 'the live store is untouched');
  t.is(await daemon.stop(), 0);
});

/** Flips one bit of the backup copy in [from, to) and runs `strata backup restore` into a new directory. */
async function restoreFlipped(random: Prng, from: number, to: number): Promise<{ what: string; exitCode: number | null; output: string; target: string }> {
  const dir = mkdtempSync(join(scratch, 'restore-'));
  const file = join(dir, 'flipped.bak');
  copyFileSync(base.backup, file);
  const offset = from + random.int(to - from);
  flipBit(file, offset, random.int(8));
  const target = join(dir, 'data');
  const result = await strata(['backup', 'restore', '--data-dir', target, file]);
  return { what: `backup flip at ${offset}`, ...result, target };
}

test.serial('bit flips in a backup: strata backup restore refuses it with a clear error and writes nothing', async (t) => {
  const random = new Prng(seed, 6);
  const cases = byMode(3, 16);
  const size = statSync(base.backup).size;
  for (let i = 0; i < cases; i++) {
    const { what, exitCode, output, target } = await restoreFlipped(random, 0, size);
    t.not(exitCode, 0, `${what}: restore refuses: ${output}`);
    t.regex(output, /offset/, `${what}: the error names the offset: ${output}`);
    const written = existsSync(join(target, 'snapshots')) ? readdirSync(join(target, 'snapshots')) : [];
    t.deepEqual(written, [], `${what}: nothing installed`);
    tally('backup flipped (offline restore)', exitCode === 0 ? 'RESTORED (not refused)' : `refused ${exitCode}`);
  }
});

/** Puts a file in a copy of the base directory and starts a daemon on it. */
async function placed(t: ExecutionContext, what: string, place: (copy: string) => string, expect: 'fallback' | 'refused' | 'ignored'): Promise<void> {
  const copy = copyBase(base, scratch);
  const path = place(copy);
  const outcome = await openCase(t, copy);
  if (expect === 'refused') refusedNaming(t, outcome, path, null, what);
  else servesExactly(t, outcome, base.lastRevision, what);
  if (expect === 'fallback' && outcome.kind === 'started') {
    t.true(existsSync(`${path}.broken`), `${what}: set aside`);
    t.is(outcome.recovery.snapshot?.revision, base.snapshots[0]!.revision, `${what}: the newest good snapshot loaded`);
  }
  tally(what, outcome.kind === 'started' ? (expect === 'fallback' ? 'fallback (set aside)' : 'ignored') : `refused ${outcome.exitCode}`);
  rmSync(join(copy, '..'), { recursive: true, force: true });
}

test.serial('files put in place: zero-length, garbage and truncated snapshots within the log are set aside, beyond it refused; such segments are refused', async (t) => {
  const random = new Prng(seed, 7);
  // A snapshot is installed only for a revision already durable in the log: a damaged one the log reaches is set
  // aside; one named beyond the log's end is evidence of lost revisions, and recovery refuses (checkBrokenSnapshots).
  const newer = snapshotFileName(base.lastRevision);
  const beyond = snapshotFileName(base.lastRevision + 1);
  const garbage = (bytes: number) => Buffer.from(Array.from({ length: bytes }, () => random.int(256)));
  const nextSegment = segmentName(2, base.lastRevision + 1);
  const rounds = byMode(1, 2);
  for (let round = 0; round < rounds; round++) {
    await placed(t, 'zero-length snapshot, newest', (copy) => {
      const path = join(copy, 'snapshots', newer);
      writeFileSync(path, Buffer.alloc(0));
      return path;
    }, 'fallback');
    await placed(t, 'garbage snapshot, newest', (copy) => {
      const path = join(copy, 'snapshots', newer);
      writeFileSync(path, garbage(1 + random.int(64 * 1024)));
      return path;
    }, 'fallback');
    await placed(t, 'truncated snapshot, newest', (copy) => {
      const path = join(copy, 'snapshots', newer);
      const whole = readFileSync(inCopy(base, copy, base.snapshots[0]!.path));
      writeFileSync(path, whole.subarray(0, random.int(whole.length)));
      return path;
    }, 'fallback');
    await placed(t, 'zero-length snapshot, beyond the log', (copy) => {
      const path = join(copy, 'snapshots', beyond);
      writeFileSync(path, Buffer.alloc(0));
      return path;
    }, 'refused');
    await placed(t, 'zero-length segment, next', (copy) => {
      const path = join(copy, 'log', nextSegment);
      writeFileSync(path, Buffer.alloc(0));
      return path;
    }, 'refused');
    await placed(t, 'garbage segment, next', (copy) => {
      const path = join(copy, 'log', nextSegment);
      writeFileSync(path, garbage(1 + random.int(64 * 1024)));
      return path;
    }, 'refused');
    await placed(t, 'segment truncated inside its header', (copy) => {
      const path = segmentOf(copy);
      truncateSync(path, random.int(128));
      return path;
    }, 'refused');
    await placed(t, 'files with other names (junk.log, old.snap.tmp)', (copy) => {
      writeFileSync(join(copy, 'log', 'junk.log'), garbage(4096));
      writeFileSync(join(copy, 'snapshots', `${newer}.tmp`), garbage(4096));
      return join(copy, 'log', 'junk.log');
    }, 'ignored');
  }
});

// Found by this suite: when every snapshot is damaged and the log does not reach past them (here: no log at all,
// a directory restored offline that never ran), the daemon used to set the snapshot aside and start EMPTY at
// revision 0. Recovery now refuses (exit 65) and leaves the file in place (workers/writer/main.ts
// checkBrokenSnapshots), so every restart refuses the same way.
test.serial('a damaged only snapshot with no log to fall back on (restored offline, never started) is refused, not served empty', async (t) => {
  const dir = mkdtempSync(join(scratch, 'restored-'));
  const target = join(dir, 'data');
  const restored = await strata(['backup', 'restore', '--data-dir', target, base.backup]);
  t.is(restored.exitCode, 0, restored.output);
  const snapshot = join(target, 'snapshots', snapshotFileName(base.backupRevision));
  flipBit(snapshot, Math.floor(statSync(snapshot).size / 2), 3);
  const outcome = await openCase(t, target);
  tally('only snapshot flipped, no log', outcome.kind === 'started' ? `STARTED at revision ${outcome.revision} with ${outcome.state.size} tasks` : `refused ${outcome.exitCode}`);
  if (outcome.kind === 'started') figures.problems.push(`only snapshot damaged, no log: the daemon started at revision ${outcome.revision} with ${outcome.state.size} tasks (expected a refusal, or revision ${base.backupRevision})`);
  refusedNaming(t, outcome, snapshot, null, 'only snapshot damaged, no log');
});
