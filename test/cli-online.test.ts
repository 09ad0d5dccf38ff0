/**
 * The online commands of the strata binary (cli/online-*.ts) against a real stratad (a child process on
 * 127.0.0.1, temporary data directory): each command run as its own process (`node dist/cli/main.js ...`), its
 * output and exit code checked; bad input (exit 2, before any connection), a wrong token (6), no server (5), a
 * watch fallen out of the history (COMPACTED, 1), and `watch --count` seeing what `txn` commits.
 * Nothing here waits on a clock: watches start at a revision given with --from (history replays what they
 * missed), and every child process has a generous bound instead of a tight one.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type RunningDaemon } from './support/daemon.js';
import { tempDir } from './support/durable.js';
import { proxy } from './support/proxy.js';

const mainFile = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const tlsFile = (name: string) => fileURLToPath(new URL(`../../test/fixtures/tls/${name}`, import.meta.url));

const admin = 'admin-token-0123456789';
const roleA = 'role-a-token-0123456789';
const tokens = [
  { name: 'admin', token: admin, admin: true },
  { name: 'a', token: roleA, read: ['a'], write: ['a'] },
];
/** A child that has not finished by then is stuck, not slow (a busy 2-core machine takes seconds, not this). */
const childTimeoutMs = 120_000;

interface Ran { code: number | null; stdout: string; stderr: string }

interface Running extends Ran {
  done: Promise<Ran>;
  kill(signal: NodeJS.Signals): void;
  /** Resolves once stdout holds a line matching `pattern`. */
  line(pattern: RegExp): Promise<string>;
}

/** Starts the strata binary; the environment has no STRATA_* variables but those given. */
function start(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Running {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('STRATA_') && v !== undefined) env[k] = v;
  const child = spawn(process.execPath, [mainFile, ...args], { env: { ...env, ...options.env }, stdio: 'pipe' });
  const ran: Running = {
    code: null, stdout: '', stderr: '', done: null as never,
    kill: (signal) => { if (child.exitCode === null) child.kill(signal); },
    line: (pattern) => new Promise((resolve, reject) => {
      const check = () => {
        const found = ran.stdout.split('\n').find((l) => pattern.test(l));
        if (found !== undefined) {
          child.stdout.off('data', check);
          resolve(found);
        }
      };
      child.stdout.on('data', check);
      child.on('exit', () => reject(new Error(`strata ${args.join(' ')} exited: ${ran.stderr}`)));
      check();
    }),
  };
  child.stdout.on('data', (d: Buffer) => { ran.stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { ran.stderr += d.toString(); });
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), childTimeoutMs);
  ran.done = new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    ran.code = code;
    resolve(ran);
  }));
  return ran;
}

