/**
 * The offline log tools of the strata command, as functions: each takes its options and an Output (a write(line)
 * callback, and optionally one for errors), works on the data directory of a stopped daemon under its lock, and
 * returns the command's exit code. Owner: the strata process's main thread, or a test's thread.
 * Invariants: see each tool's module; none of them changes a byte it has not first kept a copy of.
 */
export { logDump, opNames, parseOpName, type DumpOptions } from './log-dump.js';
export { logEdit, readReplacement, type EditOptions } from './log-edit.js';
export { logTruncate, type TruncateOptions } from './log-truncate.js';
export { checkLog, logVerify, replayLog, type LogCheck, type LogProblem, type VerifyOptions } from './log-verify.js';
export {
  exitFailure, exitLocked, exitOk, exitTornTail, exitUsage, type OfflineOptions, type Output, type Write,
} from './tool-support.js';
