/**
 * The rows of the strata command's table for the online commands: they talk to a running stratad through the
 * client SDK (client/). Owner: the strata process's main thread.
 * Invariants: every row takes the connection options (--url, --token, --ca, --timeout) and is `online`; its
 * arguments are checked before connecting, so a usage error (exit 2) never needs a server.
 */
import type { StrataClient } from '../client/index.js';
import { type Command, type Io, type OptionSpec, text, type Values } from './command-spec.js';
import { backupCommit, backupCreate, backupStage, backupUnload, snapshotNow } from './online-admin.js';
import { onlineOptions, withClient } from './online.js';
import { getTask, quota, queryTasks, status, summary, taskQueryFields } from './online-read.js';
import { commitTransaction, parseTransaction, readTransactionFile, txnOps } from './online-txn.js';
import { watch } from './online-watch.js';
import { UsageError } from './tool-support.js';

const json = (description: string): OptionSpec => ({ name: 'json', type: 'boolean', description });

const taskFilterOptions: OptionSpec[] = [
  { name: 'role', type: 'string', value: 'ROLE', description: 'only tasks of this role' },
  { name: 'env', type: 'string', value: 'ENV', description: 'only tasks of this environment' },
  { name: 'job', type: 'string', value: 'NAME', description: 'only tasks of jobs with this name' },
  { name: 'status', type: 'string', value: 'STATUS', multiple: true,
    description: 'only tasks in these statuses (repeat it, or commas: RUNNING,PENDING)' },
  { name: 'host', type: 'string', value: 'HOST', multiple: true, description: 'only tasks on these hosts (slave_host)' },
  { name: 'task', type: 'string', value: 'ID', multiple: true, description: 'only these task ids' },
  { name: 'limit', type: 'string', value: 'N', description: 'at most N tasks (in task id order)' },
  { name: 'offset', type: 'string', value: 'N', description: 'skip the first N' },
  json('one task per line, as JSON, its config inline (as `get task` prints it)'),
];

const statusNames = 'PENDING, THROTTLED, ASSIGNED, STARTING, RUNNING, FINISHED, FAILED, KILLING, KILLED, LOST, ' +
  'RESTARTING, PREEMPTING, DRAINING, PARTITIONED, INIT';

/** Checks the arguments (parse, which throws UsageError), then connects and runs body. */
function online<T>(values: Values, io: Io, what: string, parse: () => T,
  body: (client: StrataClient, parsed: T) => Promise<number>): Promise<number> {
  const parsed = parse();
  return withClient(values, io, what, (client) => body(client, parsed));
}