function strata(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<Ran> {
  return start(args, options).done;
}

function online(daemon: RunningDaemon, token = admin) {
  return (...args: string[]) => strata([...args, '--url', daemon.url, '--token', token]);
}

function taskJson(id: string, role: string, instance: number, status = 'PENDING', data = '{}'): object {
  return { status, assignedTask: { taskId: id, instanceId: instance, task: {
    job: { role, environment: 'prod', name: 'web' }, production: true,
    resources: [{ type: 'NUM_CPUS', numCpus: 1 }, { type: 'RAM_MB', ramMb: 128 }],
    executorConfig: { name: 'thermos', data } } } };
}

function writeJson(dir: string, name: string, value: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

async function daemonFor(t: { teardown(fn: () => unknown): void }, prefix: string,
  config: Record<string, unknown> = {}): Promise<{ daemon: RunningDaemon; dir: string }> {
  const dir = tempDir(t, prefix);
  const daemon = await startDaemon({ dataDir: join(dir, 'data'), config: { tokens, ...config } });
  t.teardown(async () => { await daemon.stop(); });
  return { daemon, dir };
}

test('txn, query, get task, summary, quota, status; watch --count sees what txn commits', async (t) => {
  const { daemon, dir } = await daemonFor(t, 'cli-online');
  const run = online(daemon);
  const before = await run('status', '--json');
  t.is(before.code, 0, before.stderr);
  const revision = Number((JSON.parse(before.stdout) as { revision: number }).revision);

  // The watch starts at the next revision: the daemon's history replays whatever it subscribes after.
  const watch = start(['watch', '--from', String(revision + 1), '--count', '3', '--url', daemon.url, '--token', admin]);
  const create = writeJson(dir, 'create.json', {
    idempotencyKey: { clientId: 'cli-online-test', sequence: 1 },
    preconditions: [{ expect: 'absent', task: 'a-0' }],
    ops: [
      { op: 'upsertTasks', tasks: [taskJson('a-0', 'a', 0), taskJson('a-1', 'a', 1), taskJson('b-0', 'b', 0)] },
      { op: 'saveQuota', role: 'a', quota: { resources: [{ type: 'NUM_CPUS', numCpus: 8 }] } },
    ],
  });
  const created = await run('txn', create);
  t.is(created.code, 0, created.stderr);
  t.regex(created.stdout, new RegExp(`^committed: revision ${revision + 1}\\n  op 0 upsertTasks: 3 records`));
  const again = await run('txn', create);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /already committed/, 'the same idempotency key: applied once');

  const assign = writeJson(dir, 'assign.json', { ops: [
    { op: 'transition', taskId: 'a-0', status: 'ASSIGNED', expectStatus: 'PENDING', slaveHost: 'host-1', message: 'placed' },
    { op: 'transition', taskId: 'a-1', status: 'RUNNING' }] });
  t.is((await run('txn', assign)).code, 0);
  const deleted = await strata(['txn', '-', '--url', daemon.url, '--token', admin, '--json'],
    { input: JSON.stringify({ ops: [{ op: 'deleteTasks', taskIds: ['b-0'] }] }) });
  t.is(deleted.code, 0, deleted.stderr);
  t.is((JSON.parse(deleted.stdout) as { revision: number }).revision, revision + 3);

  const watched = await watch.done;
  t.is(watched.code, 0, watched.stderr);
  const lines = jsonLines(watched.stdout).filter((l) => l.type !== 'progress'); // bookmarks come when idle
  t.deepEqual(lines.map((l) => [l.type, l.revision]), [['changes', revision + 1], ['changes', revision + 2],
    ['changes', revision + 3]]);
  const firstTasks = (lines[0]!.tasks as { assignedTask: { taskId: string } }[]).map((x) => x.assignedTask.taskId);
  t.deepEqual(firstTasks, ['a-0', 'a-1', 'b-0']);
  t.is((lines[0]!.configs as unknown[]).length, 2, 'each config once, with the revision that stored it');
  t.deepEqual(lines[2]!.tasksDeleted, [{ taskId: 'b-0', job: { role: 'b', environment: 'prod', name: 'web' } }]);

  const table = await run('query', '--role', 'a');
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, /^TASK ID +STATUS +HOST +INSTANCE +JOB\na-0 +ASSIGNED +host-1 +0 +a\/prod\/web\na-1 +RUNNING +- +1 +a\/prod\/web\n2 of 2 tasks at revision \d+\n$/);
  const running = await run('query', '--status', 'running,assigned', '--json', '--limit', '1');
  t.is(running.code, 0, running.stderr);
  const one = jsonLines(running.stdout);
  t.is(one.length, 1);
  t.is((one[0]!.assignedTask as { taskId: string }).taskId, 'a-0');
  t.is(((one[0]!.assignedTask as { task: { job: { role: string } } }).task.job.role), 'a', 'the config inline');

  const got = await run('get', 'task', 'a-0');
  t.is(got.code, 0, got.stderr);
  const task = JSON.parse(got.stdout) as { status: string; assignedTask: Record<string, unknown>; taskEvents: unknown[] };
  t.is(task.status, 'ASSIGNED');
  t.is(task.assignedTask.slaveHost, 'host-1');
  t.false('configHash' in task.assignedTask);
  t.is(task.taskEvents.length, 1);
  // What get task prints goes back in as an upsert (the round trip the format is made for).
  const upsert = writeJson(dir, 'upsert.json', { ops: [{ op: 'upsertTasks', tasks: [{ ...task, status: 'KILLED' }] }] });
  t.is((await run('txn', upsert)).code, 0);
  t.regex((await run('get', 'task', 'a-0')).stdout, /"status": "KILLED"/);
  const missing = await run('get', 'task', 'nope');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /no task "nope"/);

  const roles = await run('summary');
  t.is(roles.code, 0, roles.stderr);
  t.regex(roles.stdout, /^ROLE +JOBS +CRON JOBS +TASKS\na +1 +0 +2\n/);
  const jobs = await run('summary', '--role', 'a', '--json');
  t.is(jobs.code, 0, jobs.stderr);
  t.deepEqual(jsonLines(jobs.stdout).map((j) => j.job), [{ role: 'a', environment: 'prod', name: 'web' }]);
  const quota = await run('quota', 'a');
  t.is(quota.code, 0, quota.stderr);
  t.regex(quota.stdout, /^role a: quota cpus 8 \(set at revision \d+\)\n/);
  const status = await run('status');
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /^revision +\d+\ntasks +2\n/);
  for (const key of ['server version', 'uptime', 'websocket', 'oldest watch revision', 'connections', 'subscriptions',
    'staged backup +none', 'this token +admin']) {
    t.regex(status.stdout, new RegExp(`\\n${key}`), key);
  }
});

