/**
 * `strata snapshot dump`: prints a snapshot file as readable lines or JSON lines. Owner: the CLI process (offline:
 * it reads a file, never a running daemon's memory).
 * Invariants: every chunk is checked before its records are printed (workers/snapshot/read.ts); on damage the
 * lines printed so far stay printed and the FormatError (file and offset) is thrown to the caller, which prints it
 * and exits non-zero. One line per record: output stays greppable and streamable. No lock is taken: an installed
 * snapshot is never changed (a new one gets a new name), so a running daemon's snapshots can be dumped too.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { decodeConfig } from '../core/config.js';
import {
  HostAttributesT, HostMaintenanceRequestT, IdempotencyEntryT, JobConfigurationT, JobUpdateDetailsT,
  MaintenanceMode, QuotaT, ScheduledTaskT, ScheduleStatus, SchedulerMetadataT, SnapshotChunk,
} from '../core/fbs/strata.js';
import { decodeHeader, headerBytes, magicSnapshot } from '../core/files.js';
import { text } from '../core/text.js';
import { forEachSnapshotChunk } from '../workers/snapshot/read.js';
import {
  dataDirectorySnapshots, exitFailure, exitOk, failed, type Output, snapshotDirectory, UsageError,
} from './tool-support.js';

export interface SnapshotDumpOptions {
  json: boolean;
}

/** Byte fields of the object API ([ubyte] vectors unpack as number[]): printed as hex. */
const byteFields = new Set(['hash', 'configHash', 'result']);

/** A JSON-ready copy of an object-API value: bigint as a number when exact (else a string), bytes as hex. */
export function plainValue(value: unknown, field = ''): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (Array.isArray(value)) {
    return byteFields.has(field) ? Buffer.from(value as number[]).toString('hex') : value.map((item) => plainValue(item));
  }
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = plainValue(item, key);
  return out;
}

function readHeader(path: string): ReturnType<typeof decodeHeader> {
  const fd = openSync(path, 'r');
  try {
    const bytes = new Uint8Array(headerBytes);
    const read = readSync(fd, bytes, 0, headerBytes, 0);
    return decodeHeader(bytes.subarray(0, read), magicSnapshot, path);
  } finally {
    closeSync(fd);
  }
}

const hex8 = (bytes: ArrayLike<number>): string => Buffer.from(Uint8Array.from(bytes)).toString('hex').slice(0, 8);
const jobOf = (key: { role: unknown; environment: unknown; name: unknown } | null): string =>
  key === null ? '-' : `${text(key.role as string)}/${text(key.environment as string)}/${text(key.name as string)}`;

/** Writes the header, every chunk and record, and the end chunk's counts, one line each. */
export function snapshotDump(path: string, options: SnapshotDumpOptions, write: (line: string) => void): void {
  const header = readHeader(path);
  const out = (kind: string, fields: Record<string, unknown>, textLine: string): void => {
    write(options.json ? JSON.stringify(plainValue({ kind, ...fields })) : textLine);
  };
  out('header', { magic: header.magic, version: header.version, revision: header.a, createdMs: header.b,
    schemaHash: header.schemaHashHex },
  `header ${header.magic} version ${header.version} revision ${header.a} created ` +
    `${new Date(Number(header.b)).toISOString()} schema ${header.schemaHashHex.slice(0, 16)}`);
  const info = forEachSnapshotChunk(path, (chunk, place) => {
    out('chunk', { index: place.index, offset: place.offset, bytes: place.bytes },
      `chunk ${place.index} at ${place.offset}: ${place.bytes} bytes`);
    dumpChunk(chunk, out);
  });
  out('end', { revision: info.revision, term: info.term, createdMs: info.createdMs, counts: info.counts,
    bytes: info.bytes, chunks: info.chunks },
  `end revision ${info.revision} term ${info.term} chunks ${info.chunks} bytes ${info.bytes} ` +
    Object.entries(info.counts).map(([key, count]) => `${key} ${count}`).join(' '));
}

export interface SnapshotDumpCommand extends SnapshotDumpOptions {
  /** The snapshot file; absent: a snapshot of `dataDir`. */
  file?: string;
  dataDir: string;
  /** With dataDir: the snapshot of this revision (default: the newest). */
  revision?: number;
}

/** The file `strata snapshot dump` reads: FILE, or the newest (or --revision's) snapshot of the data directory. */
function dumpPath(options: SnapshotDumpCommand): string | null {
  if (options.file !== undefined) {
    if (options.revision !== undefined) throw new UsageError('--revision goes with --data-dir, not with FILE');
    return options.file;
  }
  const snapshots = dataDirectorySnapshots(options.dataDir);
  if (options.revision === undefined) return snapshots[0]?.path ?? null;
  const found = snapshots.find((snapshot) => snapshot.revision === options.revision);
  if (found === undefined) {
    throw new UsageError(`--revision ${options.revision}: no snapshot of that revision in ` +
      `${snapshotDirectory(options.dataDir)} (${snapshots.length === 0 ? 'there is none' : `there are: ` +
        snapshots.map((snapshot) => snapshot.revision).join(', ')})`);
  }
  return found.path;
}

