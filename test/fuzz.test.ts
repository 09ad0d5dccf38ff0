/**
 * Frame fuzzing over a real socket: 10,000+ random and mutated frames (valid envelopes of every request type,
 * then bytes flipped, cut, extended, body types swapped; and plain noise). The daemon must answer each with a
 * typed error or a valid answer, never crash, keep answering a clean connection, and lose nothing: the tasks
 * committed before the fuzzing are all there afterwards, unchanged.
 */
import test from 'ava';
import { Prng } from '../core/prng.js';
import { jobConfig, task, txn, upsert, taskQuery } from './support/build.js';
import { mutate, validEnvelopes } from './support/fuzz-frames.js';
import { tempDir } from './support/durable.js';
import { startDaemon } from './support/daemon.js';
import { commitResult, f, make, queryResult, RawClient } from './support/raw-client.js';

const frames = Number(process.env.STRATA_FUZZ_FRAMES ?? 10_000);

test(`${frames} random and mutated frames: typed answers, the daemon serves on, nothing lost`, async (t) => {
  const dir = tempDir(t, 'fuzz');
  const d = await startDaemon({ dataDir: `${dir}/data` });
  t.teardown(async () => { await d.stop(); });
  const clean = await RawClient.open(d.url);
  const seedConfig = jobConfig('seed', 'prod', 'keep');
  const seedTasks = Array.from({ length: 50 }, (_, i) => task(`seed-${i}`, seedConfig, i));
  commitResult(await clean.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert(seedTasks)])] })));
  const before = queryResult(await clean.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'seed' })] })));

  const r = new Prng(20261126);
  const bases = validEnvelopes();
  let sent = 0;
  let connections = 0;
  while (sent < frames) {
    const c = await RawClient.open(d.url);
    connections++;
    const batch = Math.min(500, frames - sent);
    for (let i = 0; i < batch; i++) c.sendRaw(mutate(r, bases[r.int(bases.length)]!));
    sent += batch;
    // A request with a known id after the batch: its answer means every frame before it was handled.
    const status = await Promise.race([
      c.request(f.Body.StatusRequest, new f.StatusRequestT()),
      c.closed.then(() => null),
    ]);
    if (status !== null) t.is(status.bodyType, f.Body.StatusResponse);
    c.close();
    // The clean connection is answered correctly all along.
    const alive = await clean.request(f.Body.StatusRequest, new f.StatusRequestT());
    t.is(alive.bodyType, f.Body.StatusResponse);
  }
  t.true(sent >= frames);
  const after = queryResult(await clean.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'seed' })] })));
  const key = (q: f.QueryResponseT) => (q.result as f.TasksResultT).tasks.map((x) => [x.assignedTask!.taskId, x.status, x.taskEvents.length]);
  // Mutated transitions may have moved seed tasks legally; every seed task must still be there.
  t.is(key(after).length, key(before).length);
  t.deepEqual(key(after).map((k) => k[0]), key(before).map((k) => k[0]));
  const metrics = await (await fetch(`${d.http}/metrics`)).text();
  const bad = Number(/strata_bad_frames_total (\d+)/.exec(metrics)?.[1] ?? 0);
  t.true(bad > frames / 4, `${bad} bad frames counted`);
  t.log(`${sent} frames on ${connections} connections; ${bad} counted malformed`);
  clean.close();
});
