/**
 * The strata command's dispatcher: one table of commands (a name of one or more words, its options, at most one
 * positional argument, its help, and the function that runs it), parsed with node:util parseArgs. The offline
 * tools (log, snapshot create/dump, backup restore) work on a data directory; the online commands
 * (cli/online-commands.ts: status, query, watch, txn, backup, ...) talk to a running stratad. Owner: the strata
 * process's main thread.
 * Invariants: every command and command group answers --help (exit 0); any mistake in the arguments is exit 2
 * with a one-line message naming the help to read; a command's exit code is what its function returns (or
 * resolves to: online commands are asynchronous); the longest command name that matches the words wins
 * (`snapshot dump` before `snapshot`).
 */
import { parseArgs } from 'node:util';
import {
  exitFailure, exitLocked, exitOk, exitTornTail, exitUsage, logDump, logEdit, logTruncate, logVerify, opNames,
  type Write,
} from './log-tools.js';
import { backupList, backupRestore } from './backup-tools.js';
import { snapshotCreate, snapshotKeepDefault } from './snapshot-create.js';
import { snapshotDumpCommand } from './snapshot-tools.js';
import { type Command, count, type Io, type OptionSpec, required, revision, type Values } from './command-spec.js';
import { backupListOnline } from './online-admin.js';
import { onlineCommands } from './online-commands.js';
import { exitDenied, exitUnavailable, onlineOptionNames, onlineOptions, withClient } from './online.js';
import { UsageError } from './tool-support.js';

export type { Io } from './command-spec.js';

const dataDirOption: OptionSpec = { name: 'data-dir', type: 'string', value: 'DIR',
  description: 'the data directory (default ./data); the daemon must be stopped' };

const exitCodeLines = {
  ok: `${exitOk}  ok`,
  failure: `${exitFailure}  failure: corruption found, or (online) a typed error, shown with its code name`,
  usage: `${exitUsage}  usage error (bad arguments, a malformed transaction file)`,
  locked: `${exitLocked}  the data directory is in use (a running daemon or another tool holds its lock)`,
  torn: `${exitTornTail}  log verify: the only problem is a torn tail (the daemon cuts it off at its next start)`,
  unavailable: `${exitUnavailable}  online: cannot connect, connection lost, or no answer in time (UNAVAILABLE, DEADLINE_EXCEEDED)`,
  denied: `${exitDenied}  online: the token is refused (UNAUTHENTICATED) or not allowed this (PERMISSION_DENIED)`,
};
const offlineExitCodes = [exitCodeLines.ok, exitCodeLines.failure, exitCodeLines.usage, exitCodeLines.locked,
  exitCodeLines.torn];
const onlineExitCodes = [exitCodeLines.ok, exitCodeLines.failure, exitCodeLines.usage, exitCodeLines.unavailable,
  exitCodeLines.denied];
const allExitCodes = Object.values(exitCodeLines);

function offline(values: Values): { dataDir: string } {
  return { dataDir: (values['data-dir'] as string | undefined) ?? './data' };
}

const backupListCommand: Command = {
name: 'backup list',
  summary: 'list the backups: online from the daemon, or offline with --data-dir / --dir',
  description: [
    'Online (the default): asks the running daemon (admin token) for its backups: name, revision, time, bytes.',
    'Offline, with --data-dir or --dir: lists the backup files of <data-dir>/backups (or of DIR), newest first, as',
    'their names say (Aurora\'s scheduler-backup-yyyy-MM-dd-HH-mm, UTC), reading each one\'s header and end frame',
    '(one that does not read is listed as DAMAGED; `strata snapshot dump FILE` checks every chunk). The offline',
    'form takes no lock (backups are never changed once installed), so it works beside a running daemon too.',
  ],
  options: [
    ...onlineOptions,
    { ...dataDirOption, description: 'offline: list the backups/ of this data directory' },
    { name: 'dir', type: 'string', value: 'DIR', description: 'offline: list this directory instead' },
    { name: 'json', type: 'boolean', description: 'one JSON object per line' },
  ],
  online: true,
  run: (values, io) => {
    const offlineForm = values['data-dir'] !== undefined || values['dir'] !== undefined;
    const onlineGiven = onlineOptionNames.filter((name) => values[name] !== undefined);
    if (!offlineForm) return withClient(values, io, 'backup list', (client) => backupListOnline(client, values, io));
    if (onlineGiven.length > 0) {
      throw new UsageError(`--${onlineGiven[0]} is for the online form; --data-dir and --dir list files offline`);
    }
    return backupList({ ...offline(values), dir: values['dir'] as string | undefined, json: values['json'] === true }, io);
  },
};

