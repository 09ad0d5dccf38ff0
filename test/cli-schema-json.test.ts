/**
 * cli/schema-json.ts: its model of schema.fbs matches the generated object API class by class and field by
 * field, and records go to JSON and back unchanged (the same FlatBuffers bytes), so what `strata get task` and
 * `strata watch` print, `strata txn` reads.
 */
import test from 'ava';
import { encode } from '../core/codec.js';
import * as fbs from '../core/fbs/strata.js';
import { JsonInputError, recordFromJson, recordJson, schemaModel } from '../cli/schema-json.js';
import { jobConfig, make, task } from './support/build.js';

test('every table of schema.fbs has its object API class, with exactly the fields of the model', (t) => {
  const model = schemaModel();
  t.true(model.tables.size > 100, `${model.tables.size} tables`);
  for (const table of model.tables.values()) {
    const type = (fbs as unknown as Record<string, new () => object>)[`${table.name}T`];
    if (type === undefined) {
      t.fail(`no ${table.name}T`);
      continue;
    }
    const properties = Object.keys(new type()).sort();
    const modelled = table.fields.flatMap((f) => (f.type.kind === 'union' ? [`${f.property}Type`, f.property] : [f.property])).sort();
    t.deepEqual(modelled, properties, table.name);
  }
  t.deepEqual([...model.enums.get('ScheduleStatus')!.byName.entries()].filter(([, v]) => v === 2), [['RUNNING', 2]]);
  t.is(model.enums.get('Op')!.byName.get('SaveSchedulerMetadata'), fbs.Op.SaveSchedulerMetadata);
});

test('a task, a cron job and a maintenance request go to JSON and back to the same bytes', (t) => {
  const config = jobConfig('www', 'prod', 'web', { dedicated: true, data: '{"big": "x"}' });
  config.slaPolicyType = fbs.SlaPolicy.CountSlaPolicy;
  config.slaPolicy = make(fbs.CountSlaPolicyT, { count: 3n, durationSecs: 2n ** 60n });
  const scheduled = task('www-0', config, 7, fbs.ScheduleStatus.RUNNING, 'host-1');
  scheduled.assignedTask!.assignedPorts = [make(fbs.PortT, { name: 'http', port: 8080 })];
  const cron = make(fbs.JobConfigurationT, { key: make(fbs.JobKeyT, { role: 'www', environment: 'prod', name: 'c' }),
    cronSchedule: '*/5 * * * *', cronCollisionPolicy: fbs.CronCollisionPolicy.RUN_OVERLAP, taskConfig: config,
    instanceCount: 2, configHash: [1, 2, 255] });
  const request = make(fbs.HostMaintenanceRequestT, { host: 'h', defaultSlaPolicyType: fbs.SlaPolicy.PercentageSlaPolicy,
    defaultSlaPolicy: make(fbs.PercentageSlaPolicyT, { percentage: 66.5, durationSecs: 10n }), timeoutSecs: -1n });
  for (const [name, record] of [['ScheduledTask', scheduled], ['JobConfiguration', cron], ['HostMaintenanceRequest', request]] as const) {
    const json = JSON.parse(JSON.stringify(recordJson(name, record))) as unknown;
    const back = recordFromJson<{ pack: never }>(name, json, '$');
    t.deepEqual(encode(back as never), encode(record as never), name);
  }
  const json = recordJson('ScheduledTask', scheduled) as { status: string; assignedTask: { task: { slaPolicy: { durationSecs: unknown } } } };
  t.is(json.status, 'RUNNING');
  t.is(json.assignedTask.task.slaPolicy.durationSecs, String(2n ** 60n), 'past 2^53: a string');
  t.is((recordJson('JobConfiguration', cron) as { configHash: string }).configHash, '0102ff');
});

test('input: snake_case names, enum numbers and any case, longs as strings; mistakes name their path', (t) => {
  const event = recordFromJson<fbs.TaskEventT>('TaskEvent', { timestamp: '9007199254740993', status: 'running', message: 'm' }, '$');
  t.is(event.timestamp, 9007199254740993n);
  t.is(event.status, fbs.ScheduleStatus.RUNNING);
  const port = recordFromJson<fbs.AssignedTaskT>('AssignedTask', { task_id: 'x', instance_id: 3, config_hash: 'abcd' }, '$');
  t.is(port.taskId, 'x');
  t.deepEqual(port.configHash, [0xab, 0xcd]);
  t.is(recordFromJson<fbs.TaskEventT>('TaskEvent', { status: 16 }, '$').status, fbs.ScheduleStatus.THROTTLED);
  const mistakes: [string, unknown, RegExp][] = [
    ['TaskEvent', { status: 8 }, /^\$\.status: expected a ScheduleStatus/],
    ['TaskEvent', { timestamp: 1.5 }, /^\$\.timestamp: expected a 64-bit integer/],
    ['TaskEvent', { timestamp: '99999999999999999999' }, /^\$\.timestamp: expected a 64-bit integer/],
    ['TaskEvent', [], /^\$: expected an object/],
    ['AssignedTask', { configHash: 'xyz' }, /^\$\.configHash: expected hex bytes/],
    ['AssignedTask', { instanceId: 2 ** 31 }, /^\$\.instanceId: expected an integer from -2147483648 to 2147483647/],
    ['Constraint', { constraintType: 'Nope' }, /^\$\.constraintType: expected one of NONE, ValueConstraint, LimitConstraint/],
    ['Constraint', { constraintType: 'LimitConstraint' }, /^\$\.constraint: missing/],
    ['Constraint', { constraintType: 'LimitConstraint', constraint: { limit: 'x' } }, /^\$\.constraint\.limit: expected an integer/],
    ['KeyValue', { key: 1 }, /^\$\.key: expected a string/],
  ];
  for (const [table, json, message] of mistakes) {
    const error = t.throws(() => recordFromJson(table, json, '$'), { instanceOf: JsonInputError });
    t.regex(error?.message ?? '', message, JSON.stringify(json));
  }
});
