/**
 * Fault suite (e): malformed frames under load (issue 7, 4e). While bystanders commit, watch and query, several
 * fuzzing connections send random and mutated frames (test/support/fuzz-frames.ts: truncated envelopes, flipped
 * bits, offsets and nested lengths that lie, huge declared vectors, unknown enum values, text frames, valid Hello
 * then garbage, no Hello at all) and now and then a frame over the size limit.
 *
 * What must hold: the daemon never crashes; a fuzzing connection that stays open gets exactly one answer per frame
 * (a valid answer or a typed ErrorResponse), and one that is closed is closed with a documented code (1006/1009
 * for an oversized frame, 4400 for a Hello without a common version, 4401); the bystanders' work is all correct
 * (every commit acknowledged once, the watch complete and in order, every query answer equal to the replay); and
 * the daemon answers a clean connection afterwards.
 */
import test from 'ava';
import { Prng } from '../../core/prng.js';
import { jobConfig, task, txn, upsert } from '../support/build.js';
import { tempDir } from '../support/durable.js';
import { startDaemon, type RunningDaemon } from '../support/daemon.js';
import { fuzzFrame, unknownEnumEnvelopes, validEnvelopes } from '../support/fuzz-frames.js';
import { commitResult, f, make, RawClient } from '../support/raw-client.js';
import { byMode, report } from './mode.js';
import { Bystanders, withTimeout } from './support/vanish-bystanders.js';
import { HealthMonitor, metricValue } from './support/reader-http.js';

const frameBytesMax = 256 * 1024;    // small, so that oversized frames are cheap to send
const fuzzers = 3;
const framesPerConnectionMax = 300;
const oversizedEvery = 25;           // one connection in this many ends with a frame over the limit
const answerWaitMs = 60_000;         // generous: commits among the frames are answered after their group's fsync
const closeCodesDocumented = new Set([1006, 1009, 4400, 4401]); // docs/protocol.md "Close codes"

interface FuzzFigures { frames: number; connections: number; answered: number; closes: Record<string, number> }

/** Server pushes that answer no request (a mutated request may carry id 0: its answer then comes as a push). */
const pushBodies = new Set([f.Body.WatchEvents, f.Body.WatchState, f.Body.WatchStateEnd, f.Body.WatchProgress, f.Body.WatchEnded]);

function answers(c: RawClient): number {
  return c.responses.length + c.pushes.filter((p) => !pushBodies.has(p.bodyType)).length;
}

/** One fuzzing connection: frames, maybe an oversized one, then a status request; checks how it ended. */
async function fuzzConnection(d: RunningDaemon, r: Prng, bases: Uint8Array[], figures: FuzzFigures, frames: number): Promise<void> {
  const hello = r.int(5) !== 0; // most say Hello first (then garbage); some never do
  const c = hello ? await RawClient.open(d.url) : await RawClient.connect(d.url);
  for (let i = 0; i < frames; i++) c.sendRaw(fuzzFrame(r, bases));
  const oversized = r.int(oversizedEvery) === 0;
  if (oversized) c.sendRaw(new Uint8Array(frameBytesMax + 1 + r.int(4096)));
  figures.frames += frames + (oversized ? 1 : 0);
  figures.connections++;
  const expected = frames + (hello ? 1 : 0) + 1; // one answer per frame, Hello's and the status request's
  const status = c.request(f.Body.StatusRequest, new f.StatusRequestT());
  const closed = c.closed.then((close) => close);
  const ended = await withTimeout(Promise.race([status.then(() => null), closed]), answerWaitMs,
    `a fuzz connection got no status answer and was not closed (${answers(c)} answers)`);
  if (ended === null) {
    if (oversized) throw new Error('a frame over frameBytesMax was taken');
    const deadline = Date.now() + answerWaitMs;
    while (answers(c) < expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    if (answers(c) !== expected) throw new Error(`a fuzz connection got ${answers(c)} answers for ${expected} frames`);
    figures.answered += expected;
    c.close();
    return;
  }
  if (!closeCodesDocumented.has(ended.code)) throw new Error(`closed with ${ended.code} (${ended.reason})`);
  figures.closes[ended.code] = (figures.closes[ended.code] ?? 0) + 1;
}

/** One fuzzer's connections until it sent `frames`; the first problem ends it and is returned (null: none). */
async function fuzzLoop(d: RunningDaemon, seed: number, frames: number, figures: FuzzFigures): Promise<string | null> {
  const r = new Prng(seed);
  const bases = [...validEnvelopes(), ...unknownEnumEnvelopes()];
  let sent = 0;
  try {
    while (sent < frames) {
      const batch = Math.min(frames - sent, 1 + r.int(framesPerConnectionMax));
      await fuzzConnection(d, r, bases, figures, batch);
      sent += batch;
    }
    return null;
  } catch (error) {
    return `fuzzer seed ${seed}, after ${sent} frames: ${(error as Error).stack ?? String(error)}`;
  }
}

test('malformed frames from several connections under load: typed answers or documented closes, bystanders exact', async (t) => {
  const framesPerFuzzer = Math.ceil(byMode(6_000, 300_000) / fuzzers);
  const dir = tempDir(t, 'fuzz-load');
  const d = await startDaemon({ dataDir: `${dir}/data`, config: { readerThreads: 1, limits: { frameBytesMax } } });
  t.teardown(() => d.kill());
  const started = performance.now();
  const clean = await RawClient.open(d.url);
  const seedConfig = jobConfig('seed', 'prod', 'keep');
  t.is(commitResult(await clean.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction:
    [...txn([upsert(Array.from({ length: 50 }, (_, i) => task(`seed-${i}`, seedConfig, i)))])] }))).error, null);
  const health = new HealthMonitor(d.http);
  t.teardown(() => health.stop()); // also when the test failed before its own stop()
  const bystanders = await Bystanders.start({ url: d.url, role: 'fzby', writers: 2, queriers: 1 });
  const figures: FuzzFigures = { frames: 0, connections: 0, answered: 0, closes: {} };
  const seed = 20261126;
  const problems = await Promise.all(Array.from({ length: fuzzers }, (_, i) => fuzzLoop(d, seed + i, framesPerFuzzer, figures)));
  t.deepEqual(problems.filter((p) => p !== null), []);
  const work = await bystanders.stop();
  const probes = await health.stop();
  t.is(d.child.exitCode, null, d.stderr());
  t.deepEqual(probes.failures, []);
  t.true(figures.frames >= fuzzers * framesPerFuzzer);
  const alive = await clean.request(f.Body.StatusRequest, new f.StatusRequestT());
  t.is(alive.bodyType, f.Body.StatusResponse);
  clean.close();
  const badFrames = await metricValue(d.http, 'strata_bad_frames_total');
  t.true(badFrames > figures.frames / 4, `${badFrames} bad frames counted`);
  // A graceful stop must still finish: a request the fuzzers left counted as pending would hold it (exit 70).
  const code = await d.stop();
  const line = report('fuzz-load', { framesFuzzed: figures.frames, connections: figures.connections,
    framesAnswered: figures.answered, closes: figures.closes, badFramesCounted: badFrames, seed,
    acknowledgedWritesChecked: work.commits, watchedRevisions: work.watchedRevisions,
    bystanderQueriesChecked: work.queriesChecked, seconds: Math.round((performance.now() - started) / 1000),
    found: code === 0 ? 'none' : `SIGTERM ended in exit ${code}: ${d.stderr().slice(-300)}` });
  t.log(line);
  t.is(code, 0, `${d.stderr().slice(-3000)}\n${JSON.stringify(d.lines.slice(-5))}`);
});