/** The online commands (backup list beside the other backup commands), then the offline tools. */
const backupListAt = onlineCommands.findIndex((c) => c.name === 'backup create') + 1;

export const commands: Command[] = [
  ...onlineCommands.slice(0, backupListAt),
  backupListCommand,
  ...onlineCommands.slice(backupListAt),
  {
    name: 'log dump',
    summary: 'print logged transactions (text or JSON lines), filtered',
    description: [
      'Prints every logged transaction in revision order: its revision, segment file and offset, noop flag',
      '(a noop entry was logged for its idempotency key; it shows the revision it committed at and takes none),',
      'idempotency key, and each operation summarised (op type, task ids, statuses, job keys, configs stored).',
      'With --json: one JSON object per line {revision, file, offset, entry, entries, noop, transaction}: entry',
      'is its place (from 1) in its group of `entries`, offset that of the group\'s record, and the transaction',
      'is as the FlatBuffers object API gives it (enums as numbers, bigints as strings, config hashes as hex).',
      'Filters combine (all must match). --job matches upserts by their config\'s job, cron jobs and job updates',
      'by key, and transitions and deletes by the job the log upserted that task id with; a task whose upsert is',
      'not in the log (it came from a snapshot) matches when its id has Aurora\'s form',
      '<ts>-<role>-<env>-<job>-<instance>-<uuid> and names the job.',
      `Op names: ${opNames.join(', ')}.`,
    ],
    options: [
      dataDirOption,
      { name: 'from', type: 'string', value: 'REV', description: 'first revision shown' },
      { name: 'to', type: 'string', value: 'REV', description: 'last revision shown' },
      { name: 'op', type: 'string', value: 'NAME', description: 'only transactions with this op (any case, below)' },
      { name: 'job', type: 'string', value: 'ROLE/ENV/NAME', description: 'only transactions touching this job' },
      { name: 'task', type: 'string', value: 'ID', description: 'only transactions touching this task id' },
      { name: 'json', type: 'boolean', description: 'one JSON object per line' },
    ],
    run: (values, io) => logDump({
      ...offline(values), from: revision('from', values['from']), to: revision('to', values['to']),
      op: values['op'] as string | undefined, job: values['job'] as string | undefined,
      task: values['task'] as string | undefined, json: values['json'] === true,
    }, io),
  },
  {
    name: 'log verify',
    summary: 'check checksums, the CRC chain, segment numbers and revisions',
    description: [
      'Reads the whole log as recovery does: record checksums, the CRC chain across records and segments,',
      'consecutive segment numbers and revisions, and that the newest snapshot (if any) and the log meet.',
      'Prints a summary and every problem with its file, offset and revision. A torn tail (a last write that',
      `never reached the disk) alone exits ${exitTornTail}: the daemon cuts it off at its next start.`,
      '--replay also re-executes the log in this process (only when it starts at revision 1: otherwise',
      'replaying needs the snapshot loader and is skipped; the exit code is then that of the checks).',
    ],
    options: [
      dataDirOption, { name: 'replay', type: 'boolean', description: 're-execute the log to prove it replays' },
    ],
    run: (values, io) => logVerify({ ...offline(values), replay: values['replay'] === true }, io),
  },
  {
    name: 'log truncate',
    summary: 'remove everything after a revision (cut bytes are kept)',
    description: [
      'Removes every logged transaction after REV: later segments wholly and, in the segment holding REV, the',
      'rest after it (a group spanning REV is re-encoded with only its entries up to REV; noop entries after',
      'REV go too). Every cut byte is first copied into <data-dir>/log/truncated-<UTC timestamp>/, and',
      'snapshots past REV (they hold state after it) are moved there too. REV may be from the first logged',
      'revision - 1 (an empty log) to the last one; on a corrupt log, to the last revision before the corruption',
      '(this is how a corrupt log is repaired, losing what follows). The daemon then recovers to revision REV.',
    ],
    options: [
      dataDirOption,
      { name: 'after', type: 'string', value: 'REV', description: 'keep revisions up to REV (required)' },
    ],
    run: (values, io) => logTruncate({
      ...offline(values), after: revision('after', required('after', values['after']))!,
    }, io),
  },
  {
    name: 'log edit',
    summary: 'drop or replace the transaction at a revision',
    description: [
      'Writes a new log where the transaction at REV is dropped (later revisions shift down by one) or replaced',
      'by the Transaction in FILE: binary FlatBuffers only (.fb/.bin; from JSON, make one with',
      '`flatc -b --root-type strata.fbs.Transaction schema.fbs FILE.json`). The segments from REV\'s on are',
      're-encoded; the old ones are kept in <data-dir>/log/edited-<UTC timestamp>/, with the snapshots at or',
      'past REV. Then the new log is checked as `log verify` does and, when it starts at revision 1, replayed:',
      'a dropped or replaced transaction may make a later one fail; the output says how to undo.',
    ],
    options: [
      dataDirOption,
      { name: 'revision', type: 'string', value: 'REV', description: 'the revision to drop or replace (required)' },
      { name: 'drop', type: 'boolean', description: 'drop the transaction at REV' },
      { name: 'replace', type: 'string', value: 'FILE', description: 'replace it with the Transaction in FILE' },
      { name: 'skip-replay', type: 'boolean', description: 'do not replay the result (checks still run)' },
    ],
    run: (values, io) => logEdit({
      ...offline(values), revision: revision('revision', required('revision', values['revision']))!,
      drop: values['drop'] === true, replace: values['replace'] as string | undefined,
      replay: values['skip-replay'] !== true,
    }, io),
  },
  {
    name: 'snapshot dump',
    summary: 'print a snapshot file (text or JSON lines), every chunk checked',
    description: [
      'Prints the snapshot FILE, or the newest snapshot of the data directory (--revision REV: the one of',
      'that revision): its header, then each chunk and one line per record (configs with their reference',
      'counts, tasks, cron jobs, job updates, quotas, hosts, maintenance, scheduler, idempotency window), then',
      'the end frame\'s revision and counts. With --json: one JSON object per line with a `kind` field, the',
      'records as the FlatBuffers object API gives them (64-bit integers as numbers when exact, bytes as hex).',
      'Every chunk\'s checksum is checked before its records are printed; a damaged file exits 1 naming the file',
      'and the offset (the lines before the damage stay printed). It takes no lock: an installed snapshot is',
      'never changed, so the snapshots of a running daemon can be dumped too.',
    ],
    options: [
      { ...dataDirOption, description: 'dump the newest snapshot of this data directory (default ./data)' },
      { name: 'revision', type: 'string', value: 'REV', description: 'with --data-dir: the snapshot of REV' },
      { name: 'json', type: 'boolean', description: 'one JSON object per line' },
    ],
    positional: 'FILE',
    run: (values, io, file) => {
      if (file !== undefined && values['data-dir'] !== undefined) {
        throw new UsageError('give a FILE or --data-dir, not both');
      }
      return snapshotDumpCommand({ ...offline(values), file, revision: revision('revision', values['revision']),
        json: values['json'] === true }, io);
    },
  },
  {
    name: 'snapshot create',
    summary: 'offline compaction: snapshot the recovered state, then drop old snapshots and log segments',
    description: [
      'Recovers the state of a stopped daemon\'s data directory in this process, as the daemon does at start',
      '(the newest snapshot, then the log after it), writes a snapshot of the recovered revision into',
      '<data-dir>/snapshots, then applies the daemon\'s retention: the newest --keep snapshots stay, older ones',
      'are deleted, and so are the log segments wholly at or before the oldest snapshot kept (never the newest',
      'segment). The next start then loads the new snapshot and replays only what follows it. Prints the',
      'revision, the file and its bytes, and what was removed. A corrupt log or a damaged newest snapshot',
      'exits 1 (file and offset) and changes nothing; a torn tail is left for the daemon to cut.',
    ],
    options: [
      dataDirOption,
      { name: 'keep', type: 'string', value: 'N',
        description: `snapshots kept, newest first (default ${snapshotKeepDefault})` },
    ],
    run: (values, io) => snapshotCreate({ ...offline(values),
      keep: count('keep', values['keep']) ?? snapshotKeepDefault }, io),
  },
  {
    name: 'backup restore',
    summary: 'offline restore: a backup into an empty data directory',
    description: [
      'Installs the backup FILE as the only snapshot of --data-dir, which must be empty or absent; the daemon',
      'started on it opens at the backup\'s revision and logs from the next one. Aurora\'s procedure (stop the',
      'schedulers, restore into an empty log, start) without its recovery-tool. To restore into a running',
      'daemon, stage and commit the backup online instead (one logged entry; docs/operations.md).',
    ],
    options: [{ ...dataDirOption, description: 'the new data directory (must be empty or absent)' }],
    positional: 'FILE',
    run: (values, io, file) => backupRestore({ ...offline(values), file }, io),
  },
];

