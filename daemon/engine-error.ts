/**
 * The engine's typed error. Owner: the main thread (daemon/engine.ts, daemon/reader-pool.ts); the server maps its
 * code to a wire ErrorCode (server.ts engineErrorCode).
 */
export class EngineError extends Error {
  /** The writer's error code when it failed: EIO, ENOSPC, ... (I/O), FORMAT (recovery found corruption), INTERNAL;
   * UNAVAILABLE for a call the engine could not answer now (closing, a reader thread that ended): retry. */
  readonly code: string;
  constructor(message: string, code = 'INTERNAL') {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}
