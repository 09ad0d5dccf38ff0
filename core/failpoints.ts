/**
 * Named failpoints for crash and fault tests. Owner: any thread (each thread parses the variable once).
 * No-ops unless STRATA_FAILPOINTS is set: `name=action[@N]` entries separated by commas, where the action fires
 * on the Nth time the point is reached (default 1, then on every later hit too):
 *   kill     the process dies at once with SIGKILL (a crash: nothing after this point happens)
 *   eio      the I/O at this point fails with EIO
 *   enospc   the I/O at this point fails with ENOSPC
 *   partial  (write points only) half of the bytes are written, then SIGKILL: a torn write
 *   crash    the thread ends at once (process.exit in a worker thread ends that thread only; on the main thread,
 *            the process): a crashed worker, for the tests of the pool and the fail-stop paths
 *   hang     the thread blocks for ever (Atomics.wait): a stuck fsync or a livelock, for the watchdog tests
 * Example: STRATA_FAILPOINTS=log.after-write=kill@3,snapshot.before-rename=eio
 * Points (grep `failpoint(`): log.before-write (the group's write), log.partial-write, log.after-write (written,
 * not synced: the fdatasync fails), log.after-sync (fdatasync done, then reported failed), log.segment-create (a
 * segment cut), log.before-publish; in the snapshot worker, by what it writes (workers/snapshot/write.ts):
 * snapshot.write, snapshot.sync, snapshot.before-rename, snapshot.after-rename, and the same four as backup.*
 * for a backup; reader.query (in a reader thread, while it holds its pin).
 * A snapshot worker counts its hits from zero, and its points are armed only in the first snapshot worker and the
 * first backup worker of a writer thread (workers/snapshot/spawn.ts): the next snapshot runs clean.
 */
export type FailAction = 'kill' | 'eio' | 'enospc' | 'partial' | 'crash' | 'hang';

interface Point { action: FailAction; at: number; hits: number }

const points = new Map<string, Point>();
const spec = process.env.STRATA_FAILPOINTS ?? '';
for (const entry of spec.split(',')) {
  if (entry.trim() === '') continue;
  const match = /^([\w.-]+)=(kill|eio|enospc|partial|crash|hang)(?:@(\d+))?$/.exec(entry.trim());
  if (match === null) throw new Error(`STRATA_FAILPOINTS: cannot parse ${JSON.stringify(entry)}`);
  points.set(match[1]!, { action: match[2] as FailAction, at: Number(match[3] ?? 1), hits: 0 });
}

export const failpointsEnabled = points.size > 0;

/** An error as Node's fs raises it, for an injected fault. */
export function ioError(code: 'EIO' | 'ENOSPC', syscall: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: injected by failpoint, ${syscall}`);
  error.code = code;
  error.syscall = syscall;
  error.errno = code === 'EIO' ? -5 : -28;
  return error;
}

/**
 * Reaches the point `name`: returns null (nothing to do), or 'partial' for a write point that must tear its
 * write; kills the process or throws the injected I/O error itself.
 */
export function failpoint(name: string): 'partial' | null {
  if (!failpointsEnabled) return null;
  const point = points.get(name);
  if (point === undefined) return null;
  point.hits++;
  if (point.hits < point.at) return null;
  switch (point.action) {
    case 'kill': process.kill(process.pid, 'SIGKILL'); return null;
    case 'eio': throw ioError('EIO', name);
    case 'enospc': throw ioError('ENOSPC', name);
    case 'partial': return 'partial';
    case 'crash': process.exit(70); return null;
    case 'hang': Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); return null;
  }
}

/** SIGKILL now (after a partial write). */
export function crashNow(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL');
}