function optionText(option: OptionSpec): string {
  return `--${option.name}${option.value === undefined ? '' : ` ${option.value}`}${option.multiple ? ' ...' : ''}`;
}

function writeExitCodes(lines: string[], write: Write): void {
  write('');
  write('exit codes:');
  for (const line of lines) write(`  ${line}`);
}

function commandHelp(command: Command, write: Write): void {
  write(`usage: strata ${command.name} ${command.options.map((o) => `[${optionText(o)}]`).join(' ')}` +
    `${command.positional === undefined ? '' : ` [${command.positional}]`}`);
  write('');
  for (const line of command.description) write(line);
  write('');
  write('options:');
  const width = Math.max(...command.options.map((o) => optionText(o).length), '--help'.length) + 2;
  for (const option of command.options) write(`  ${optionText(option).padEnd(width)}${option.description}`);
  write(`  ${'--help'.padEnd(width)}this help`);
  const more = commands.filter((c) => c.name.startsWith(`${command.name} `));
  if (more.length > 0) {
    write('');
    write(`also: ${more.map((c) => `strata ${c.name}`).join(', ')} (each with its own --help)`);
  }
  const codes = command.name === 'backup list' ? allExitCodes.filter((l) => !l.startsWith(`${exitTornTail} `))
    : command.online === true ? onlineExitCodes : offlineExitCodes;
  writeExitCodes(codes, write);
}

