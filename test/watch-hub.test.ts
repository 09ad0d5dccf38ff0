/**
 * The watch hub alone (daemon/watch.ts), with fake connections: order, filters, fragments, catch-up from
 * history when a connection's buffer is full, compaction, the close of a hopeless consumer, progress, future starts.
 */
import test from 'ava';
import * as flatbuffers from 'flatbuffers';
import { encode, make } from '../core/codec.js';
import * as f from '../core/fbs/strata.js';
import {
  compileFilter, filterRevision, WatchHub, type ChangeKey, type ChangeRevision, type Subscription, type WatchSink,
} from '../daemon/watch.js';

function jobKey(role: string, env = 'prod', name = 'web'): f.JobKeyT {
  return make(f.JobKeyT, { role, environment: env, name });
}

/** A revision changing one task of role/env/name (and a pad to make it big when asked). */
function change(revision: number, role: string, taskId = `${role}-t${revision}`, pad = 0, env = 'prod', name = 'web'): ChangeRevision {
  const task = make(f.ScheduledTaskT, {
    status: f.ScheduleStatus.RUNNING, modRevision: BigInt(revision),
    assignedTask: make(f.AssignedTaskT, { taskId, slaveHost: 'x'.repeat(pad) }),
  });
  const bytes = encode(make(f.RevisionChangesT, { revision: BigInt(revision), tasks: [task] }));
  const keys: ChangeKey[] = [{ table: f.RecordTable.TASK, role, environment: env, jobName: name, taskId }];
  return { revision, bytes, keys, reset: false };
}

/** Two jobs of two roles in one revision (a filter by one role must get a filtered copy). */
function twoRoles(revision: number): ChangeRevision {
  const t = (id: string) => make(f.ScheduledTaskT, { assignedTask: make(f.AssignedTaskT, { taskId: id }), modRevision: BigInt(revision) });
  const cron = make(f.JobConfigurationT, { key: jobKey('b'), cronSchedule: '* * * * *' });
  const bytes = encode(make(f.RevisionChangesT, { revision: BigInt(revision), tasks: [t('a1'), t('b1')], cronJobs: [cron] }));
  return { revision, bytes, keys: [
    { table: f.RecordTable.TASK, role: 'a', environment: 'prod', jobName: 'web', taskId: 'a1' },
    { table: f.RecordTable.TASK, role: 'b', environment: 'prod', jobName: 'web', taskId: 'b1' },
    { table: f.RecordTable.CRON_JOB, role: 'b', environment: 'prod', jobName: 'web', taskId: '' },
  ], reset: false };
}

class FakeSink implements WatchSink {
  frames: Uint8Array[] = [];
  bufferedBytes = 0;
  open = true;
  slowClosed = false;
  drainOnSend = true;
  closeBytes = Infinity;
  buffered(): number { return this.bufferedBytes; }
  cork(fn: () => void): void { fn(); }
  send(frame: Uint8Array): boolean {
    if (!this.open) return false;
    this.frames.push(frame.slice()); // the hub reuses shared frames: keep a copy, as a socket would
    if (!this.drainOnSend) this.bufferedBytes += frame.byteLength;
    if (this.bufferedBytes > this.closeBytes) { // as the server's sink does: closed as a slow consumer
      this.slowClosed = true;
      this.open = false;
      return false;
    }
    return true;
  }

  envelopes(): f.EnvelopeT[] {
    return this.frames.map((b) => f.Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(b)).unpack());
  }

  /** Revisions delivered to `subscription`, fragments joined. */
  revisions(subscription: number): f.RevisionChangesT[] {
    const out: f.RevisionChangesT[] = [];
    let pieces: number[] = [];
    for (const e of this.envelopes()) {
      if (e.bodyType !== f.Body.WatchEvents) continue;
      const events = e.body as f.WatchEventsT;
      if (events.subscription !== subscription) continue;
      for (const r of events.revisions) {
        pieces.push(...r.changes);
        if (events.partial) continue;
        out.push(f.RevisionChanges.getRootAsRevisionChanges(new flatbuffers.ByteBuffer(Uint8Array.from(pieces))).unpack());
        pieces = [];
      }
    }
    return out;
  }
}

const limits = { historyBytes: 1 << 20, bufferBytes: 64 * 1024, closeBytes: 1 << 20, frameBytesMax: 16 * 1024 };
const all = compileFilter([], '', '', '', []);

