/**
 * The specialised task response encoder writes ordinary FlatBuffers: the generated TypeScript decodes it, and so
 * does flatc's C++ reader (when flatc is installed, as .ci/run does), to the same values.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeQueryResponse } from '../core/codec.js';
import { Engine } from '../daemon/engine.js';
import { f, jobConfig, make, task, taskQuery, transition, txn, upsert } from './support/build.js';

function flatcPresent(): boolean {
  try {
    execFileSync('flatc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('task responses decode the same in TypeScript and in flatc', async (t) => {
  const engine = await Engine.open({ readerThreads: 1 });
  t.teardown(() => engine.close());
  const config = jobConfig('www', 'prod', 'hello', { data: '{"long": "' + 'x'.repeat(3000) + '"}' });
  const first = task('t-1', config, 0);
  first.ancestorId = 't-0';
  first.failureCount = 2;
  await engine.commit(txn([upsert([first, task('t-2', config, 1, f.ScheduleStatus.RUNNING, 'host-a.example.com')])]));
  await engine.commit(txn([transition('t-2', f.ScheduleStatus.KILLING, {
    scheduler: 'scheduler-1', slaveId: 'agent-1', message: 'killing \u00e9', timestamp: 1764000000123n,
    assignedPorts: [make(f.PortT, { name: 'http', port: 31000 }), make(f.PortT, { name: 'health', port: 31001 })],
  })]));
  const bytes = await engine.query(taskQuery({}));
  const response = decodeQueryResponse(bytes);
  const result = response.result as f.TasksResultT;
  t.is(result.total, 2);
  t.is(result.tasks[0]!.ancestorId, 't-0');
  t.is(result.tasks[0]!.failureCount, 2);
  t.is(result.tasks[0]!.assignedTask!.slaveHost, null);
  const killing = result.tasks[1]!;
  t.is(killing.status, f.ScheduleStatus.KILLING);
  t.is(killing.taskEvents[1]!.timestamp, 1764000000123n);
  t.is(killing.taskEvents[1]!.message, 'killing \u00e9');
  t.is(killing.taskEvents[1]!.scheduler, 'scheduler-1');
  t.is(killing.taskEvents[0]!.scheduler, null);
  t.deepEqual(killing.assignedTask!.assignedPorts.map((p) => [p.name, p.port]), [['http', 31000], ['health', 31001]]);
  t.is(result.configs.length, 1);
  const stored = f.TaskConfig.getRootAsTaskConfig(new (await import('flatbuffers')).ByteBuffer(Uint8Array.from(result.configs[0]!.bytes)));
  t.is(stored.executorConfig()!.data()!.length, 3000 + 12);
  if (!flatcPresent()) {
    t.log('flatc not installed: the C++ decode was skipped (.ci/run installs it)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'strata-encoder-'));
  writeFileSync(join(dir, 'response.bin'), bytes);
  execFileSync('flatc', ['--json', '--raw-binary', '--strict-json', '--root-type', 'strata.fbs.QueryResponse', '-o', dir,
    'schema.fbs', '--', join(dir, 'response.bin')]);
  const json = JSON.parse(readFileSync(join(dir, 'response.json'), 'utf8'));
  t.is(json.revision, 2);
  t.is(json.result.total, 2);
  t.deepEqual(json.result.tasks.map((x: { assigned_task: { task_id: string } }) => x.assigned_task.task_id), ['t-1', 't-2']);
  t.is(json.result.tasks[1].task_events[1].message, 'killing \u00e9');
  t.is(json.result.tasks[1].task_events[1].timestamp, 1764000000123);
  t.is(json.result.tasks[1].mod_revision, 2);
  t.is(json.result.tasks[0].ancestor_id, 't-0');
  // flatc decodes the nested config buffer too (it is 8-aligned inside the response).
  t.is(json.result.configs[0].bytes.job.role, 'www');
  t.is(json.result.configs[0].bytes.executor_config.data.length, 3000 + 12);
});