function listHelp(prefix: string, write: Write): void {
  const synopsis = prefix === '' ? '<command>' : `${prefix}<command>`;
  write(`usage: strata ${synopsis} [options]   (strata ${synopsis} --help for one command's own help)`);
  const shown = commands.filter((c) => c.name.startsWith(prefix) || c.name === prefix.trim());
  const width = Math.max(...shown.map((c) => c.name.length)) + 2;
  for (const online of [true, false]) {
    const group = shown.filter((c) => (c.online === true) === online);
    if (group.length === 0) continue;
    write('');
    write(online ? 'online commands (a running stratad: --url, --token, --ca, --timeout):'
      : 'offline tools (a data directory: --data-dir):');
    for (const command of group) write(`  ${command.name.padEnd(width)}${command.summary}`);
  }
  write('');
  write('Online commands connect to --url (default $STRATA_URL, else ws://127.0.0.1:7420/v1) with --token (default');
  write('$STRATA_TOKEN). The log commands, snapshot create and backup restore are offline: they work on the data');
  write('directory of a stopped daemon (--data-dir, default ./data), hold its lock while they run, and refuse if a');
  write('running daemon holds it. snapshot dump and backup list --data-dir only read files and take no lock.');
  write('See docs/operations.md.');
  writeExitCodes(allExitCodes, write);
}

