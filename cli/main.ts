#!/usr/bin/env node
/**
 * The `strata` command: operator tools for a strata data directory (today the offline log tools; see
 * cli/commands.ts for the table of commands and docs/operations.md). Owner: this process's main thread.
 * Invariants: the exit code is the command's (process.exitCode, so that buffered output is flushed first);
 * standard output is written in blocks, a reader that goes away (EPIPE, `| head`) ends the process quietly.
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

try {
  process.exitCode = run(process.argv.slice(2), { write, writeError });
} catch (error) {
  writeError(`strata: ${(error as Error)?.stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  flush();
}
