/**
 * Every limit of the engine, each with its reason. Owner: any thread (constants only).
 * Configuration may lower a limit, never raise it.
 */
import { assert } from './assert.js';

// Transactions (docs/semantics.md).
export const transactionOpsMax = 4096;            // one group's work must stay bounded for the writer's latency
export const transactionPreconditionsMax = 4096;  // checked before any op; same bound as ops
export const transactionConfigsMax = 1024;        // a txn carries at most this many distinct configs
export const transactionTasksMax = 10_000;        // Aurora batches 1000 status updates; 10x headroom
export const transactionBytesMax = 64 * 1024 * 1024; // a whole transaction's FlatBuffers bytes
export const configBytesMax = 256 * 1024;         // canonical TaskConfig bytes; Aurora's are ~1-20 KiB
export const taskEventsMax = 1024;                // Aurora appends one per transition; keeps a task record bounded
export const updateEventsMax = 65_536;            // per kind per update; Aurora caps instance failures at 20,000
export const identifierBytesMax = 128;            // role, environment, job name, update id
export const textBytesMax = 256;                  // task id, host, client id, slave id
export const messageBytesMax = 4096;              // an event's message
export const idempotencyKeysMax = 65_536;         // remembered (client, sequence) outcomes, oldest forgotten first
export const idempotencyBytesMax = 64 * 1024 * 1024; // and their encoded results: bounded writer heap

// Queries.
export const queryKeysMax = 10_000;               // entries in any vector of a query
export const queryBatchMax = 256;                 // queries handed to one reader task together
export const resultBytesMax = 256 * 1024 * 1024;  // one result; page with offset/limit past this

// Shared memory.
export const arenaBytesMaxLimit = 4 * 1024 * 1024 * 1024 - 64 * 1024; // growable SAB maximum on Node 20, u32 offsets
export const arenaBytesMaxDefault = 3 * 1024 * 1024 * 1024;
export const arenaBytesInitialDefault = 64 * 1024 * 1024;
export const arenaGrowBytesMin = 64 * 1024 * 1024;  // grow in big steps: growth is cheap, page faults come on touch
export const readerSlotsMax = 64;                   // reader threads (and snapshot workers) that can pin at once
export const pinMsMaxDefault = 30_000;              // a reader's pin is cut off past this (DEADLINE_EXCEEDED)
export const snapshotPinMsMax = 10 * 60_000;        // a snapshot's long pin: writing 1M tasks takes minutes
export const writerGroupTransactionsMax = 4096;     // transactions applied before one publish (and one fsync later)
export const groupBytesMax = 64 * 1024 * 1024;      // a group's log record ends past this (one more transaction fits)
export const changesGroupBytesMax = 64 * 1024 * 1024; // and past this of change records (held until its fdatasync)

// Snapshots (docs/formats.md, "Snapshot file").
export const snapshotChunkBytesTarget = 1024 * 1024; // a chunk is closed once its payload passes this
// A chunk holds whole records (a job update's events may span chunks), so its payload is below the target plus
// one record; any record came in one transaction, so it is below transactionBytesMax: twice that is the bound a
// reader accepts before it allocates (a larger length is corruption).
export const snapshotChunkBytesMax = 2 * transactionBytesMax;

assert(arenaBytesMaxDefault <= arenaBytesMaxLimit);
assert(snapshotPinMsMax >= pinMsMaxDefault);
assert(arenaBytesInitialDefault % 65536 === 0);