interface Parsed { code: number; command?: Command; values?: Values; positional?: string | undefined }

/** The words before the first option: the command's name, then its positional argument. */
function leadingWords(argv: string[]): string[] {
  const words: string[] = [];
  for (const arg of argv) {
    if (arg.startsWith('-')) break;
    words.push(arg);
  }
  return words;
}

/** The command whose name is the longest that the words start with (`snapshot dump` before `snapshot`). */
function commandOf(words: string[]): Command | undefined {
  const matching = commands.filter((c) => c.name === words.slice(0, c.name.split(' ').length).join(' '));
  return matching.sort((a, b) => b.name.length - a.name.length)[0];
}

/** Finds the command and parses its arguments; `code` is set when there is nothing (more) to run. */
function parse(argv: string[], io: Io): Parsed {
  const words = leadingWords(argv);
  const help = argv.includes('--help') || argv.includes('-h');
  const command = commandOf(words);
  const nameWords = command?.name.split(' ').length ?? 0;
  const isGroup = command !== undefined && commands.some((c) => c.name.startsWith(`${command.name} `));
  if (command === undefined || (isGroup && command.positional === undefined && words.length > nameWords)) {
    const group = words.length === 1 && commands.some((c) => c.name.startsWith(`${words[0]} `)) ? `${words[0]} ` : '';
    if (command === undefined && words.length <= 1 && (words.length === 0 || group !== '')) {
      listHelp(group, help ? io.write : io.writeError);
      return { code: help ? exitOk : exitUsage };
    }
    io.writeError(`strata: unknown command '${words.join(' ')}'; see strata --help`);
    return { code: exitUsage };
  }
  if (help) {
    commandHelp(command, io.write);
    return { code: exitOk };
  }
  const config: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const option of command.options) config[option.name] = { type: option.type, multiple: option.multiple === true };
  const { values, positionals } = parseArgs({ args: argv.slice(nameWords), options: config,
    strict: true, allowPositionals: command.positional !== undefined });
  if (positionals.length > 1) throw new UsageError(`one ${command.positional} at most, not ${positionals.length}`);
  return { code: exitOk, command, values: values as Values, positional: positionals[0] };
}

function usageCode(error: unknown, io: Io, argv: string[]): number {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (!(error instanceof UsageError) && !code.startsWith('ERR_PARSE_ARGS')) throw error;
  const named = commandOf(leadingWords(argv));
  io.writeError(`strata: ${(error as Error).message}; see strata ${named === undefined ? '' : `${named.name} `}--help`);
  return exitUsage;
}

/**
 * Runs the strata command line `argv` (without node and the script); resolves to the exit code. Offline
 * commands run synchronously inside it; online ones are awaited.
 */
export async function run(argv: string[], io: Io): Promise<number> {
  try {
    const parsed = parse(argv, io);
    if (parsed.command === undefined) return parsed.code;
    return await parsed.command.run(parsed.values!, io, parsed.positional);
  } catch (error) {
    return usageCode(error, io, argv);
  }
}

/**
 * `run` for the offline tools only, synchronously (tests and scripts that embed them). A command line that
 * needs the network is a programming error here.
 */
export function runSync(argv: string[], io: Io): number {
  try {
    const parsed = parse(argv, io);
    if (parsed.command === undefined) return parsed.code;
    const code = parsed.command.run(parsed.values!, io, parsed.positional);
    if (typeof code !== 'number') throw new Error(`strata ${parsed.command.name} is online: use run(), not runSync()`);
    return code;
  } catch (error) {
    return usageCode(error, io, argv);
  }
}
