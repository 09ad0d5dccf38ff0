/**
 * The state of a data directory, recovered in the strata process itself: a WriterCore over SharedArrayBuffers of
 * its own, loaded from the newest snapshot and the log after it, exactly as the daemon's writer thread recovers
 * (workers/writer/recover.ts, workers/writer/restore.ts). Owner: the strata process's main thread (offline, the
 * data directory lock held).
 * Invariants: nothing in the data directory is changed here (a torn tail is reported, not cut; a damaged snapshot
 * is refused, not renamed); the writer logs nothing (recover() turns logging off), and its published revision is
 * the recovered one.
 */
import { FormatError } from '../core/files.js';
import * as layout from '../core/layout.js';
import * as limits from '../core/limits.js';
import { pinClockMs } from '../workers/reader/pin.js';
import { recover, restoredWriter, type Recovery } from '../workers/writer/recover.js';
import { loadSnapshot } from '../workers/writer/restore.js';
import { WriterCore } from '../workers/writer/writer.js';
import { dataDirectorySnapshots, logDirectory } from './tool-support.js';

export interface OfflineWriter {
  writer: WriterCore;
  arena: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

/** An empty writer with the daemon's default limits (the arena grows up to arenaBytesMaxDefault). */
export function newOfflineWriter(): OfflineWriter {
  const arena = new SharedArrayBuffer(limits.arenaBytesInitialDefault, { maxByteLength: limits.arenaBytesMaxDefault });
  const control = new SharedArrayBuffer(layout.controlBytes);
  const writer = new WriterCore({ arena, control, arenaBytesMax: limits.arenaBytesMaxDefault,
    pinMsMax: limits.pinMsMaxDefault, now: pinClockMs });
  return { writer, arena, control };
}

export interface OfflineRecovery extends OfflineWriter {
  recovery: Recovery;
}

/**
 * Recovers the state of `dataDir`: the newest snapshot (if any) loaded with loadSnapshot, then the log after it
 * replayed. Throws FormatError (file and offset) for a damaged newest snapshot or a corrupt log. Unlike the
 * daemon, it does not set a damaged snapshot aside for an older one: an offline tool changes nothing it was not
 * asked to, and the operator decides (the message says what the daemon would do).
 */
export function recoverDataDirectory(dataDir: string): OfflineRecovery {
  const offline = newOfflineWriter();
  const newest = dataDirectorySnapshots(dataDir)[0];
  const fresh = (): WriterCore => new WriterCore({ arena: offline.arena, control: offline.control,
    arenaBytesMax: limits.arenaBytesMaxDefault, pinMsMax: limits.pinMsMaxDefault, now: pinClockMs });
  const recovery = recover(offline.writer, logDirectory(dataDir), () => {
    if (newest === undefined) return null;
    try {
      return { path: newest.path, revision: loadSnapshot(offline.writer, newest.path).revision };
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      throw new FormatError(error.file, error.offset, `${error.reason} (the newest snapshot is damaged: the ` +
        'daemon would set it aside and start from the next older one if that and the log reach its revision, ' +
        'and refuse otherwise; move it aside and run again, or ' +
        'inspect it with strata snapshot dump)');
    }
  }, (entry, revision) => restoredWriter(dataDir, entry, revision, fresh));
  return { ...offline, writer: recovery.writer, recovery };
}
