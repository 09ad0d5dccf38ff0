#!/usr/bin/env node
/**
 * stratad: what `npm start` runs. Owner: the main thread.
 * Opens the engine on the data directory (recovery: newest snapshot + log replay), prints its state as one JSON
 * line, answers SIGINT/SIGTERM by closing cleanly (the group in flight is finished and synced), and stays up.
 * The network face (WebSockets, HTTP admin) and configuration files arrive with the network issue; see README.md.
 * Exit codes: daemon/exit-codes.ts.
 */
import { resolve } from 'node:path';
import { LockedError } from '../core/lock.js';
import { Engine, EngineError } from './engine.js';
import { exitCodeFor, exitLocked, exitUsage } from './exit-codes.js';

function fail(message: string, code: number): never {
  process.stderr.write(`${JSON.stringify({ msg: 'stratad failed', error: message, exitCode: code })}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const readerThreads = process.env.STRATA_READER_THREADS === undefined ? undefined :
    Number(process.env.STRATA_READER_THREADS);
  if (readerThreads !== undefined && !(Number.isInteger(readerThreads) && readerThreads >= 1)) {
    fail('STRATA_READER_THREADS must be a positive integer', exitUsage);
  }
  const dataDir = resolve(process.env.STRATA_DATA_DIR ?? 'data');
  let engine: Engine;
  try {
    engine = await Engine.open({
      readerThreads, dataDir,
      // Fail-stop: the writer died (an I/O error of the log, or a bug). Nothing more is acknowledged; exit so
      // that the supervisor restarts us and recovery brings back everything acknowledged.
      onFailure: (error) => fail(String(error?.message ?? error), exitCodeFor((error as EngineError).code ?? 'INTERNAL')),
    });
  } catch (error) {
    if (error instanceof LockedError) fail(error.message, exitLocked);
    if (error instanceof EngineError) fail(error.message, exitCodeFor(error.code));
    throw error;
  }
  const stats = engine.stats();
  process.stdout.write(`${JSON.stringify({ msg: 'stratad engine running', pid: process.pid, dataDir, ...stats,
    recovery: engine.recovery, network: 'not yet (issue 5)' })}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${JSON.stringify({ msg: 'stratad stopping', signal })}\n`);
    engine.close().then(() => process.exit(0), (error: unknown) => {
      process.stderr.write(`stratad: close failed: ${String(error)}\n`);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Keep the event loop alive until a signal: the engine's workers do not hold it open by themselves.
  setInterval(() => undefined, 1 << 30);
}

main().catch((error: unknown) => {
  process.stderr.write(`stratad: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
