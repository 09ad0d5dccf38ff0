#!/usr/bin/env node
/**
 * stratad: what `npm start` runs. Owner: the main thread.
 * For now it opens the engine (writer worker and reader pool over shared memory), prints its state as one JSON
 * line, answers SIGINT/SIGTERM by closing cleanly, and stays up. The network face (WebSockets, HTTP admin),
 * durability (log, snapshots) and configuration files arrive with the issues that follow; see README.md.
 */
import { Engine } from './engine.js';

const exitWriterFailed = 70; // EX_SOFTWARE: an internal error; systemd restarts the daemon

async function main(): Promise<void> {
  const readerThreads = process.env.STRATA_READER_THREADS === undefined ? undefined :
    Number(process.env.STRATA_READER_THREADS);
  if (readerThreads !== undefined && !(Number.isInteger(readerThreads) && readerThreads >= 1)) {
    process.stderr.write('stratad: STRATA_READER_THREADS must be a positive integer\n');
    process.exit(2);
  }
  const engine = await Engine.open({
    readerThreads,
    // Fail-stop: the writer died (a bug). Nothing more can be committed; exit so that the supervisor restarts us.
    onFailure: (error) => {
      process.stderr.write(`${JSON.stringify({ msg: 'stratad writer failed', error: String(error?.stack ?? error) })}\n`);
      process.exit(exitWriterFailed);
    },
  });
  const stats = engine.stats();
  process.stdout.write(`${JSON.stringify({ msg: 'stratad engine running', pid: process.pid, ...stats,
    network: 'not yet (issue 5)', durability: 'not yet: in memory only (issue 4)' })}\n`);
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
