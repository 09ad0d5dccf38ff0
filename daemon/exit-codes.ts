/**
 * stratad's exit codes (sysexits.h where one fits), in one place: docs/operations.md lists them and systemd's
 * RestartPreventExitStatus= names the ones a restart cannot fix. Owner: any thread (constants).
 */
export const exitOk = 0;
export const exitUsage = 64;        // EX_USAGE: bad flags or configuration; a restart will not help
export const exitCorrupt = 65;      // EX_DATAERR: recovery found corruption before the log's tail; see strata log verify
export const exitInternal = 70;     // EX_SOFTWARE: the writer died of a bug; restart recovers
export const exitLocked = 73;       // EX_CANTCREAT: another process holds the data directory
export const exitIo = 74;           // EX_IOERR: a log or snapshot write/sync failed (EIO, ENOSPC): fail-stop; restart recovers

/** The exit code for the writer's failure code (EngineError.code). */
export function exitCodeFor(code: string): number {
  if (code === 'FORMAT') return exitCorrupt;
  if (code === 'EIO' || code === 'ENOSPC' || code === 'EDQUOT' || code === 'EROFS' || code === 'EBADF') return exitIo;
  return exitInternal;
}