test('live subscribers get every revision once, in order; filters by role, job and task id', (t) => {
  const hub = new WatchHub(0, limits);
  const everyone = new FakeSink();
  const roleA = new FakeSink();
  const task = new FakeSink();
  hub.subscribe(1, everyone, all, -1, 1000, false);
  hub.subscribe(2, roleA, compileFilter([], 'a', '', '', []), -1, 1000, false);
  hub.subscribe(3, task, compileFilter([], '', '', '', ['b-t2']), -1, 1000, false);
  hub.publish([change(1, 'a'), change(2, 'b')]);
  hub.publish([change(3, 'a'), change(4, 'c')]);
  t.deepEqual(everyone.revisions(1).map((r) => Number(r.revision)), [1, 2, 3, 4]);
  t.deepEqual(roleA.revisions(2).map((r) => Number(r.revision)), [1, 3]);
  t.deepEqual(task.revisions(3).map((r) => Number(r.revision)), [2]);
  hub.publish([change(4, 'a')]); // a revision seen already is dropped
  t.is(everyone.revisions(1).length, 4);
});

test('a revision with several roles is cut down to what the filter matches', (t) => {
  const r = twoRoles(7);
  t.is(filterRevision(all, r), r.bytes);
  const onlyA = filterRevision(compileFilter([], 'a', '', '', []), r)!;
  const a = f.RevisionChanges.getRootAsRevisionChanges(new flatbuffers.ByteBuffer(onlyA)).unpack();
  t.deepEqual(a.tasks.map((x) => x.assignedTask!.taskId), ['a1']);
  t.is(a.cronJobs.length, 0);
  const bCron = filterRevision(compileFilter([f.RecordTable.CRON_JOB], 'b', '', '', []), r)!;
  const b = f.RevisionChanges.getRootAsRevisionChanges(new flatbuffers.ByteBuffer(bCron)).unpack();
  t.is(b.tasks.length, 0);
  t.is(b.cronJobs.length, 1);
  t.is(filterRevision(compileFilter([], 'zzz', '', '', []), r), null);
  t.is(Number(a.revision), 7);
});

test('a revision larger than a frame arrives as fragments that join into it', (t) => {
  const hub = new WatchHub(0, limits);
  const sink = new FakeSink();
  hub.subscribe(5, sink, all, -1, 1000, false);
  hub.publish([change(1, 'a', 't1', 50_000), change(2, 'a', 't2', 10)]);
  const pushes = sink.envelopes().filter((e) => e.bodyType === f.Body.WatchEvents);
  t.true(pushes.length >= 4, 'fragments');
  t.true(sink.frames.every((frame) => frame.byteLength <= limits.frameBytesMax));
  const revisions = sink.revisions(5);
  t.deepEqual(revisions.map((r) => Number(r.revision)), [1, 2]);
  t.is(String(revisions[0]!.tasks[0]!.assignedTask!.slaveHost).length, 50_000);
});

test('a subscriber whose buffer is full catches up from history later, without gaps or repeats', (t) => {
  const hub = new WatchHub(0, limits);
  const slow = new FakeSink();
  const fast = new FakeSink();
  const slowSub = hub.subscribe(1, slow, all, -1, 1000, false) as Subscription;
  hub.subscribe(2, fast, all, -1, 1000, false);
  slow.bufferedBytes = limits.bufferBytes; // full
  for (let r = 1; r <= 50; r++) hub.publish([change(r, 'a')]);
  t.is(slow.revisions(1).length, 0);
  t.is(fast.revisions(2).length, 50);
  t.is(hub.counters.catchups, 1);
  t.is(hub.behind(), 1);
  slow.bufferedBytes = 0;
  hub.drained([slowSub]);
  t.deepEqual(slow.revisions(1).map((r) => Number(r.revision)), Array.from({ length: 50 }, (_, i) => i + 1));
  hub.publish([change(51, 'a')]);
  t.is(slow.revisions(1).length, 51, 'live again');
  t.is(hub.behind(), 0);
});

