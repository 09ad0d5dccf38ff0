/**
 * Shared-memory layout: the control block, the root block, and the fixed records in the arena.
 * Owner: any thread (constants only). Offsets are in bytes unless named `Word` (u32 index = bytes / 4).
 *
 * Control block (its own small SharedArrayBuffer, Int32Array view):
 *
 *   word 0  epochPublished   serial number of the last publish (wraps; compare with (a - b) | 0)
 *   word 1  rootPublished    arena offset of the root block of that publish
 *   word 2  writerState      0 starting, 1 running, 2 stopped
 *   word 3  arenaBytes       arena byteLength the writer last grew to (informational)
 *   word 4  arenaBytesUsed   bytes allocated and not yet reusable, at the last publish (informational)
 *   word 5  slotsClaimed     1 + the highest slot index ever claimed: the writer scans slots below it only
 *   word 8 + slot * 4 ...    reader slots: [owner threadId + 1 (0 free), pinnedEpoch, pinState, spare]
 *                            pinState: 0 idle, 1 pinned (a query: expires after pinMsMax), 2 expired,
 *                            3 pinned long (a snapshot: expires after snapshotPinMsMax)
 *
 *   Float64Array view, index 136 + slot (after the slots' words): the time (pinClockMs()) the slot's pin was taken.
 *
 * Publish protocol: the writer writes a new immutable root block, then Atomics.store(rootPublished), then
 * Atomics.store(epochPublished). A reader stores its pin (the epoch it read) before loading rootPublished and
 * then re-checks epochPublished; any root it then loads is at least as new as its pin, and everything reachable
 * from such a root was retired at a later epoch, so the writer keeps it.
 */
import { assert } from './assert.js';
import { readerSlotsMax } from './limits.js';

export const controlEpochPublishedWord = 0;
export const controlRootPublishedWord = 1;
export const controlWriterStateWord = 2;
export const controlArenaBytesWord = 3;
export const controlArenaBytesUsedWord = 4;
export const controlSlotsClaimedWord = 5;
export const controlSlotsWord = 8;
export const controlSlotWords = 4;
export const slotOwnerWord = 0;
export const slotEpochWord = 1;
export const slotStateWord = 2;
export const slotStateIdle = 0;
export const slotStatePinned = 1;
export const slotStateExpired = 2;          // set by the writer: the pin was older than its limit and is ignored
export const slotStatePinnedLong = 3;       // a snapshot's pin: honoured up to snapshotPinMsMax, not pinMsMax
export const controlPinTimeF64 = 136;        // Float64Array index of slot 0's pin time (byte 1088)
export const controlBytes = (controlPinTimeF64 + readerSlotsMax) * 8;
export const writerStateStarting = 0;
export const writerStateRunning = 1;
export const writerStateStopped = 2;

assert(controlSlotsWord + readerSlotsMax * controlSlotWords <= controlPinTimeF64 * 2);

export function slotWord(slotIndex: number, field: number): number {
  return controlSlotsWord + slotIndex * controlSlotWords + field;
}

// Root block: one per publish, immutable, in the arena.
//   f64 revision | u32 epoch | u32 taskCount | u32 configCount | then one u32 per table root.
export const rootRevisionF64 = 0;             // byte offset 0
export const rootEpochWord = 2;
export const rootTaskCountWord = 3;
export const rootConfigCountWord = 4;
export const rootRowsWord = 5;                // radix: task row -> task record
export const rootRowsDepthWord = 6;
export const rootTaskIdTreeWord = 7;          // btree (id prefix, id string) -> row
export const rootJobIndexWord = 8;            // btree (role, env, name, row)
export const rootHostIndexWord = 9;           // btree (host, row)
export const rootStatusIndexWord = 10;        // btree (status, row)
export const rootRoleAggWord = 11;            // btree (role) -> aggregate
export const rootEnvAggWord = 12;             // btree (role, env) -> aggregate
export const rootJobAggWord = 13;             // btree (role, env, name) -> aggregate
export const rootConfigsWord = 14;            // radix: config row -> config blob
export const rootConfigsDepthWord = 15;
export const rootStringsWord = 16;            // radix: string id -> string blob
export const rootStringsDepthWord = 17;
export const rootInternWord = 18;             // btree (hash32, string id)
export const rootCronWord = 19;               // btree (role, env, name) -> record blob
export const rootUpdateWord = 20;             // btree (role, env, name, update id string) -> update record
export const rootQuotaWord = 21;              // btree (role) -> record blob
export const rootHostAttributesWord = 22;     // btree (host) -> record blob
export const rootMaintenanceWord = 23;        // btree (host) -> record blob
export const rootSchedulerWord = 24;          // record blob or 0
export const rootConfigHashWord = 25;         // btree (hash words 0..3) -> config row
export const rootWords = 26;
export const rootBytes = rootWords * 4;

