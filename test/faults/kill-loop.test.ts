/**
 * Fault suite, issue 7 part 4a: kill -9 in a loop under a mixed load of transactions and watches.
 *
 * One stratad (127.0.0.1, a fixed port below 32768, one temporary data directory kept for the whole run) is
 * killed with SIGKILL once per round, at a random moment of the load or at a failpoint of the group commit
 * (log.before-write / after-write / after-sync / before-publish, or a torn write), and started again. Each round:
 * six writers (SDK clients without reconnect) commit a mix of task creations, compare-and-set transitions,
 * deletes, quota, host, cron, maintenance and scheduler changes, each with its idempotency key, until the daemon
 * dies; the watchers (SDK clients that reconnect: all tables, a role, a job, two tables, and a list-then-watch of
 * a role) live across the whole run, and a raw-protocol watcher resumes after its last revision every round.
 * After the restart the round is checked:
 * - exactly once: every transaction whose answer was lost is resent with its key (and once more: the second
 *   answer must repeat the first); every acknowledged one is resent and must answer DUPLICATE with its first
 *   outcome; the committed revisions are 1..N, each claimed by one key;
 * - the acknowledged history, replayed in revision order through the reference model (test/model/), gives each
 *   transaction the daemon's outcome, and then the daemon's whole state (every table, every role) equals it;
 * - the watch of everything delivered each revision 1..N once, in order, carrying exactly the records its
 *   transaction changed, as the model has them at that revision; every filtered watcher got exactly the
 *   matching revisions (docs/protocol.md's filter rules), with the same records; a list state equals the
 *   model's at its revision; the raw watcher got revisions after its resume point only, none twice, no gap.
 * Snapshots and backups are off and the watch history is large, so a resume is never legitimately COMPACTED: a
 * COMPACTED (or any end of a watch) fails the suite.
 */
import { join } from 'node:path';
import test from 'ava';
import { StrataClient, type WatchFilterFields } from '../../client/index.js';
import { Body, RecordTable, type RevisionChangesT, WatchFilterT, WatchRequestT, type WatchResponseT } from '../../core/fbs/strata.js';
import { Prng } from '../../core/prng.js';
import { type RunningDaemon } from '../support/daemon.js';
import { tempDir } from '../support/durable.js';
import { RawClient, revisionsOf } from '../support/raw-client.js';
import { ReferenceModel } from '../model/reference.js';
import { byMode, report } from './mode.js';
import { fixedPort, startOnPort } from './support/fixed-port.js';
import { KillHistory, type SentTransaction } from './support/history.js';
import { roles, WriterWorkload } from './support/kill-workload.js';
import { listingProblems, revisionProblems, stateProblems } from './support/model-check.js';
import { recordsOf, subsetFor, WatchRecorder } from './support/watch-record.js';

const rounds = byMode(10, 200);
const writerCount = 6;
/** Load before a random kill: long enough for many groups, short enough for the quick run. */
const loadMsMax = 1_200;
/** A failpoint not reached in this long (a slow machine): SIGKILL instead, counted apart. */
const failpointWaitMs = 30_000;
/** Generous bounds for a busy 2-core machine: waits, never timing assertions. */
const requestTimeoutMs = 120_000;
const catchUpMs = 120_000;
const failpoints = ['log.before-write=kill', 'log.after-write=kill', 'log.after-sync=kill', 'log.before-publish=kill',
  'log.partial-write=partial'];
