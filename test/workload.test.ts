/**
 * Tests of the standard workload (loadtest/workload*.ts) and of canonical configs (core/config.ts).
 * Owner: the test runner (ava worker thread).
 * Invariants checked: the data set is a function of its options (same seed, same bytes); it has the shape of
 * workload.md (status mix, events, hosts, ids, ~1.5 KiB configs); the fast byte writers decode to exactly what the
 * object API gives; transitions walk the lifecycle with a compare-and-set on the status; equal configs hash
 * equal and different ones differently.
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import { decodeTransaction, encode } from '../core/codec.js';
import { canonicalConfig, configHashBytes, decodeConfig, hashBytes, hashHex } from '../core/config.js';
import { text } from '../core/text.js';
import {
  ConstraintT, DeleteTasksT, KeyValueT, MesosContainerT, MetadataT, Op, PreconditionKind, PreconditionT,
  RecordTable, ResourceT, ResourceType, ScheduleStatus, TaskConfigT, TaskConstraint, TransactionT, TransitionTaskT,
  UpsertTasksT, ValueConstraintT,
} from '../core/fbs/strata.js';
import {
  bulkLoadTransactionBytes, bulkLoadTransactions, configBytesDefault, encodeTransition, hostCount, lifecyclePath,
  TaskFacts, taskIds, taskStatuses, terminalStatuses, transitionTransaction, TransitionGenerator, Workload,
  workloadOptions, type WorkloadOptions,
} from '../loadtest/workload.js';

const small = (): WorkloadOptions => ({ roles: 2, envs: 2, jobsPerEnv: 3, instances: 40, seed: 7 });
const configSlackBytes = 8;

function upsertOf(transaction: TransactionT): UpsertTasksT {
  const operation = transaction.ops[0];
  if (operation === undefined || operation.opType !== Op.UpsertTasks) throw new Error('not an UpsertTasks');
  return operation.op as UpsertTasksT;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Determinism and the byte writers
// ---------------------------------------------------------------------------------------------------------------

test('same seed, same bytes; another seed, other bytes', (t) => {
  const first = [...bulkLoadTransactionBytes(small(), 100)];
  const second = [...bulkLoadTransactionBytes(small(), 100)];
  t.is(first.length, 5); // 480 tasks
  t.true(first.every((bytes, index) => sameBytes(bytes, second[index] as Uint8Array)));
  const objectsFirst = [...bulkLoadTransactions(small(), 100)].map((txn) => encode(txn));
  const objectsSecond = [...bulkLoadTransactions(small(), 100)].map((txn) => encode(txn));
  t.true(objectsFirst.every((bytes, index) => sameBytes(bytes, objectsSecond[index] as Uint8Array)));
  const other = [...bulkLoadTransactionBytes({ ...small(), seed: 8 }, 100)];
  t.false(sameBytes(other[0] as Uint8Array, first[0] as Uint8Array));
});

test('a task is the same whatever was generated before it (random access)', (t) => {
  const o = small();
  const inOrder = taskIds(o);
  const fresh = new Workload({ ...o });
  for (const index of [479, 0, 117, 40, 39]) t.is(fresh.taskId(index), inOrder[index] as string);
});

test('bulk bytes decode to exactly the object-API transactions (templates leave no stale byte)', (t) => {
  for (const o of [small(), { ...small(), distinctConfigs: 30, seed: 3 }, { ...workloadOptions(10_000, 5) }]) {
    const objects = [...bulkLoadTransactions(o, 700)];
    const bytes = [...bulkLoadTransactionBytes({ ...o }, 700)];
    t.is(bytes.length, objects.length);
    for (let index = 0; index < objects.length; index++) {
      const expected = decodeTransaction(encode(objects[index] as TransactionT, 1 << 20));
      t.deepEqual(decodeTransaction(bytes[index] as Uint8Array), expected);
    }
  }
});

test('configs carried in bulk bytes hash to the tasks\' config_hash (as the engine will compute it)', (t) => {
  for (const bytes of bulkLoadTransactionBytes(small(), 120)) {
    const txn = decodeTransaction(bytes);
    const hashes = new Set(txn.configs.map((config) => canonicalConfig(config).hashHex));
    t.is(hashes.size, txn.configs.length, 'each config once');
    for (const task of upsertOf(txn).tasks) {
      t.true(hashes.has(hashHex(Uint8Array.from(task.assignedTask?.configHash ?? []))));
      t.is(task.assignedTask?.task, null, 'configs go by hash, not inline');
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Shape (workload.md)
// ---------------------------------------------------------------------------------------------------------------

test('100k tasks: the status mix, unique ids and the id format', (t) => {
  const o = workloadOptions();
  const statuses = taskStatuses(o);
  t.is(statuses.length, 100_000);
  const counts = new Map<number, number>();
  for (const status of statuses) counts.set(status, (counts.get(status) ?? 0) + 1);
  const share = (status: ScheduleStatus): number => (counts.get(status) ?? 0) / statuses.length;
  t.true(Math.abs(share(ScheduleStatus.RUNNING) - 0.90) < 0.005, `RUNNING ${share(ScheduleStatus.RUNNING)}`);
  t.true(Math.abs(share(ScheduleStatus.PENDING) - 0.04) < 0.003, `PENDING ${share(ScheduleStatus.PENDING)}`);
  t.true(Math.abs(share(ScheduleStatus.ASSIGNED) - 0.02) < 0.0025);
  t.true(Math.abs(share(ScheduleStatus.STARTING) - 0.02) < 0.0025);
  const terminal = terminalStatuses.reduce((sum, status) => sum + share(status), 0);
  t.true(Math.abs(terminal - 0.02) < 0.0025, `terminal ${terminal}`);
  for (const status of terminalStatuses) t.true(share(status) > 0, `some ${ScheduleStatus[status]}`);
  t.is(counts.size, 4 + terminalStatuses.length, 'no other status');
  const ids = taskIds(o);
  t.is(new Set(ids).size, ids.length, 'ids are unique');
  const idFormat = /^\d{13}-role-\d{3}-(prod|devel)-job-\d{2}-\d{1,2}-[0-9a-f]{8}$/;
  t.true(ids.every((id) => idFormat.test(id)));
  t.is(ids[0]?.split('-').slice(1, 7).join('-'), 'role-000-prod-job-00-0');
  t.is(ids[99_999]?.split('-').slice(1, 7).join('-'), 'role-099-devel-job-09-49');
});

test('1M and 10k scale the roles: role-999, role-009', (t) => {
  t.deepEqual(workloadOptions(1_000_000), { roles: 1000, envs: 2, jobsPerEnv: 10, instances: 50, seed: 1 });
  const big = new Workload(workloadOptions(1_000_000));
  t.is(big.taskCount, 1_000_000);
  t.is(big.jobKey(big.jobCount - 1).role, 'role-999');
  t.is(new Workload(workloadOptions(10_000)).jobKey(199).role, 'role-009');
  t.throws(() => new Workload({ ...small(), envs: 5 }));
  t.throws(() => new Workload({ ...small(), distinctConfigs: 11 }), undefined, 'fewer configs than jobs');
  t.throws(() => new Workload({ ...small(), distinctConfigs: 12 * 41 }), undefined, 'more configs than tasks');
});

test('every task: events along the lifecycle path, hosts only once assigned, ports with hosts', (t) => {
  const o = workloadOptions(10_000, 11);
  let tasks = 0;
  for (const txn of bulkLoadTransactions(o)) {
    for (const task of upsertOf(txn).tasks) {
      tasks += 1;
      const assigned = task.assignedTask;
      if (assigned === null) return t.fail('assigned task');
      const events = task.taskEvents;
      const ended = terminalStatuses.includes(task.status);
      const pathLength = ended ? 4 : lifecyclePath.indexOf(task.status) + 1;
      t.is(events.length, ended ? 5 : pathLength, ScheduleStatus[task.status]);
      for (let index = 0; index < pathLength; index++) t.is(events[index]?.status, lifecyclePath[index]);
      t.is(events[events.length - 1]?.status, task.status);
      for (let index = 1; index < events.length; index++) {
        t.true((events[index]?.timestamp ?? 0n) > (events[index - 1]?.timestamp ?? 0n), 'timestamps increase');
      }
      t.true(events.every((event) => text(event.message) !== '' && text(event.scheduler) !== ''));
      t.true(text(assigned.taskId).startsWith(String(events[0]?.timestamp)), 'the id starts with its PENDING time');
      if (task.status === ScheduleStatus.PENDING) {
        t.is(assigned.slaveHost, null);
        t.is(assigned.slaveId, null);
        t.deepEqual(assigned.assignedPorts, []);
      } else {
        t.regex(text(assigned.slaveHost), /^host-\d{4}\.dc1\.example\.com$/);
        t.true(Number(text(assigned.slaveHost).slice(5, 9)) < hostCount);
        t.regex(text(assigned.slaveId), /-S\d+$/);
        t.is(text(events[1]?.message), `Assigned to ${text(assigned.slaveHost)}`);
        t.deepEqual(assigned.assignedPorts.map((port) => text(port.name)), ['http', 'health']);
      }
      if (task.ancestorId !== null) t.true(task.failureCount > 0, 'a replacement counts its failures');
    }
  }
  t.is(tasks, 10_000);
});

test('configs: ~1.5 KiB, one per job, with the fields of workload.md', (t) => {
  const workload = new Workload(small());
  t.is(workload.configCount, workload.jobCount);
  for (let configIndex = 0; configIndex < workload.configCount; configIndex++) {
    const { config, canonical } = workload.config(configIndex);
    t.true(Math.abs(canonical.bytes.length - configBytesDefault) <= configSlackBytes, `${canonical.bytes.length} B`);
    const job = config.job;
    if (job === null) return t.fail('a config names its job');
    t.is(config.production, job.environment === 'prod');
    t.is(config.tier, job.environment === 'prod' ? 'preferred' : 'preemptible');
    t.is(text(config.owner?.user), `svc-${text(job.role)}`);
    t.is(text(config.contactEmail), `${text(job.role)}-oncall@example.com`);
    const byType = (type: ResourceType): ResourceT[] => config.resources.filter((r) => r.type === type);
    const cpus = byType(ResourceType.NUM_CPUS)[0]?.numCpus ?? 0;
    t.true(cpus >= 0.5 && cpus <= 2.25);
    const ramMb = byType(ResourceType.RAM_MB)[0]?.ramMb ?? 0n;
    t.true(ramMb >= 128n && ramMb <= 2048n);
    const diskMb = byType(ResourceType.DISK_MB)[0]?.diskMb ?? 0n;
    t.true(diskMb >= 1024n && diskMb <= 4096n);
    t.deepEqual(byType(ResourceType.NAMED_PORT).map((r) => r.namedPort), ['health', 'http']);
    t.deepEqual(config.constraints.map((c) => [c.name, c.constraintType]),
      [['host', TaskConstraint.LimitConstraint], ['rack', TaskConstraint.ValueConstraint]]);
    t.deepEqual(config.metadata.map((m) => m.key), ['build', 'git_sha', 'team']);
    t.true(config.container instanceof MesosContainerT);
    const data = JSON.parse(text(config.executorConfig?.data)) as { name: string; role: string };
    t.is(data.name, text(job.name));
    t.is(data.role, text(job.role));
  }
  const sized = new Workload({ ...small(), configBytes: 4096 });
  t.true(Math.abs(sized.config(3).canonical.bytes.length - 4096) <= configSlackBytes);
});

test('distinctConfigs spreads a job\'s instances over several configs', (t) => {
  const o: WorkloadOptions = { ...workloadOptions(10_000, 2), distinctConfigs: 2000 }; // 200 jobs × 10
  const hashes = new Set<string>();
  for (const txn of bulkLoadTransactions(o)) {
    for (const config of txn.configs) hashes.add(canonicalConfig(config).hashHex);
  }
  t.is(hashes.size, 2000);
  const workload = Workload.of(o);
  const a = workload.config(workload.configIndexOfTask(0)).config;
  const b = workload.config(workload.configIndexOfTask(1)).config;
  t.deepEqual(a.job, b.job, 'variants of one job');
  t.notDeepEqual(a.metadata, b.metadata, 'different builds');
});

test('a bulk transaction holds at most tasksPerTxn tasks and each of its configs once', (t) => {
  let tasks = 0;
  for (const txn of bulkLoadTransactions(small(), 70)) {
    const count = upsertOf(txn).tasks.length;
    t.true(count <= 70);
    tasks += count;
    t.is(txn.ops.length, 1);
    t.deepEqual(txn.preconditions, []);
  }
  t.is(tasks, 480);
});

// ---------------------------------------------------------------------------------------------------------------
// Transitions
// ---------------------------------------------------------------------------------------------------------------

test('one task walks the whole lifecycle, CAS on every step, then is replaced', (t) => {
  const o: WorkloadOptions = { roles: 1, envs: 1, jobsPerEnv: 1, instances: 1, seed: 4 };
  const generator = new TransitionGenerator(o);
  let status = taskStatuses(o)[0] as ScheduleStatus;
  let id = taskIds(o)[0] as string;
  const seen: ScheduleStatus[] = [];
  let replacements = 0;
  for (let step = 0; step < 12; step++) {
    const txn = generator.next();
    t.is(generator.statusFrom, status);
    seen.push(generator.statusTo);
    if (generator.replacementId !== '') {
      replacements += 1;
      t.true(terminalStatuses.includes(status));
      t.deepEqual(txn.preconditions, [new PreconditionT(RecordTable.TASK, PreconditionKind.TASK_STATUS, id, null, null,
        null, null, 0n, status)]);
      t.deepEqual(txn.ops.map((operation) => operation.opType), [Op.UpsertTasks, Op.DeleteTasks]);
      const task = upsertOf(txn).tasks[0];
      t.is(task?.status, ScheduleStatus.PENDING);
      t.is(task?.ancestorId, id);
      t.is(task?.taskEvents.length, 1);
      t.not(task?.assignedTask?.taskId, id);
      t.deepEqual(txn.configs, [], 'the config goes by hash: the old task keeps it stored');
      const workload = Workload.of(o);
      const expected = canonicalConfig(workload.config(workload.configIndexOfTask(0)).config).hashHex;
      t.is(hashHex(Uint8Array.from(task?.assignedTask?.configHash ?? [])), expected);
      t.deepEqual((txn.ops[1]?.op as DeleteTasksT).taskIds, [id]);
      id = generator.replacementId;
      status = ScheduleStatus.PENDING;
    } else {
      const transition = txn.ops[0]?.op as TransitionTaskT;
      t.is(txn.ops[0]?.opType, Op.TransitionTask);
      t.is(transition.taskId, id);
      t.true(transition.hasExpectStatus);
      t.is(transition.expectStatus, status);
      t.is(transition.status, generator.statusTo);
      if (transition.status === ScheduleStatus.ASSIGNED) t.regex(text(transition.slaveHost), /^host-/);
      status = transition.status;
    }
  }
  t.true(replacements >= 1, `walked ${seen.map((s) => ScheduleStatus[s]).join(' → ')}`);
  t.true(seen.includes(ScheduleStatus.ASSIGNED) && seen.includes(ScheduleStatus.RUNNING));
});

test('nextBytes decodes to next(); plain transitions are byte for byte the object API\'s', (t) => {
  const o = small();
  const objects = new TransitionGenerator(o, { clientIndex: 1, clientCount: 4 });
  const bytes = new TransitionGenerator({ ...o }, { clientIndex: 1, clientCount: 4 });
  let replacements = 0;
  for (let step = 0; step < 3000; step++) {
    const txn = objects.next();
    const encoded = bytes.nextBytes();
    t.is(bytes.taskId, objects.taskId);
    t.is(objects.taskIndex % 4, 1, 'a client only touches its own tasks');
    if (objects.replacementId === '') {
      if (!sameBytes(encoded, encode(txn))) return t.fail(`step ${step}: bytes differ`);
    } else {
      replacements += 1;
      t.deepEqual(decodeTransaction(encoded), decodeTransaction(encode(txn)));
    }
  }
  t.true(replacements > 10);
  const direct = encodeTransition('x-1', ScheduleStatus.STARTING, ScheduleStatus.RUNNING, 1_800_000_000_000, 17, 31002);
  t.true(sameBytes(direct, encode(transitionTransaction('x-1', ScheduleStatus.STARTING, ScheduleStatus.RUNNING,
    1_800_000_000_000, 17, 31002))));
});

test('task facts: taskState and task agree', (t) => {
  const workload = new Workload(small());
  const state = new TaskFacts();
  const full = new TaskFacts();
  for (let index = 0; index < workload.taskCount; index++) {
    workload.taskState(index, state);
    workload.task(index, full);
    t.is(state.status, full.status);
    t.is(state.hostIndex, full.hostIndex);
    t.is(state.eventCount, full.eventCount);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Canonical configs (core/config.ts)
// ---------------------------------------------------------------------------------------------------------------

function workloadConfig(configIndex = 0): TaskConfigT {
  return decodeConfig(new Workload(small()).config(configIndex).canonical.bytes);
}

function reversedSets(config: TaskConfigT): TaskConfigT {
  config.resources.reverse();
  config.constraints.reverse();
  for (const constraint of config.constraints) {
    if (constraint.constraint instanceof ValueConstraintT) constraint.constraint.values.reverse();
  }
  config.metadata.reverse();
  config.taskLinks.push(new KeyValueT('admin', 'http://%host%:%port:health%/admin'));
  config.taskLinks.reverse();
  config.requestedPorts = ['http', 'health', 'http'];
  return config;
}

test('canonical: the same config with sets in another order, duplicates or empty strings hashes the same', (t) => {
  const base = workloadConfig();
  base.taskLinks.push(new KeyValueT('admin', 'http://%host%:%port:health%/admin'));
  base.requestedPorts = ['health', 'http'];
  const expected = canonicalConfig(base);
  const shuffled = reversedSets(workloadConfig());
  shuffled.metadata.push(new MetadataT('team', shuffled.metadata.find((m) => m.key === 'team')?.value ?? null));
  const constraint = shuffled.constraints[0];
  if (constraint !== undefined) {
    shuffled.constraints.push(new ConstraintT(constraint.name, constraint.constraintType, constraint.constraint));
  }
  const actual = canonicalConfig(shuffled);
  t.is(actual.hashHex, expected.hashHex);
  t.true(sameBytes(actual.bytes, expected.bytes));
  const emptied = canonicalConfig(Object.assign(workloadConfig(), { contactEmail: null }));
  const empty = canonicalConfig(Object.assign(workloadConfig(), { contactEmail: '' }));
  t.is(empty.hashHex, emptied.hashHex, 'an empty string is an absent one');
});

test('canonical: any difference changes the hash', (t) => {
  const base = canonicalConfig(workloadConfig()).hashHex;
  const changes: Array<[string, (config: TaskConfigT) => void]> = [
    ['ram', (c) => { const r = c.resources.find((x) => x.type === ResourceType.RAM_MB); if (r) r.ramMb += 1n; }],
    ['rack', (c) => { (c.constraints[1]?.constraint as ValueConstraintT).values.push('rack-99'); }],
    ['negated', (c) => { (c.constraints[1]?.constraint as ValueConstraintT).negated = true; }],
    ['metadata', (c) => { c.metadata.push(new MetadataT('team', 'another')); }],
    ['executor data', (c) => { if (c.executorConfig) c.executorConfig.data += ' '; }],
    ['priority', (c) => { c.priority += 1; }],
    ['production', (c) => { c.production = !c.production; }],
    ['job', (c) => { if (c.job) c.job.name = 'job-99'; }],
  ];
  const hashes = new Set([base]);
  for (const [name, change] of changes) {
    const config = workloadConfig();
    change(config);
    const hash = canonicalConfig(config).hashHex;
    t.not(hash, base, name);
    hashes.add(hash);
  }
  t.is(hashes.size, changes.length + 1, 'all different from each other too');
  t.not(canonicalConfig(workloadConfig(1)).hashHex, base, 'another job');
});

test('canonical: bytes decode back to the normalized config; canonical form is idempotent; hash is SHA-256/16', (t) => {
  const config = reversedSets(workloadConfig());
  const canonical = canonicalConfig(config); // normalizes config in place
  const decoded = decodeConfig(canonical.bytes);
  t.deepEqual(decoded, config);
  const again = canonicalConfig(decoded);
  t.true(sameBytes(again.bytes, canonical.bytes));
  t.is(canonical.hash.length, configHashBytes);
  t.is(canonical.hashHex.length, configHashBytes * 2);
  t.true(sameBytes(canonical.hash, hashBytes(canonical.bytes)));
  t.is(canonical.hashHex, createHash('sha256').update(canonical.bytes).digest('hex').slice(0, configHashBytes * 2));
});