// Task record (fixed size, immutable once published; a new one per change).
export const taskIdWord = 0;              // string blob of the task id (shared by every version of the task)
export const taskConfigRowWord = 1;
export const taskInstanceWord = 2;        // i32
export const taskStatusWord = 3;
export const taskFailureCountWord = 4;    // i32
export const taskTimesPartitionedWord = 5;// i32
export const taskHostWord = 6;            // interned string id of slave_host, 0 = none
export const taskSlaveIdWord = 7;         // string blob or 0
export const taskAncestorWord = 8;        // string blob or 0
export const taskPortsWord = 9;           // ports blob or 0
export const taskEventsWord = 10;         // newest event node or 0
export const taskEventCountWord = 11;
export const taskRoleWord = 12;           // interned ids of the config's job key
export const taskEnvWord = 13;
export const taskNameWord = 14;
// F64 indexes are in 8-byte units from the start of the record (records are 8-byte aligned).
export const taskModRevisionF64 = 8;      // bytes 64..71
export const taskCreateRevisionF64 = 9;   // bytes 72..79
export const taskRecordBytes = 80;

// Task event node: a persistent list, newest first, shared by every later version of the task.
export const eventPrevWord = 0;
export const eventMessageWord = 1;        // string blob or 0
export const eventSchedulerWord = 2;      // interned string id or 0
export const eventStatusWord = 3;
export const eventTimestampF64 = 2;       // byte 16
export const eventNodeBytes = 24;

// Aggregate block: counts and active resources of a role, a role/env or a job.
export const aggStatusCountsWord = 0;     // 19 i32 counts, indexed by ScheduleStatus value
export const aggTaskCountWord = 19;
export const aggJobsWithTasksWord = 20;   // role and role/env aggregates: jobs with at least one task
export const aggCronCountWord = 21;       // cron jobs (1 or 0 for a job)
export const aggJobCountWord = 22;        // jobs with tasks or a cron job
export const aggEpochF64 = 12;            // byte 96: the epoch that wrote the block (writer's copy-on-write)
export const aggTotalsF64 = 13;           // byte 104: 4 buckets x 4 resources (cpus, ram, disk, gpus)
export const aggBytes = 104 + 16 * 8;     // 232
export const bucketProdShared = 0;
export const bucketProdDedicated = 1;
export const bucketNonProdShared = 2;
export const bucketNonProdDedicated = 3;
export const statusValueCount = 19;

// Record blobs for the small tables: [u32 length][u32 flags][f64 modRevision][FlatBuffers bytes].
export const blobLengthWord = 0;
export const blobModRevisionF64 = 1;
export const blobHeaderBytes = 16;

// Job update record: the update (FlatBuffers JobUpdate, configs by hash) plus event lists.
export const updateBlobWord = 0;          // record blob of the JobUpdate (summary.state left out)
export const updateEventsWord = 1;        // newest-first list of JobUpdateEvent blobs, by timestamp
export const updateEventCountWord = 2;
export const updateInstanceEventsWord = 3;
export const updateInstanceEventCountWord = 4;
export const updateIdStringWord = 5;      // string id of the update id (interned)
export const updateModRevisionF64 = 3;    // byte 24
export const updateRecordBytes = 32;
// An update event list node: [u32 prev][u32 blob][f64 timestamp].
export const listPrevWord = 0;
export const listBlobWord = 1;
export const listTimestampF64 = 1;
export const listNodeBytes = 16;