test('history is bounded: a subscriber left behind it ends with COMPACTED and the oldest revision', (t) => {
  const small = { ...limits, historyBytes: 4096 };
  const hub = new WatchHub(0, small);
  const slow = new FakeSink();
  const slowSub = hub.subscribe(9, slow, all, -1, 1000, false) as Subscription;
  let ended = 0;
  slowSub.onEnded = () => { ended++; };
  slow.bufferedBytes = small.bufferBytes;
  for (let r = 1; r <= 100; r++) hub.publish([change(r, 'a')]);
  t.true(hub.history.bytes <= 4096 + 1024);
  t.true(hub.oldest > 2);
  slow.bufferedBytes = 0;
  hub.drained([slowSub]);
  t.is(ended, 1, 'the owner is told');
  const endedMessage = slow.envelopes().find((e) => e.bodyType === f.Body.WatchEnded)!.body as f.WatchEndedT;
  t.is(endedMessage.error!.code, f.ErrorCode.COMPACTED);
  // It ends as soon as history passes it (not when it drains), with the oldest revision at that moment.
  t.true(Number(endedMessage.error!.revision) >= 2 && Number(endedMessage.error!.revision) <= hub.oldest);
  t.is(Number(endedMessage.lastRevision), 0);
  t.is(hub.size, 0);
  // A new subscription that starts before the history is refused with the oldest revision.
  t.is(hub.subscribe(10, new FakeSink(), all, 1, 1000, false), hub.oldest);
  const fromOldest = new FakeSink();
  t.not(typeof hub.subscribe(11, fromOldest, all, hub.oldest - 1, 1000, false), 'number');
  t.is(fromOldest.revisions(11)[0]!.revision, BigInt(hub.oldest));
});

test('a subscription whose connection refuses frames (closed as a slow consumer) is dropped; the others go on', (t) => {
  const hub = new WatchHub(0, { ...limits, bufferBytes: 1 << 20 });
  const sink = new FakeSink();
  sink.drainOnSend = false;
  sink.closeBytes = 2000;
  const other = new FakeSink();
  hub.subscribe(1, sink, all, -1, 1000, false);
  hub.subscribe(2, other, all, -1, 1000, false);
  for (let r = 1; r <= 40; r++) hub.publish([change(r, 'a', `t${r}`, 200)]);
  t.true(sink.slowClosed);
  t.is(hub.size, 1);
  t.is(other.revisions(2).length, 40);
});

test('progress bookmarks when idle and on request; a future start waits for its revision', (t) => {
  let now = 0;
  const hub = new WatchHub(0, limits, () => now);
  const idle = new FakeSink();
  const s = hub.subscribe(1, idle, compileFilter([], 'nobody', '', '', []), -1, 100, false);
  hub.publish([change(1, 'a'), change(2, 'a')]);
  now = 150;
  hub.tick();
  const progress = idle.envelopes().filter((e) => e.bodyType === f.Body.WatchProgress).map((e) => Number((e.body as f.WatchProgressT).revision));
  t.deepEqual(progress, [2]);
  hub.requestProgress(s as never);
  t.is(idle.envelopes().filter((e) => e.bodyType === f.Body.WatchProgress).length, 2);

  const future = new FakeSink();
  hub.subscribe(2, future, all, 4, 100, false);
  hub.publish([change(3, 'a')]);
  now = 1000;
  hub.tick();
  t.is(future.frames.length, 0, 'nothing before the start, not even progress');
  hub.publish([change(4, 'a'), change(5, 'a')]);
  t.deepEqual(future.revisions(2).map((r) => Number(r.revision)), [5]);
});

test('a gap in the revisions restarts history after it; a reset revision reaches every filter', (t) => {
  const hub = new WatchHub(0, limits);
  const sink = new FakeSink();
  hub.subscribe(1, sink, compileFilter([], 'a', '', '', []), -1, 1000, false);
  hub.publish([change(1, 'a')]);
  const reset = { revision: 2, bytes: encode(make(f.RevisionChangesT, { revision: 2n, reset: true })), keys: [], reset: true };
  hub.publish([reset]);
  t.true(sink.revisions(1)[1]!.reset);
  hub.publish([change(10, 'a')]); // 3..9 never seen
  t.is(hub.oldest, 10);
  const ended = sink.envelopes().find((e) => e.bodyType === f.Body.WatchEnded);
  t.is((ended!.body as f.WatchEndedT).error!.code, f.ErrorCode.COMPACTED);
});

test('every subscriber of one filter gets its own id in the shared frame', (t) => {
  const hub = new WatchHub(0, limits);
  const sinks = [new FakeSink(), new FakeSink(), new FakeSink()];
  sinks.forEach((s, i) => hub.subscribe(100 + i, s, all, -1, 1000, false));
  hub.publish([change(1, 'a')]);
  sinks.forEach((s, i) => t.is((s.envelopes()[0]!.body as f.WatchEventsT).subscription, 100 + i));
});