test('refused transactions exit 1 (6 for PERMISSION_DENIED) and name the operation or precondition', async (t) => {
  const { daemon, dir } = await daemonFor(t, 'cli-refused');
  const run = online(daemon);
  t.is((await run('txn', writeJson(dir, 'seed.json', { ops: [{ op: 'upsertTasks', tasks: [taskJson('a-0', 'a', 0)] }] }))).code, 0);
  const notFound = await run('txn', writeJson(dir, 'nf.json', { ops: [
    { op: 'removeQuota', role: 'a' }, { op: 'transition', taskId: 'nope', status: 'RUNNING' }] }));
  t.is(notFound.code, 1);
  t.regex(notFound.stderr, /transaction refused: NOT_FOUND: .*\(operation 1, \$\.ops\[1\] transition\)/);
  const precondition = await run('txn', writeJson(dir, 'pf.json', {
    preconditions: [{ expect: 'status', task: 'a-0', status: 'RUNNING' }], ops: [{ op: 'removeQuota', role: 'a' }] }));
  t.is(precondition.code, 1);
  t.regex(precondition.stderr, /PRECONDITION_FAILED: .*\(precondition 0, \$\.preconditions\[0\]\)/);
  const scoped = await strata(['txn', writeJson(dir, 'b.json', { ops: [{ op: 'upsertTasks', tasks: [taskJson('b-0', 'b', 0)] }] }),
    '--url', daemon.url, '--token', roleA]);
  t.is(scoped.code, 6);
  t.regex(scoped.stderr, /PERMISSION_DENIED/);
  t.is((await online(daemon, roleA)('query', '--role', 'a')).code, 0, 'inside its scope');
  t.is((await online(daemon, roleA)('get', 'task', 'a-0', '--role', 'a')).code, 0, 'a scoped token names the role');
  const other = await online(daemon, roleA)('query', '--role', 'b');
  t.is(other.code, 6);
  t.regex(other.stderr, /query: PERMISSION_DENIED/);
  const snapshot = await online(daemon, roleA)('snapshot');
  t.is(snapshot.code, 6, 'admin only');
});

