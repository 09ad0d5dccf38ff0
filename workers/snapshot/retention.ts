/**
 * Retention of a data directory's snapshots, the log before them and committed restores: the daemon's writer
 * after each snapshot, and `strata snapshot create` offline, apply the same rule. Owner: whichever thread holds
 * the data directory (the writer thread, or the offline tool under the lock).
 * Rule: the newest `keep` snapshots stay; log segments whose entries are all at or before the oldest kept
 * snapshot's revision are deleted (never the segment being appended to: removeSegmentsBefore decides); files in
 * restores/ whose restore entry is at or before the oldest kept snapshot are deleted (no recovery needs them).
 */
import { readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDirectory } from '../../core/files.js';
import { listSnapshots } from './read.js';

export interface Retention {
  snapshots: string[];       // paths of the snapshots deleted
  segments: string[];        // names of the log segments deleted
  oldestKept: number | null; // the revision of the oldest snapshot kept
}

export function retainSnapshots(dataDir: string, keep: number,
  removeSegmentsBefore: (revision: number) => string[]): Retention {
  const directory = join(dataDir, 'snapshots');
  const snapshots = listSnapshots(directory);
  const kept = snapshots.slice(0, Math.max(1, keep));
  const removed = snapshots.slice(kept.length);
  for (const old of removed) unlinkSync(old.path);
  if (removed.length > 0) fsyncDirectory(directory);
  const oldest = kept.at(-1);
  if (oldest === undefined) return { snapshots: [], segments: [], oldestKept: null };
  const segments = removeSegmentsBefore(oldest.revision);
  removeOldRestores(join(dataDir, 'restores'), oldest.revision);
  return { snapshots: removed.map((old) => old.path), segments, oldestKept: oldest.revision };
}

/** restores/<revision %016x>-<sha256>.snap: the restore entry at `revision` names it. */
export function restoreFileName(revision: number, sha256Hex: string): string {
  return `${revision.toString(16).padStart(16, '0')}-${sha256Hex}.snap`;
}

/**
 * Deletes the restored backups whose entry is at or before `revision` (every kept snapshot is past them), and
 * copies that never got their entry (an interrupted commit) once they are an hour old.
 */
function removeOldRestores(dir: string, revision: number): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  let removed = 0;
  for (const name of names) {
    const match = /^([0-9a-f]{16})-[0-9a-f]{64}\.snap$/.exec(name);
    const old = match !== null ? parseInt(match[1]!, 16) <= revision :
      Date.now() - statSync(join(dir, name)).mtimeMs > 3_600_000;
    if (old) {
      unlinkSync(join(dir, name));
      removed++;
    }
  }
  if (removed > 0) fsyncDirectory(dir);
}
