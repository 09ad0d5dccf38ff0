#!/usr/bin/env node
/**
 * The `strata` command: the offline tools for a strata data directory and the online commands for a running
 * stratad (cli/commands.ts has the table of commands; docs/operations.md documents them). Owner: this process's
 * main thread.
 * Invariants: the exit code is the command's (process.exitCode once its promise settles, so that buffered output
 * is flushed first); standard output is written in blocks, a reader that goes away (EPIPE, `| head`) ends the
 * process quietly; a long-running command (watch) flushes after each message.
 */
import { writeSync } from 'node:fs';
import { run } from './commands.js';

const outputBlockBytes = 64 * 1024; // one write(2) per block: a dump of millions of lines is not a syscall each

let pending: string[] = [];
let pendingBytes = 0;

function flush(): void {
  if (pending.length === 0) return;
  const block = pending.join('');
  pending = [];
  pendingBytes = 0;
  try {
    writeSync(1, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0);
    throw error;
  }
}

function write(line: string): void {
  pending.push(line, '\n');
  pendingBytes += line.length + 1;
  if (pendingBytes >= outputBlockBytes) flush();
}

function writeError(line: string): void {
  flush();
  process.stderr.write(`${line}\n`);
}

/** A command's work is done once its promise settles; a socket still closing may not hold the process longer. */
const exitGraceMs = 2000;

try {
  process.exitCode = await run(process.argv.slice(2), { write, writeError, flush });
} catch (error) {
  writeError(`strata: ${(error as Error)?.stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  flush();
  setTimeout(() => process.exit(), exitGraceMs).unref();
}