const daemonConfig = {
  readerThreads: 1,
  snapshot: { everyMs: 0, logBytes: 0, afterReplay: 0 },
  backup: { everyMs: 0 },
  watch: { historyBytes: 1024 * 1024 * 1024 },
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Watcher { recorder: WatchRecorder; client: StrataClient; connects: number }

const clientOptions = (url: string, name: string) => ({ url, clientName: name, requestTimeoutMs,
  reconnect: { initialMs: 25, maxMs: 250, factor: 2, jitter: 0.2 } });

async function watcher(url: string, name: string, filter: WatchFilterFields, list: boolean): Promise<Watcher> {
  const client = await StrataClient.connect(clientOptions(url, name));
  const entry = { client, connects: 1 } as Watcher;
  client.on('connected', () => { entry.connects++; });
  const watch = client.watch(list ? { filter, list: true, progressMs: 100 } : { filter, afterRevision: 0, progressMs: 100 });
  entry.recorder = new WatchRecorder(name, filter, watch, list ? -1n : 0n);
  return entry;
}

/** One writer until its client fails (the daemon died): every transaction sent goes to the history. */
async function write(url: string, workload: WriterWorkload, history: KillHistory, kinds: Record<string, number>) {
  let client: StrataClient;
  try {
    client = await StrataClient.connect({ url, reconnect: false, requestTimeoutMs, clientName: `writer-${workload.writer}` });
  } catch {
    return; // killed before this writer got in: nothing sent
  }
  try {
    for (;;) {
      const builder = client.txn();
      const { kind, believe } = workload.next(builder);
      const built = builder.build();
      const entry: SentTransaction = { key: `${String(built.idempotency!.clientId)}/${built.idempotency!.sequence}`,
        bytes: builder.encode(), kind, outcome: 'unknown', result: null, believe };
      try {
        entry.result = await client.commit(builder);
        entry.outcome = 'acked';
        believe(entry.result);
        kinds[kind] = (kinds[kind] ?? 0) + 1;
      } catch {
        return; // the daemon died: this one's outcome is unknown
      } finally {
        history.sent(entry);
      }
    }
  } finally {
    await client.close();
  }
}

test(`kill -9 in a loop under transactions and watches: ${rounds} rounds`, async (t) => {
  t.timeout(byMode(10 * 60_000, 4 * 3600_000));
  const startedMs = Date.now();
  const seed = Number(process.env.STRATA_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.log(`seed ${seed} (STRATA_KILL_SEED=${seed} repeats the choices of this run)`);
  const prng = new Prng(seed);
  const dataDir = join(tempDir(t, 'kill-loop'), 'data');
  let port = fixedPort(prng);
  let daemon: RunningDaemon = await startOnPort({ dataDir, port, config: daemonConfig });
  t.teardown(() => daemon.kill());
  const url = () => `ws://127.0.0.1:${port}/v1`;

  const model = new ReferenceModel();
  const history = new KillHistory(model);
  const writers = Array.from({ length: writerCount }, (_, w) => new WriterWorkload(w, seed));
  const all = await watcher(url(), 'all', {}, false);
  const filtered = [
    await watcher(url(), `role ${roles[0]}`, { role: roles[0] }, false),
    await watcher(url(), 'job r1/prod/j1a', { role: 'r1', environment: 'prod', jobName: 'j1a' }, false),
    await watcher(url(), 'quotas and hosts', { tables: [RecordTable.QUOTA, RecordTable.HOST_ATTRIBUTES] }, false),
  ];
  let lister: Watcher | null = null;
  t.teardown(async () => {
    for (const w of [all, ...filtered, ...(lister === null ? [] : [lister])]) await w.client.close();
  });

  const kills: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  const allByRevision = new Map<number, RevisionChangesT>();
  let rawAfter = 0;
  let allLast = 0;
  const listingsChecked = new Set<object>();
  let revisionChecked = 0;
  let watchEventsChecked = 0;
  let listStatesChecked = 0;
  let rawResumes = 0;
  let listers = 0;
  let problems: string[] = [];

  for (let round = 0; round < rounds && problems.length === 0; round++) {
    // A failpoint round starts a daemon that kills itself inside the group commit (the idle one goes first).
    const point = round % 3 === 2 ? prng.pick(failpoints) : null;
    const at = 2 + prng.int(40);
    if (point !== null) {
      await daemon.kill();
      kills['idle (to arm a failpoint)'] = (kills['idle (to arm a failpoint)'] ?? 0) + 1;
      daemon = await startOnPort({ dataDir, port, config: daemonConfig, env: { STRATA_FAILPOINTS: `${point}@${at}` } });
    }
    if (round % 4 === 1) {
      const old = lister;
      const role = roles[(listers++) % roles.length]!;
      lister = await watcher(url(), `list role ${role} #${listers}`, { role }, true);
      if (old !== null) await old.client.close();
    }
    // The raw watcher: resumes after the last revision it got, on the bare protocol (no client-side dedup).
    const raw = await RawClient.open(url());
    const answer = await raw.request(Body.WatchRequest, new WatchRequestT(new WatchFilterT(), BigInt(rawAfter), false, 0));
    if (answer.bodyType !== Body.WatchResponse) throw new Error(`raw watch refused: ${JSON.stringify(answer.body)}`);
    const rawSubscription = (answer.body as WatchResponseT).subscription;
    rawResumes++;

    const writing = writers.map((w) => write(url(), w, history, kinds));
    const died = daemon.exited;
    if (point === null) {
      await sleep(50 + prng.int(loadMsMax));
      await daemon.kill();
      kills.random = (kills.random ?? 0) + 1;
    } else if (await diedWithin(died, failpointWaitMs)) {
      kills[point] = (kills[point] ?? 0) + 1;
    } else {
      await daemon.kill();
      kills[`${point} not reached: SIGKILL`] = (kills[`${point} not reached: SIGKILL`] ?? 0) + 1;
    }
    await Promise.all(writing);
    daemon = await startOnPort({ dataDir, port, config: daemonConfig });

    const resolver = await StrataClient.connect({ url: url(), reconnect: false, requestTimeoutMs, clientName: 'resolver' });
    try {
      problems = await history.resolve(resolver);
      const revisionNow = Number((await resolver.status()).revision);
      problems.push(...await caughtUp([all, ...filtered, ...(lister === null ? [] : [lister])], BigInt(revisionNow)));
      if (problems.length > 0) break;
      for (const { revision, changes } of all.recorder.changes.splice(0)) {
        if (Number(revision) !== allLast + 1) {
          problems.push(`watch all: revision ${revision} follows ${allLast} (a gap, a repeat or a reorder)`);
          break;
        }
        allLast = Number(revision);
        allByRevision.set(allLast, changes);
      }
      problems.push(...history.replay(revisionNow, (revision, committed) => {
        const found: string[] = [];
        if (committed !== null) {
          const changes = allByRevision.get(revision);
          if (changes === undefined) found.push(`watch all: no revision ${revision}`);
          else found.push(...revisionProblems(revision, changes, committed.transaction, committed.result, model));
          watchEventsChecked++;
        }
        for (const listing of lister?.recorder.listings ?? []) {
          if (Number(listing.revision) !== revision || listingsChecked.has(listing)) continue;
          found.push(...listingProblems(lister!.recorder.name, String(lister!.recorder.filter.role), listing.responses, model));
          listingsChecked.add(listing);
          listStatesChecked++;
        }
        return found;
      }));
      for (const listing of lister?.recorder.listings ?? []) {
        if (!listingsChecked.has(listing)) problems.push(`${lister!.recorder.name}: a list state at ${listing.revision}, outside the round`);
      }
      revisionChecked = revisionNow;
      problems.push(...await stateProblems(resolver, model));
      for (const w of [...filtered, ...(lister === null ? [] : [lister])]) {
        const checked = filteredProblems(w.recorder, allByRevision, BigInt(revisionNow));
        problems.push(...checked.problems);
        watchEventsChecked += checked.events;
      }
      const rawChecked = rawProblems(revisionsOf(raw.pushes, rawSubscription), rawAfter, allByRevision);
      problems.push(...rawChecked.problems);
      watchEventsChecked += rawChecked.events;
      rawAfter = rawChecked.last;
      for (const revision of allByRevision.keys()) if (revision <= rawAfter) allByRevision.delete(revision);
    } finally {
      raw.close();
      await resolver.close();
    }
    for (const w of writers) w.resync(model);
    if (problems.length > 0) problems.unshift(`round ${round} (${point ?? 'random SIGKILL'}), seed ${seed}:`);
  }

  const watchResumes = rawResumes + [all, ...filtered].reduce((sum, w) => sum + w.connects - 1, 0) +
    (lister === null ? 0 : lister.connects - 1);
  const summary = report('kill-loop', {
    rounds, kills, seed, writers: writerCount, transactionKinds: kinds,
    transactionsAcknowledged: history.acknowledged, transactionsChecked: history.checked,
    acknowledgedResent: history.resentAcknowledged, unknownOutcomesResent: history.unknown,
    unknownResolved: history.resolutions, failedOutcomes: history.failedOutcomes, noopOutcomes: history.noopOutcomes,
    revisions: revisionChecked, watchEventsChecked, listStatesChecked, watchResumes,
    gapsDuplicatesLost: problems.length, runtimeMs: Date.now() - startedMs,
  });
  t.log(summary);
  if (problems.length > 0) t.fail(problems.slice(0, 12).join('\n'));
  else t.pass();
});

/** Whether the daemon exited within `ms` (the timer is cleared either way: nothing keeps the worker alive). */
async function diedWithin(died: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | null = null;
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  const result = await Promise.race([died.then(() => true), late]);
  clearTimeout(timer!);
  return result;
}

/** Waits until every watcher's position reached `revision` (bookmarks come every 100 ms while idle). */
async function caughtUp(watchers: Watcher[], revision: bigint): Promise<string[]> {
  const deadline = Date.now() + catchUpMs;
  for (;;) {
    const failed = watchers.flatMap((w) => (w.recorder.problem === null ? [] : [w.recorder.problem]));
    if (failed.length > 0) return failed;
    const behind = watchers.filter((w) => w.recorder.position < revision);
    if (behind.length === 0) return [];
    if (Date.now() > deadline) {
      return behind.map((w) => `watch ${w.recorder.name}: at ${w.recorder.position} after ${catchUpMs} ms, the daemon at ${revision}`);
    }
    await sleep(20);
  }
}

/**
 * A filtered (or list) watcher's revisions after its last check up to `revision`: exactly those of the watch of
 * everything that its filter matches, in order, each once, with the matching records.
 */
function filteredProblems(recorder: WatchRecorder, allByRevision: Map<number, RevisionChangesT>, revision: bigint):
  { problems: string[]; events: number } {
  const problems: string[] = [];
  if (recorder.checkedTo < 0n) {
    if (recorder.listings.length === 0) return { problems: [`${recorder.name}: no list state yet`], events: 0 };
    recorder.checkedTo = recorder.listings[0]!.revision;
  }
  if (recorder.listings.length > 1) problems.push(`${recorder.name}: listed ${recorder.listings.length} times`);
  const got = recorder.changes.splice(0);
  const expected: { revision: number; records: string }[] = [];
  for (let r = Number(recorder.checkedTo) + 1; r <= Number(revision); r++) {
    const whole = allByRevision.get(r);
    if (whole === undefined) return { problems: [`${recorder.name}: revision ${r} is no longer kept to compare`], events: 0 };
    const subset = subsetFor(recorder.filter, whole);
    if (subset !== null) expected.push({ revision: r, records: recordsOf(subset) });
  }
  const gotRevisions = got.map((x) => Number(x.revision));
  const expectedRevisions = expected.map((x) => x.revision);
  if (gotRevisions.join(',') !== expectedRevisions.join(',')) {
    problems.push(`${recorder.name}: got revisions [${gotRevisions.join(',')}] after ${recorder.checkedTo}, ` +
      `expected [${expectedRevisions.join(',')}]`);
  } else {
    got.forEach((x, index) => {
      if (recordsOf(x.changes) !== expected[index]!.records) {
        problems.push(`${recorder.name}: revision ${x.revision} carries ${recordsOf(x.changes).slice(0, 800)}, ` +
          `expected ${expected[index]!.records.slice(0, 800)}`);
      }
    });
  }
  recorder.checkedTo = revision;
  return { problems, events: got.length };
}

/** The raw watcher's revisions: after its resume point, consecutive (it watches everything), as the others saw them. */
function rawProblems(revisions: RevisionChangesT[], after: number, allByRevision: Map<number, RevisionChangesT>):
  { problems: string[]; events: number; last: number } {
  const problems: string[] = [];
  let last = after;
  for (const changes of revisions) {
    const revision = Number(changes.revision);
    if (revision !== last + 1) {
      problems.push(`raw watch after ${after}: revision ${revision} follows ${last} (a gap, a repeat or a reorder)`);
      break;
    }
    const whole = allByRevision.get(revision);
    if (whole === undefined || recordsOf(whole) !== recordsOf(changes)) {
      problems.push(`raw watch: revision ${revision} differs from the SDK watch of everything`);
      break;
    }
    last = revision;
  }
  return { problems, events: last - after, last };
}
