/**
 * Frame generators for fuzzing the daemon's decoder and session machine (test/fuzz.test.ts without load,
 * test/faults/fuzz-load.test.ts under load). Owner: tests only.
 * Invariants: every frame is a function of the Prng's sequence alone (a seed reproduces a run); frames stay below
 * `frameBytesMax` of the tests' daemons unless a generator says it is oversized; the valid bases touch only the
 * roles `f` and `seed` (never a bystander's role).
 */
import { Prng } from '../../core/prng.js';
import { encode } from '../../core/codec.js';
import { jobConfig, task, txn, upsert, transition, taskQuery, query } from './build.js';
import { f, make } from './raw-client.js';

/** Valid envelopes of every request type the fuzzers start from. */
export function validEnvelopes(): Uint8Array[] {
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

/** Valid envelopes around invalid contents: enum values no schema version has, out-of-range numbers. */
export function unknownEnumEnvelopes(): Uint8Array[] {
  const config = jobConfig('f', 'prod', 'fz');
  const bad = 77 as never;
  const bodies: [f.Body, object][] = [
    [f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([transition('fz-1', bad)])] })],
    [f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert([task('fz-2', config, 2, bad)])])] })],
    [f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...txn([upsert([task('fz-3', config, 3)])], {
      preconditions: [make(f.PreconditionT, { table: bad, kind: bad, taskId: 'fz-3' })] })] })],
    [f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...query(bad, new f.RoleSummaryQueryT())] })],
    [f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request: [...taskQuery({ role: 'seed', statuses: [bad, 200 as never] })] })],
    [f.Body.WatchRequest, make(f.WatchRequestT, { afterRevision: -5n, filter: make(f.WatchFilterT, { tables: [bad, 255 as never] }) })],
    [f.Body.Hello, make(f.HelloT, { protocolMin: 9, protocolMax: 3 })],
  ];
  return bodies.map(([type, body], i) => encode(make(f.EnvelopeT, { id: 2000 + i, bodyType: type, body: body as never })));
}

/** One mutation of `base`: bytes flipped, cut, extended, the body type swapped, offsets moved, or plain noise. */
export function mutate(r: Prng, base: Uint8Array): Uint8Array {
  const kind = r.int(6);
  const out = base.slice();
  if (out.length === 0) return out; // an empty frame (a mutation of a mutation) is a case of its own
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
    if (out.length < 4) return out;
    const at = r.int(Math.max(1, out.length - 4)) & ~3;
    new DataView(out.buffer).setUint32(at, r.next() >>> 0, true);
    return out;
  }
  const noise = new Uint8Array(r.int(200)); // plain noise
  for (let i = 0; i < noise.length; i++) noise[i] = r.int(256);
  return noise;
}

/** A u32 that could be a vector's or a string's length made huge: the reader must not trust it. */
export function hugeLength(r: Prng, base: Uint8Array): Uint8Array {
  const out = base.slice();
  const view = new DataView(out.buffer);
  const candidates: number[] = [];
  for (let at = 0; at + 4 <= out.length; at += 4) if (view.getUint32(at, true) < out.length) candidates.push(at);
  const at = candidates.length > 0 ? candidates[r.int(candidates.length)]! : 0;
  if (out.length >= 4) view.setUint32(at, 0x0100_0000 + (r.next() >>> 8), true);
  return out;
}

/** A valid envelope around a mutated nested buffer (the commit's transaction, the query's request). */
export function nestedMutation(r: Prng): Uint8Array {
  const config = jobConfig('f', 'prod', 'fz');
  const inner = [txn([upsert([task(`fz-${r.int(8)}`, config, r.int(8))])]), taskQuery({ role: 'seed', limit: 5 })];
  const which = r.int(2);
  const bytes = r.int(2) === 0 ? mutate(r, inner[which]!) : hugeLength(r, inner[which]!);
  const body = which === 0 ? make(f.CommitRequestT, { transaction: [...bytes] }) :
    make(f.QueryRequestMessageT, { request: [...bytes] });
  return encode(make(f.EnvelopeT, { id: 3000 + r.int(1000), bodyType: which === 0 ? f.Body.CommitRequest : f.Body.QueryRequestMessage,
    body: body as never }));
}

/** One fuzz frame of any kind but oversized: a Uint8Array (binary) or a string (a text frame). */
export function fuzzFrame(r: Prng, bases: Uint8Array[]): Uint8Array | string {
  const kind = r.int(10);
  if (kind < 5) return mutate(r, bases[r.int(bases.length)]!);
  if (kind === 5) return hugeLength(r, bases[r.int(bases.length)]!);
  if (kind === 6) return nestedMutation(r);
  if (kind === 7) return bases[r.int(bases.length)]!; // valid, or valid around an unknown enum value
  if (kind === 8) return String.fromCharCode(...Array.from({ length: r.int(64) }, () => 32 + r.int(95))); // text
  return mutate(r, mutate(r, bases[r.int(bases.length)]!));
}