test('bad input exits 2 before connecting, with the flag or the JSON path at fault', async (t) => {
  const dir = tempDir(t, 'cli-usage');
  const nowhere = `ws://127.0.0.1:${await freePort()}/v1`; // nothing listens: an attempt to connect would be exit 5
  const cases: [string[], RegExp, string?][] = [
    [['query', '--status', 'RUNING'], /--status: unknown status "RUNING" \(one of PENDING, STARTING, RUNNING/],
    [['query', '--limit', '0'], /--limit takes a count/],
    [['query', '--bogus'], /Unknown option '--bogus'; see strata query --help/],
    [['watch', '--table', 'TASKS'], /--table: unknown table "TASKS" \(one of TASK, CRON_JOB/],
    [['watch', '--from', 'x'], /--from takes a revision/],
    [['watch', '--from', '3', '--list'], /give --from or --list, not both/],
    [['get', 'task'], /get task needs the task ID/],
    [['quota'], /quota needs the ROLE/],
    [['status', '--url', 'http://127.0.0.1:1/v1'], /--url takes a ws:\/\/ or wss:\/\/ URL/],
    [['status', '--timeout', '0'], /--timeout takes milliseconds \(an integer >= 1\)/],
    [['status', '--ca', join(dir, 'missing.pem')], /--ca: cannot read/],
    [['snapshot', 'bogus'], /unknown command 'snapshot bogus'/],
    [['backup', 'list', '--data-dir', dir, '--token', 'x'], /--(token|url) is for the online form; --data-dir and --dir list files offline/],
    [['txn'], /txn needs a FILE/],
    [['txn', join(dir, 'missing.json')], /cannot read .*missing\.json/],
    [['txn', 'syntax.json'], /syntax\.json is not JSON: .*\(line 2, column \d+\)/, '{"ops": [\n  {"op": "transition",, }]}'],
    [['txn', 'status.json'], /\$\.ops\[0\]\.status: expected a ScheduleStatus .* got "RUNIN"/,
      JSON.stringify({ ops: [{ op: 'transition', taskId: 'x', status: 'RUNIN' }] })],
    [['txn', 'deep.json'], /\$\.ops\[0\]\.tasks\[0\]\.assignedTask\.instanceId: expected an integer/,
      JSON.stringify({ ops: [{ op: 'upsertTasks', tasks: [{ assignedTask: { taskId: 'a', instanceId: 'x' } }] }] })],
    [['txn', 'typo.json'], /\$\.ops\[0\]\.tasks\[0\]\.assignedTask\.taskID: AssignedTask has no such field/,
      JSON.stringify({ ops: [{ op: 'upsertTasks', tasks: [{ assignedTask: { taskID: 'a' } }] }] })],
    [['txn', 'op.json'], /\$\.ops\[0\]\.op: expected one of upsertTasks, transition/, JSON.stringify({ ops: [{ op: 'kill' }] })],
    [['txn', 'empty.json'], /\$\.ops: empty/, JSON.stringify({ ops: [] })],
    [['txn', 'top.json'], /\$\.opz: a transaction has no such field/, JSON.stringify({ opz: [] })],
    [['txn', 'union.json'], /\$\.ops\[0\]\.job\.taskConfig\.constraints\[0\]\.constraint: give constraintType too/,
      JSON.stringify({ ops: [{ op: 'saveCronJob', job: { taskConfig: { constraints: [{ name: 'x', constraint: { limit: 1 } }] } } }] })],
    [['txn', 'missing-field.json'], /\$\.ops\[0\]\.role: missing/, JSON.stringify({ ops: [{ op: 'removeQuota' }] })],
    [['txn', 'pre.json'], /\$\.preconditions\[0\]: name exactly one record/,
      JSON.stringify({ preconditions: [{ expect: 'absent' }], ops: [{ op: 'removeQuota', role: 'a' }] })],
    [['txn', 'long.json'], /\$\.ops\[0\]\.request\.timeoutSecs: expected a 64-bit integer/,
      JSON.stringify({ ops: [{ op: 'saveMaintenanceRequest', request: { host: 'h', timeoutSecs: 1.5 } }] })],
  ];
  for (const [args, message, content] of cases) {
    const argv = args.map((a) => (content !== undefined && a.endsWith('.json') ? writeJson(dir, a, content) : a));
    const ran = await strata([...argv, ...(argv.includes('--url') ? [] : ['--url', nowhere])]);
    t.is(ran.code, 2, `${args.join(' ')}: ${ran.stderr}`);
    t.regex(ran.stderr, message, args.join(' '));
  }
});

test('no server exits 5; a wrong or missing token exits 6; --help lists the online exit codes', async (t) => {
  const nowhere = await strata(['status', '--url', `ws://127.0.0.1:${await freePort()}/v1`]);
  t.is(nowhere.code, 5);
  t.regex(nowhere.stderr, /status: UNAVAILABLE: .*is stratad running there/);
  const byEnvironment = await strata(['query'], { env: { STRATA_URL: `ws://127.0.0.1:${await freePort()}/v1` } });
  t.is(byEnvironment.code, 5, 'STRATA_URL is the default of --url');

  const { daemon } = await daemonFor(t, 'cli-auth');
  const wrong = await strata(['status', '--url', daemon.url, '--token', 'wrong-token-0123456789']);
  t.is(wrong.code, 6);
  t.regex(wrong.stderr, /UNAUTHENTICATED/);
  t.is((await strata(['status', '--url', daemon.url])).code, 6, 'no token');
  const environment = await strata(['status', '--json'], { env: { STRATA_URL: daemon.url, STRATA_TOKEN: roleA } });
  t.is(environment.code, 0, environment.stderr);

  const help = await strata(['--help']);
  t.is(help.code, 0);
  for (const name of ['status', 'get task', 'query', 'summary', 'quota', 'watch', 'txn', 'snapshot', 'backup create',
    'backup list', 'backup stage', 'backup query', 'backup commit', 'backup unload', 'snapshot dump', 'log dump']) {
    t.regex(help.stdout, new RegExp(`\\n  ${name} `), name);
  }
  for (const code of ['5  online: cannot connect', '6  online: the token is refused']) t.true(help.stdout.includes(code), code);
  const txnHelp = await strata(['txn', '--help']);
  t.is(txnHelp.code, 0);
  t.regex(txnHelp.stdout, /^usage: strata txn \[--url URL\] \[--token TOKEN\] \[--ca FILE\] \[--timeout MS\] \[--json\] \[FILE\]/);
  t.regex(txnHelp.stdout, /5  online: cannot connect/);
  t.regex((await strata(['snapshot', '--help'])).stdout, /also: strata snapshot dump, strata snapshot create/);
  t.regex((await strata(['query', '--help'])).stdout, /--status STATUS \.\.\./);
});

test('backups online: create, list (online and offline), stage, query, unload, commit; snapshot', async (t) => {
  const { daemon, dir } = await daemonFor(t, 'cli-backup');
  const run = online(daemon);
  t.is((await run('txn', writeJson(dir, 'a.json', { ops: [{ op: 'upsertTasks', tasks: [taskJson('a-0', 'a', 0)] }] }))).code, 0);
  const created = await run('backup', 'create', '--json');
  t.is(created.code, 0, created.stderr);
  const backup = JSON.parse(created.stdout) as { path: string; revision: number; tasks: number };
  t.is(backup.tasks, 1);
  t.is((await run('txn', writeJson(dir, 'b.json', { ops: [{ op: 'upsertTasks', tasks: [taskJson('a-1', 'a', 1)] }] }))).code, 0);

  const listed = await run('backup', 'list', '--json');
  t.is(listed.code, 0, listed.stderr);
  const names = jsonLines(listed.stdout).map((b) => String(b.name));
  t.is(names.length, 1);
  const name = names[0]!;
  t.true(backup.path.endsWith(name));
  const offline = await strata(['backup', 'list', '--data-dir', join(dir, 'data')]);
  t.is(offline.code, 0, offline.stderr);
  t.regex(offline.stdout, new RegExp(`^${name.replace(/\./g, '\\.')}  revision ${backup.revision}`));

  t.is((await run('backup', 'commit')).code, 1, 'nothing staged: PRECONDITION_FAILED');
  const staged = await run('backup', 'stage', name);
  t.is(staged.code, 0, staged.stderr);
  t.regex(staged.stdout, new RegExp(`^staged ${name.replace(/\./g, '\\.')}: revision ${backup.revision}, 1 tasks`));
  t.regex((await run('status')).stdout, new RegExp(`staged backup +${name.replace(/\./g, '\\.')}`));
  const stagedTasks = await run('backup', 'query', '--json');
  t.deepEqual(jsonLines(stagedTasks.stdout).map((x) => (x.assignedTask as { taskId: string }).taskId), ['a-0']);
  t.is((await run('backup', 'unload')).code, 0);
  t.regex((await run('status')).stdout, /staged backup +none/);
  t.is((await run('backup', 'stage', 'no-such.bak')).code, 1);
  t.is((await run('backup', 'stage', name)).code, 0);
  const committed = await run('backup', 'commit');
  t.is(committed.code, 0, committed.stderr);
  t.regex(committed.stdout, /^restored the staged backup at revision \d+/);
  t.deepEqual(jsonLines((await run('query', '--json')).stdout).map((x) => (x.assignedTask as { taskId: string }).taskId),
    ['a-0'], 'the live state is the backup\'s');

  const snapshot = await run('snapshot', '--json');
  t.is(snapshot.code, 0, snapshot.stderr);
  t.regex(String((JSON.parse(snapshot.stdout) as { path: string }).path), /snapshot-[0-9a-f]+\.snap$/);
});

test('watch: --list prints the state, then changes; SIGINT ends it with exit 0', async (t) => {
  const { daemon, dir } = await daemonFor(t, 'cli-watch');
  const run = online(daemon);
  t.is((await run('txn', writeJson(dir, 'a.json', { ops: [{ op: 'upsertTasks', tasks: [taskJson('a-0', 'a', 0)] }] }))).code, 0);
  const watch = start(['watch', '--list', '--role', 'a', '--table', 'TASK', '--progress-ms', '100', '--url', daemon.url,
    '--token', roleA]);
  const end = JSON.parse(await watch.line(/"type":"stateEnd"/)) as { revision: number };
  t.is((await run('txn', writeJson(dir, 'b.json', { ops: [{ op: 'transition', taskId: 'a-0', status: 'ASSIGNED' }] }))).code, 0);
  await watch.line(new RegExp(`"type":"changes","revision":${end.revision + 1}`));
  watch.kill('SIGINT');
  const ended = await watch.done;
  t.is(ended.code, 0, ended.stderr);
  const lines = jsonLines(ended.stdout);
  t.is(lines[0]!.type, 'state');
  t.deepEqual(((lines[0]!.result as { tasks: { assignedTask: { taskId: string } }[] }).tasks).map((x) => x.assignedTask.taskId), ['a-0']);
  t.true(lines.every((l) => ['state', 'stateEnd', 'changes', 'progress'].includes(String(l.type))));
});

test('watch: revisions no longer in the history exit 1 with COMPACTED and the oldest revision', async (t) => {
  const { daemon, dir } = await daemonFor(t, 'cli-compacted', { watch: { historyBytes: 1024 * 1024 } });
  const run = online(daemon);
  // Each revision stores a new 200 KiB config: eight of them pass the 1 MiB of history.
  const data = (i: number) => JSON.stringify({ blob: String(i).repeat(200 * 1024) });
  for (let i = 0; i < 8; i++) {
    const file = writeJson(dir, `big-${i}.json`, { ops: [{ op: 'upsertTasks', tasks: [taskJson(`a-${i}`, 'a', i, 'PENDING', data(i))] }] });
    const ran = await run('txn', file);
    t.is(ran.code, 0, ran.stderr);
  }
  const status = JSON.parse((await run('status', '--json')).stdout) as { oldestWatchRevision: number };
  t.true(status.oldestWatchRevision > 1, `oldest ${status.oldestWatchRevision}`);
  const compacted = await run('watch', '--from', '1');
  t.is(compacted.code, 1);
  t.regex(compacted.stderr, new RegExp(`COMPACTED: .*the oldest revision is ${status.oldestWatchRevision}: watch again with --from ${status.oldestWatchRevision}`));
  const resumed = await run('watch', '--from', String(status.oldestWatchRevision), '--count', '1', '--table', 'TASK');
  t.is(resumed.code, 0, resumed.stderr);
  t.is(jsonLines(resumed.stdout).find((l) => l.type === 'changes')!.revision, status.oldestWatchRevision);
});

test('watch --count lives through a daemon restart: every revision once, in order', async (t) => {
  const dir = tempDir(t, 'cli-restart');
  let daemon = await startDaemon({ dataDir: join(dir, 'data'), config: { tokens } });
  t.teardown(async () => { await daemon.stop(); });
  const url = `ws://127.0.0.1:${await proxy(t, () => daemon.port)}/v1`;
  const commit = async (i: number) => {
    const file = writeJson(dir, `t-${i}.json`, { ops: [{ op: 'upsertTasks', tasks: [taskJson(`a-${i}`, 'a', i)] }] });
    const ran = await strata(['txn', file, '--url', url, '--token', admin]);
    t.is(ran.code, 0, ran.stderr);
  };
  const watch = start(['watch', '--from', '1', '--count', '4', '--url', url, '--token', admin]);
  await commit(0);
  await commit(1);
  await watch.line(/"revision":2/);
  await daemon.stop();
  daemon = await startDaemon({ dataDir: join(dir, 'data'), config: { tokens } });
  await commit(2);
  await commit(3);
  const ended = await watch.done;
  t.is(ended.code, 0, ended.stderr);
  t.deepEqual(jsonLines(ended.stdout).filter((l) => l.type !== 'progress').map((l) => [l.type, l.revision]),
    [['changes', 1], ['changes', 2], ['changes', 3], ['changes', 4]]);
  t.regex(ended.stderr, /connection lost .*reconnecting, resuming after revision 2/);
  t.regex(ended.stderr, /reconnected/);
});

test('TLS: wss with --ca; without it the certificate is refused (exit 5)', async (t) => {
  const { daemon } = await daemonFor(t, 'cli-tls', { tlsCertFile: tlsFile('cert.pem'), tlsKeyFile: tlsFile('key.pem') });
  t.regex(daemon.url, /^wss:\/\//);
  const trusted = await strata(['status', '--url', daemon.url, '--token', admin, '--ca', tlsFile('cert.pem')]);
  t.is(trusted.code, 0, trusted.stderr);
  const unknown = await strata(['status', '--url', daemon.url, '--token', admin]);
  t.is(unknown.code, 5);
  t.regex(unknown.stderr, /self[- ]signed|certificate/);
});
