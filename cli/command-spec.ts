/**
 * The shape of a row of the strata command's table (cli/commands.ts) and the argument parsers the rows share.
 * Owner: the strata process's main thread.
 * Invariants: a parser accepts a value or throws UsageError naming the flag and what it takes (exit code 2);
 * none of them touches a data directory or the network.
 */
import { type Output, UsageError, type Write } from './tool-support.js';

export interface Io extends Output {
  writeError: Write;
  /** Writes what is buffered now (a long-running command, `watch`, calls it after each message). */
  flush?: () => void;
}

export interface OptionSpec {
  name: string;
  type: 'string' | 'boolean';
  /** The option may be given more than once (its values are a list; commas also separate values). */
  multiple?: boolean;
  value?: string;          // the placeholder in help: REV, DIR, ...
  description: string;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  description: string[];
  options: OptionSpec[];
  /** The one positional argument the command takes, if any (its placeholder in help: FILE). */
  positional?: string;
  /** Talks to a running daemon: asynchronous, and its help lists the online exit codes. */
  online?: boolean;
  run(values: Values, io: Io, positional: string | undefined): number | Promise<number>;
}

/** A decimal integer argument >= `least`; `what` names it in the message (a revision, a count). */
export function integer(flag: string, value: Values[string], least: number, what: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  const parsed = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(parsed) || parsed < least) {
    throw new UsageError(`--${flag} takes ${what} (an integer >= ${least}), not ${JSON.stringify(text)}`);
  }
  return parsed;
}

export const revision = (flag: string, value: Values[string]) => integer(flag, value, 0, 'a revision');
export const count = (flag: string, value: Values[string]) => integer(flag, value, 1, 'a count');

export function required(flag: string, value: Values[string]): string | boolean | string[] {
  if (value === undefined) throw new UsageError(`--${flag} is required`);
  return value;
}

/** A string option (undefined when absent). */
export function text(values: Values, flag: string): string | undefined {
  const value = values[flag];
  return value === undefined ? undefined : String(value);
}

/** The values of a `multiple` option, commas splitting them too (`--status RUNNING,PENDING --status KILLED`). */
export function list(values: Values, flag: string): string[] {
  const value = values[flag];
  if (value === undefined || typeof value === 'boolean') return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((item) => item.split(',')).map((item) => item.trim()).filter((item) => item !== '');
}
