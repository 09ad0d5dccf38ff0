/**
 * Frame fuzzing over a real socket: 10,000+ random and mutated frames (valid envelopes of every request type,
 * then bytes flipped, cut, extended, body types swapped; and plain noise). The daemon must answer each with a
 * typed error or a valid answer, never crash, keep answering a clean connection, and lose nothing: the tasks
 * committed before the fuzzing are all there afterwards, unchanged.
 */
import test from 'ava';
import { Prng } from '../core/prng.js';
import { encode } from '../core/codec.js';
import { jobConfig, task, txn, upsert, transition, taskQuery, query } from './support/build.js';
import { tempDir } from './support/durable.js';
import { startDaemon } from './support/daemon.js';
import { commitResult, f, make, queryResult, RawClient } from './support/raw-client.js';

const frames = Number(process.env.STRATA_FUZZ_FRAMES ?? 10_000);

function validEnvelopes(): Uint8Array[] {
  const config = jobConfig('f', 'prod', 'fz');
  const bodies: [f.Body, object][] = [
    [f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert([task('fz-1', config, 1)])])] })],
    [f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([transition('seed-3', f.ScheduleStatus.ASSIGNED, { enforce: true })])] })],
    [f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'seed' })] })],
    [f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...query(f.Query.RoleSummaryQuery, new f.RoleSummaryQueryT())] })],
    [f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: -1n, filter: make(f.WatchFilterT, { role: 'f', tables: [0] }) })],
    [f.Body.WatchCancel, make(f.WatchCancelT, { subscription: 1 })],
    [f.Body.WatchProgressRequest, make(f.WatchProgressRequestT, { subscription: 1 })],
    [f.Body.StatusRequest, new f.StatusRequestT()],
    [f.Body.BackupListRequest, new f.BackupListRequestT()],
    [f.Body.Hello, make(f.HelloT, { protocolMin: 1, protocolMax: 1 })],
  ];
  return bodies.map(([type, body], i) => encode(make(f.EnvelopeT, { id: 1000 + i, bodyType: type, body: body as never })));
}

function mutate(r: Prng, base: Uint8Array): Uint8Array {
  const kind = r.int(6);
  const out = base.slice();
  if (kind === 0) { // flip some bytes
    for (let n = 1 + r.int(4); n > 0; n--) out[r.int(out.length)] = r.int(256);
    return out;
  }
  if (kind === 1) return out.subarray(0, r.int(out.length)); // truncated
  if (kind === 2) { // extended with noise
    const longer = new Uint8Array(out.length + 1 + r.int(64));
    longer.set(out);
    for (let i = out.length; i < longer.length; i++) longer[i] = r.int(256);
    return longer;
  }
  if (kind === 3) { // the body type byte swapped for any value (an unknown union member included)
    for (let i = 0; i < out.length; i++) if (out[i]! >= 1 && out[i]! <= 30 && r.int(3) === 0) { out[i] = r.int(256); break; }
    return out;
  }
  if (kind === 4) { // offsets pointed elsewhere
    const at = r.int(Math.max(1, out.length - 4)) & ~3;
    new DataView(out.buffer).setUint32(at, r.next() >>> 0, true);
    return out;
  }
  const noise = new Uint8Array(r.int(200)); // plain noise
  for (let i = 0; i < noise.length; i++) noise[i] = r.int(256);
  return noise;
}

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