/** `strata snapshot dump`: exit 0, 1 for a damaged or unreadable file (named with the offset), 2 for usage. */
export function snapshotDumpCommand(options: SnapshotDumpCommand, output: Output): number {
  try {
    const path = dumpPath(options);
    if (path === null) {
      (output.writeError ?? output.write)(`strata: no snapshot in ${snapshotDirectory(options.dataDir)} (give a ` +
        'FILE, or --data-dir)');
      return exitFailure;
    }
    snapshotDump(path, options, output.write);
    return exitOk;
  } catch (error) {
    return failed(error, 'strata snapshot dump', output);
  }
}

type Out = (kind: string, fields: Record<string, unknown>, textLine: string) => void;

function dumpChunk(chunk: SnapshotChunk, out: Out): void {
  for (let i = 0; i < chunk.configsLength(); i++) {
    const stored = chunk.configs(i)!.unpack();
    const config = decodeConfig(Uint8Array.from(stored.bytes));
    const hash = Buffer.from(stored.hash).toString('hex');
    out('config', { hash, refs: chunk.configRefs(i), bytes: stored.bytes.length, config },
      `config ${hash} refs ${chunk.configRefs(i)} bytes ${stored.bytes.length} job ${jobOf(config.job)}`);
  }
  for (let i = 0; i < chunk.tasksLength(); i++) {
    const task: ScheduledTaskT = chunk.tasks(i)!.unpack();
    const assigned = task.assignedTask!;
    out('task', { task }, `task ${text(assigned.taskId)} ${ScheduleStatus[task.status]} instance ` +
      `${assigned.instanceId} config ${hex8(assigned.configHash)} host ${text(assigned.slaveHost) || '-'} events ` +
      `${task.taskEvents.length} mod ${task.modRevision} create ${task.createRevision}`);
  }
  for (let i = 0; i < chunk.cronJobsLength(); i++) {
    const job: JobConfigurationT = chunk.cronJobs(i)!.unpack();
    out('cron', { job }, `cron ${jobOf(job.key)} schedule ${JSON.stringify(text(job.cronSchedule))} instances ` +
      `${job.instanceCount} config ${hex8(job.configHash)} mod ${job.modRevision}`);
  }
  for (let i = 0; i < chunk.jobUpdatesLength(); i++) {
    const details: JobUpdateDetailsT = chunk.jobUpdates(i)!.unpack();
    const key = details.update?.summary?.key ?? null;
    const continued = details.update?.instructions === null;
    out('update', { continued, details }, `update ${jobOf(key?.job ?? null)}/${text(key?.id)}` +
      `${continued ? ' (continued)' : ''} events ${details.updateEvents.length} instance events ` +
      `${details.instanceEvents.length} mod ${details.modRevision}`);
  }
  for (let i = 0; i < chunk.quotasLength(); i++) {
    const quota: QuotaT = chunk.quotas(i)!.unpack();
    out('quota', { quota }, `quota ${text(quota.role)} resources ${quota.quota?.resources.length ?? 0} mod ` +
      `${quota.modRevision}`);
  }
  for (let i = 0; i < chunk.hostsLength(); i++) {
    const host: HostAttributesT = chunk.hosts(i)!.unpack();
    out('host', { host }, `host ${text(host.host)} mode ${MaintenanceMode[host.mode]} attributes ` +
      `${host.attributes.length} mod ${host.modRevision}`);
  }
  for (let i = 0; i < chunk.maintenanceLength(); i++) {
    const request: HostMaintenanceRequestT = chunk.maintenance(i)!.unpack();
    out('maintenance', { request }, `maintenance ${text(request.host)} timeout ${request.timeoutSecs} s mod ` +
      `${request.modRevision}`);
  }
  const scheduler = chunk.scheduler();
  if (scheduler !== null) {
    const metadata: SchedulerMetadataT = scheduler.unpack();
    out('scheduler', { metadata }, `scheduler framework ${text(metadata.frameworkId)} details ` +
      `${metadata.details.length} mod ${metadata.modRevision}`);
  }
  for (let i = 0; i < chunk.idempotencyLength(); i++) {
    const entry: IdempotencyEntryT = chunk.idempotency(i)!.unpack();
    out('idempotency', { entry }, `idempotency ${text(entry.clientId)} ${entry.sequence} result ` +
      `${entry.result.length} bytes`);
  }
}