export const onlineCommands: Command[] = [
  {
    name: 'status',
    summary: 'the daemon\'s revision, sizes, version, uptime, connections, staged backup',
    description: [
      'Asks the daemon for its status: the revision, tasks and configs stored, the server version and uptime, the',
      'WebSocket implementation (native or fallback), the oldest revision a watch can resume from, connections and',
      'subscriptions, the staged backup (if any), and what this token may do. Any token may ask.',
    ],
    options: [...onlineOptions, json('one JSON object')],
    online: true,
    run: (values, io) => withClient(values, io, 'status', (client) => status(client, values, io)),
  },
  {
    name: 'get task',
    summary: 'one task as JSON, its config inline',
    description: [
      'Prints the task with this id as JSON: every field of the ScheduledTask (status, events, assigned task,',
      'mod and create revisions) with its config inline in assignedTask.task (no configHash), so that the output,',
      'edited, can be upserted again with `strata txn`. Exits 1 if there is no such task. A role-scoped token',
      'must name the task\'s role (--role): its queries must name a role inside its scope.',
    ],
    options: [...onlineOptions, { name: 'role', type: 'string', value: 'ROLE', description: 'the task\'s role' }],
    positional: 'ID',
    online: true,
    run: (values, io, id) => online(values, io, 'get task', () => {
      if (id === undefined || id === '') throw new UsageError('get task needs the task ID');
      return id;
    }, (client, taskId) => getTask(client, taskId, text(values, 'role'), io)),
  },
  {
    name: 'query',
    summary: 'tasks by role, environment, job, status, host (a table, or JSON lines)',
    description: [
      'Queries tasks (Aurora\'s TaskQuery): every filter given must hold; tasks come in task id order. Prints a',
      'table of task id, status, host, instance and job, then a line with the count, the total before --limit and',
      `--offset, and the revision read; with --json one task per line instead. Statuses: ${statusNames}`,
      '(any case); an unknown one is a usage error.',
    ],
    options: [...onlineOptions, ...taskFilterOptions],
    online: true,
    run: (values, io) => online(values, io, 'query', () => taskQueryFields(values),
      (client) => queryTasks(client, values, io, false)),
  },
  {
    name: 'summary',
    summary: 'role summaries, or with --role the job summaries of one role',
    description: [
      'Without --role: one line per role that has tasks or cron jobs (jobs, cron jobs, tasks; needs read on every',
      'role). With --role: one line per job of the role, its tasks pending, active, finished and failed (Aurora\'s',
      'JobStats) and its cron schedule if it is a cron job.',
    ],
    options: [...onlineOptions, { name: 'role', type: 'string', value: 'ROLE', description: 'the jobs of this role' },
      json('one JSON object per line')],
    online: true,
    run: (values, io) => withClient(values, io, 'summary', (client) => summary(client, values, io)),
  },
  {
    name: 'quota',
    summary: 'a role\'s quota and what its active tasks consume',
    description: [
      'Prints the quota of ROLE (if one is set, with the revision that set it) and the consumption of its active',
      'tasks: cpus, ram, disk and gpus, production or not, dedicated or shared (Aurora\'s getQuota).',
    ],
    options: [...onlineOptions, json('one JSON object')],
    positional: 'ROLE',
    online: true,
    run: (values, io, role) => online(values, io, 'quota', () => {
      if (role === undefined || role === '') throw new UsageError('quota needs the ROLE');
      return role;
    }, (client, r) => quota(client, r, values, io)),
  },
  {
    name: 'watch',
    summary: 'a change stream as JSON lines, resumed across reconnects',
    description: [
      'Prints one JSON line per revision that changes what the filters select ({"type":"changes","revision":R,',
      '"timestampMs":...,"tasks":[...],"tasksDeleted":[...],"configs":[...],...}: whole records, tasks naming their',
      'config by configHash, each config printed once, in the revision that first stored it), and one line per',
      'bookmark ({"type":"progress","revision":R}: nothing selected changed up to R), reset ({"type":"reset"}: a',
      'restored backup replaced the state; relist), and with --list the state first ({"type":"state",...} pages,',
      'then {"type":"stateEnd","revision":R}). Without --from it starts at the current revision. A lost',
      'connection is made again and the stream resumes after the last revision printed: no revision twice, none',
      'missing. Ends on SIGINT (exit 0), after --count revisions, or with COMPACTED (exit 1, the oldest revision',
      'kept named) when the revisions asked for are no longer in the daemon\'s history (watch.historyBytes).',
      'Tables: TASK, CRON_JOB, JOB_UPDATE, QUOTA, HOST_ATTRIBUTES, MAINTENANCE_REQUEST, SCHEDULER.',
    ],
    options: [...onlineOptions,
      { name: 'from', type: 'string', value: 'REV', description: 'start at revision REV (it is printed first, if it matches)' },
      { name: 'role', type: 'string', value: 'ROLE', description: 'only records of this role' },
      { name: 'env', type: 'string', value: 'ENV', description: 'and this environment (needs --role)' },
      { name: 'job', type: 'string', value: 'NAME', description: 'and this job name (needs --env)' },
      { name: 'task', type: 'string', value: 'ID', multiple: true, description: 'only these tasks' },
      { name: 'table', type: 'string', value: 'TABLE', multiple: true, description: 'only these tables (repeat it, or commas)' },
      { name: 'list', type: 'boolean', description: 'first the current state of what is selected, then its changes' },
      { name: 'progress-ms', type: 'string', value: 'MS', description: 'a bookmark line when idle this long (default: the daemon\'s)' },
      { name: 'count', type: 'string', value: 'N', description: 'stop after N revisions (changes or reset lines)' },
    ],
    online: true,
    run: (values, io) => watch(values, io),
  },
  {
    name: 'txn',
    summary: 'commit a transaction written as JSON (FILE, or - for standard input)',
    description: [
      'Reads a transaction from FILE (- : standard input) in the JSON format of docs/operations.md ("strata txn"):',
      '{"idempotencyKey": {"clientId": C, "sequence": N}, "preconditions": [{"expect": "absent", "task": ID}, ...],',
      '"configs": [TaskConfig, ...], "ops": [{"op": "transition", "taskId": ID, "status": "RUNNING"}, ...]}.',
      `Ops: ${Object.keys(txnOps).join(', ')}.`,
      'The whole file is checked before anything is sent: a mistake exits 2 naming its JSON path ($.ops[1].status)',
      'or, for a syntax error, its line and column. Then it is committed as one transaction: prints the revision',
      '(and per operation what it did), or the refusal with its code and the operation or precondition at fault',
      '(exit 1; 6 for PERMISSION_DENIED). With an idempotencyKey, running the same file again applies it once.',
    ],
    options: [...onlineOptions, json('print the TransactionResult as one JSON object')],
    positional: 'FILE',
    online: true,
    run: (values, io, file) => online(values, io, 'txn', () => parseTransaction(readTransactionFile(file)),
      (client, parsed) => commitTransaction(client, parsed, values, io)),
  },
  {
    name: 'snapshot',
    summary: 'online (admin): the daemon writes a snapshot now',
    description: [
      'Asks the running daemon to write a snapshot of its current revision now (as it does on its own schedule;',
      'its retention applies) and prints the file, revision, tasks and bytes. Admin tokens only. The offline',
      'tools are `strata snapshot create --data-dir DIR` (a stopped daemon\'s directory) and `strata snapshot dump`.',
    ],
    options: [...onlineOptions, json('one JSON object')],
    online: true,
    run: (values, io) => withClient(values, io, 'snapshot', (client) => snapshotNow(client, values, io)),
  },
  {
    name: 'backup create',
    summary: 'online (admin): the daemon writes a backup now',
    description: [
      'Asks the running daemon for a backup now (Aurora\'s scheduler_backup_now): written from one revision while',
      'commits go on, into its backup directory, named by its UTC time. Prints the file, revision, tasks, bytes.',
    ],
    options: [...onlineOptions, json('one JSON object')],
    online: true,
    run: (values, io) => withClient(values, io, 'backup create', (client) => backupCreate(client, values, io)),
  },
  {
    name: 'backup stage',
    summary: 'online (admin): load a backup beside the live state, to query and commit it',
    description: [
      'Loads the backup NAME (as `strata backup list` names it) into a staged copy beside the live state (Aurora\'s',
      'scheduler_stage_recovery). Look at it with `strata backup query`, restore it with `strata backup commit`,',
      'drop it with `strata backup unload`.',
    ],
    options: [...onlineOptions, json('one JSON object')],
    positional: 'NAME',
    online: true,
    run: (values, io, name) => online(values, io, 'backup stage', () => {
      if (name === undefined || name === '') throw new UsageError('backup stage needs the backup NAME (strata backup list)');
      return name;
    }, (client, n) => backupStage(client, n, values, io)),
  },
  {
    name: 'backup query',
    summary: 'online (admin): query the tasks of the staged backup',
    description: [
      'The same as `strata query`, on the staged backup instead of the live state (Aurora\'s',
      'scheduler_print_recovery_tasks).',
    ],
    options: [...onlineOptions, ...taskFilterOptions],
    online: true,
    run: (values, io) => online(values, io, 'backup query', () => taskQueryFields(values),
      (client) => queryTasks(client, values, io, true)),
  },
  {
    name: 'backup commit',
    summary: 'online (admin): replace the live state with the staged backup',
    description: [
      'Replaces the whole live state with the staged backup, as one logged entry at the next revision (Aurora\'s',
      'scheduler_commit_recovery). Live watches get a reset. Never re-run it blindly after a lost answer (exit 5):',
      'check `strata status` first.',
    ],
    options: [...onlineOptions, json('one JSON object')],
    online: true,
    run: (values, io) => withClient(values, io, 'backup commit', (client) => backupCommit(client, values, io)),
  },
  {
    name: 'backup unload',
    summary: 'online (admin): drop the staged backup',
    description: ['Drops the staged backup (Aurora\'s scheduler_unload_recovery).'],
    options: [...onlineOptions],
    online: true,
    run: (values, io) => withClient(values, io, 'backup unload', (client) => backupUnload(client, io)),
  },
];
