/**
 * Schema tests: the generated code matches schema.fbs, the schema keeps Aurora's facts, and every message
 * round-trips through the codecs. Owner: the test runner (ava worker thread).
 * Invariants checked: core/fbs/strata.ts is flatc 2.0.8's output for schema.fbs (when flatc is on PATH; .ci/run
 * installs it); ScheduleStatus has Aurora's 15 names and numbers; a Transaction holding every Op member and
 * a QueryRequest of every Query member decode to what was encoded.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { decodeQueryBatch, decodeQueryRequest, decodeTransaction, encode } from '../core/codec.js';
import { schemaHashHex } from '../core/fbs/schema-hash.js';
import {
  AppcImageT, AttributeT, BatchJobUpdateStrategyT, ConfigDetail, ConstraintT, Container, CoordinatorSlaPolicyT,
  CountSlaPolicyT, CronCollisionPolicy, CronJobsQueryT, DeleteTasksT, DockerContainerT,
  DockerParameterT, ExecutorConfigT, HostAttributesQueryT, HostAttributesT, HostMaintenanceRequestT, IdempotencyKeyT,
  IdentityT, Image, InstanceTaskConfigT, JobConfigurationT, JobInstanceUpdateEventT, JobKeysQueryT, JobKeyT,
  JobSummaryQueryT, JobUpdateAction, JobUpdateEventT, JobUpdateInstructionsT, JobUpdateKeyT, JobUpdateQueryT,
  JobUpdateSettingsT, JobUpdateStateT, JobUpdateStatus, JobUpdateStrategy, JobUpdateSummaryT, JobUpdateT,
  KeyValueT, LimitConstraintT, MaintenanceMode, MaintenanceQueryT, MesosContainerT, MesosFetcherUriT, MetadataT,
  Op, OperationT, PartitionPolicyT, PercentageSlaPolicyT, PortT, PreconditionKind, PreconditionT, Query, QueryBatchT,
  QueryRequestT, QueueJobUpdateStrategyT, QuotaQueryT, RangeT, RecordTable, RemoveCronJobT, RemoveJobUpdatesT,
  RemoveMaintenanceRequestT, RemoveQuotaT, ResourceAggregateT, ResourceT, ResourceType, RoleSummaryQueryT,
  SaveCronJobT, SaveHostAttributesT, SaveJobInstanceUpdateEventT, SaveJobUpdateEventT, SaveJobUpdateT,
  SaveMaintenanceRequestT, SaveQuotaT, SaveSchedulerMetadataT, ScheduledTaskT, SchedulerMetadataT, SchedulerQueryT,
  ScheduleStatus, SlaPolicy, AssignedTaskT, TaskConfigT, TaskConstraint, TaskEventT, TaskQueryT, TransactionT,
  TransitionTaskT, UpsertTasksT, ValueConstraintT, VariableBatchJobUpdateStrategyT, VolumeMode, VolumeT,
} from '../core/fbs/strata.js';

const root = fileURLToPath(new URL('../../', import.meta.url)); // dist/test/ → the repository
const flatcVersion = '2.0.8'; // the version core/fbs/strata.ts was generated with (Debian 12's flatbuffers-compiler)

// ---------------------------------------------------------------------------------------------------------------
// (a) The generated code is not stale
// ---------------------------------------------------------------------------------------------------------------

test('core/fbs/strata.ts is what flatc generates from schema.fbs', (t) => {
  const probe = spawnSync('flatc', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    t.log('skipped: flatc is not on PATH (.ci/run installs it; locally: apt-get install flatbuffers-compiler)');
    t.pass();
    return;
  }
  if (!probe.stdout.includes(flatcVersion)) {
    t.log(`skipped: flatc ${probe.stdout.trim()} is not ${flatcVersion}, whose output is committed`);
    t.pass();
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'strata-gen-'));
  try {
    execFileSync('bash', [join(root, 'scripts/gen.sh'), out], { stdio: 'pipe' });
    const generated = readFileSync(join(out, 'strata.ts'));
    const committed = readFileSync(join(root, 'core/fbs/strata.ts'));
    t.true(generated.equals(committed),
      'core/fbs/strata.ts is not flatc\'s output for schema.fbs: run npm run gen and commit the result');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('core/fbs/schema-hash.ts is the SHA-256 of schema.fbs (data file headers carry it)', (t) => {
  const hash = createHash('sha256').update(readFileSync(join(root, 'schema.fbs'))).digest('hex');
  t.is(schemaHashHex, hash, 'core/fbs/schema-hash.ts is stale: run npm run gen and commit the result');
});

// ---------------------------------------------------------------------------------------------------------------
// (b) Schema facts
// ---------------------------------------------------------------------------------------------------------------

const auroraStatuses: Record<string, number> = {
  INIT: 11, THROTTLED: 16, PENDING: 0, ASSIGNED: 9, STARTING: 1, RUNNING: 2, FINISHED: 3, PREEMPTING: 13,
  RESTARTING: 12, DRAINING: 17, FAILED: 4, KILLED: 5, KILLING: 6, LOST: 7, PARTITIONED: 18,
};

function enumEntries(values: object): Record<string, number> {
  const entries: Record<string, number> = {};
  for (const [name, value] of Object.entries(values)) if (typeof value === 'number') entries[name] = value;
  return entries;
}

test('ScheduleStatus has Aurora\'s 15 statuses with Aurora\'s numbers, in the code and in schema.fbs', (t) => {
  t.deepEqual(enumEntries(ScheduleStatus), auroraStatuses);
  const schema = readFileSync(join(root, 'schema.fbs'), 'utf8');
  const block = /enum ScheduleStatus : byte \{([^}]*)\}/.exec(schema)?.[1] ?? '';
  const declared: Record<string, number> = {};
  for (const match of block.matchAll(/(\w+)\s*=\s*(\d+)/g)) declared[match[1] as string] = Number(match[2]);
  t.deepEqual(declared, auroraStatuses);
});

// ---------------------------------------------------------------------------------------------------------------
// (c) Round trips
// ---------------------------------------------------------------------------------------------------------------

function members(values: object): number[] {
  return Object.values(enumEntries(values)).filter((value) => value !== 0); // 0 is NONE in a union's type enum
}

const jobKey = (): JobKeyT => new JobKeyT('www-data', 'prod', 'hello');
const updateKey = (): JobUpdateKeyT => new JobUpdateKeyT(jobKey(), 'update-1');

/** A config that sets every field, with the Docker container and a count SLA. */
function fullConfig(): TaskConfigT {
  const zero = 0n;
  return new TaskConfigT(jobKey(), new IdentityT('www-data', 'alice'), true, 5, 3, true, 'preferred', [
    new ResourceT(ResourceType.NUM_CPUS, 1.5, zero, zero, null, zero),
    new ResourceT(ResourceType.RAM_MB, 0, 1024n, zero, null, zero),
    new ResourceT(ResourceType.DISK_MB, 0, zero, 4096n, null, zero),
    new ResourceT(ResourceType.NAMED_PORT, 0, zero, zero, 'http', zero),
    new ResourceT(ResourceType.NUM_GPUS, 0, zero, zero, null, 2n),
  ], [
    new ConstraintT('host', TaskConstraint.LimitConstraint, new LimitConstraintT(1)),
    new ConstraintT('rack', TaskConstraint.ValueConstraint, new ValueConstraintT(true, ['rack-01', 'rack-02'])),
  ], ['http'], [new MesosFetcherUriT('https://example.com/app.tgz', true, false)],
  [new KeyValueT('http', 'http://%host%:%port:http%')], 'alice@example.com',
  new ExecutorConfigT('AuroraExecutor', '{"processes":[]}'), [new MetadataT('team', 'web')],
  new PartitionPolicyT(true, 30n, true), SlaPolicy.CountSlaPolicy, new CountSlaPolicyT(2n, 600n),
  Container.DockerContainer, new DockerContainerT('nginx:1.25', [new DockerParameterT('network', 'host')]));
}

/** The other union members: a Mesos container with an Appc image and a coordinator SLA. */
function otherConfig(): TaskConfigT {
  const config = fullConfig();
  config.slaPolicyType = SlaPolicy.CoordinatorSlaPolicy;
  config.slaPolicy = new CoordinatorSlaPolicyT('http://coordinator:8080', 'drain_ok');
  config.containerType = Container.MesosContainer;
  config.container = new MesosContainerT(Image.AppcImage, new AppcImageT('app', 'sha512-00ff'),
    [new VolumeT('/data', '/mnt/data', VolumeMode.RW)]);
  return config;
}

function task(): ScheduledTaskT {
  return new ScheduledTaskT(new AssignedTaskT('1700000000000-www-data-prod-hello-0-0123abcd', 'agent-S1',
    'host-0001.dc1.example.com', fullConfig(), [new PortT('http', 31000)], 0, [1, 2, 3, 255]),
  ScheduleStatus.RUNNING, 1, 2, [new TaskEventT(1700000000000n, ScheduleStatus.PENDING, 'Task scheduled', 'aurora-1')],
  '1699999999999-www-data-prod-hello-0-fedcba98', 7n, 3n);
}

function jobUpdate(strategyType: JobUpdateStrategy, strategy: JobUpdateSettingsT['updateStrategy']): JobUpdateT {
  const settings = new JobUpdateSettingsT(2, 1, 3, 30_000, true, [new RangeT(0, 4)], true, 60_000, true,
    strategyType, strategy, true);
  const instructions = new JobUpdateInstructionsT([new InstanceTaskConfigT(fullConfig(), [new RangeT(0, 9)], [])],
    new InstanceTaskConfigT(null, [new RangeT(0, 9)], [9, 8, 7]), settings);
  return new JobUpdateT(new JobUpdateSummaryT(updateKey(), 'alice',
    new JobUpdateStateT(JobUpdateStatus.ROLLING_FORWARD, 10n, 20n), [new MetadataT('ticket', 'OPS-1')]), instructions);
}

function operations(): OperationT[] {
  return [
    new OperationT(Op.UpsertTasks, new UpsertTasksT([task()])),
    new OperationT(Op.TransitionTask, new TransitionTaskT('t-1', ScheduleStatus.ASSIGNED, true, ScheduleStatus.PENDING,
      true, 1700000000001n, 'Assigned', 'aurora-1', 'agent-S2', 'host-0002', [new PortT('health', 31001)], 0, 1)),
    new OperationT(Op.DeleteTasks, new DeleteTasksT(['t-1', 't-2'], true)),
    new OperationT(Op.SaveCronJob, new SaveCronJobT(new JobConfigurationT(jobKey(), new IdentityT(null, 'alice'),
      '*/5 * * * *', CronCollisionPolicy.CANCEL_NEW, otherConfig(), 3, [], 11n))),
    new OperationT(Op.RemoveCronJob, new RemoveCronJobT(jobKey())),
    new OperationT(Op.SaveJobUpdate, new SaveJobUpdateT(jobUpdate(JobUpdateStrategy.QueueJobUpdateStrategy,
      new QueueJobUpdateStrategyT(2)))),
    new OperationT(Op.SaveJobUpdate, new SaveJobUpdateT(jobUpdate(JobUpdateStrategy.BatchJobUpdateStrategy,
      new BatchJobUpdateStrategyT(3, true)))),
    new OperationT(Op.SaveJobUpdate, new SaveJobUpdateT(jobUpdate(JobUpdateStrategy.VariableBatchJobUpdateStrategy,
      new VariableBatchJobUpdateStrategyT([1, 2, 5], false)))),
    new OperationT(Op.SaveJobUpdateEvent, new SaveJobUpdateEventT(updateKey(),
      new JobUpdateEventT(JobUpdateStatus.ROLL_FORWARD_PAUSED, 30n, 'alice', 'paused'))),
    new OperationT(Op.SaveJobInstanceUpdateEvent, new SaveJobInstanceUpdateEventT(updateKey(),
      new JobInstanceUpdateEventT(4, 40n, JobUpdateAction.INSTANCE_UPDATED, 'updated'))),
    new OperationT(Op.RemoveJobUpdates, new RemoveJobUpdatesT([updateKey(), new JobUpdateKeyT(jobKey(), 'update-2')])),
    new OperationT(Op.SaveQuota, new SaveQuotaT('www-data', new ResourceAggregateT([
      new ResourceT(ResourceType.NUM_CPUS, 100, 0n, 0n, null, 0n),
      new ResourceT(ResourceType.RAM_MB, 0, 65536n, 0n, null, 0n),
    ]))),
    new OperationT(Op.RemoveQuota, new RemoveQuotaT('www-data')),
    new OperationT(Op.SaveHostAttributes, new SaveHostAttributesT([new HostAttributesT('host-0001',
      [new AttributeT('rack', ['rack-01']), new AttributeT('zone', ['a', 'b'])], MaintenanceMode.DRAINING, 'agent-S1',
      5n)])),
    new OperationT(Op.SaveMaintenanceRequest, new SaveMaintenanceRequestT(new HostMaintenanceRequestT('host-0001',
      SlaPolicy.PercentageSlaPolicy, new PercentageSlaPolicyT(66.5, 1800n), 3600n, 50n, 0n))),
    new OperationT(Op.RemoveMaintenanceRequest, new RemoveMaintenanceRequestT('host-0001')),
    new OperationT(Op.SaveSchedulerMetadata, new SaveSchedulerMetadataT(new SchedulerMetadataT('framework-1',
      [new KeyValueT('version', '0.22.0')], 0n))),
  ];
}

test('a Transaction with every Op member round-trips', (t) => {
  const transaction = new TransactionT(new IdempotencyKeyT('client-1', 18446744073709551615n), [
    new PreconditionT(RecordTable.TASK, PreconditionKind.TASK_STATUS, 't-1', null, null, null, null, 0n,
      ScheduleStatus.RUNNING),
    new PreconditionT(RecordTable.JOB_UPDATE, PreconditionKind.AT_REVISION, null, jobKey(), updateKey(), 'www-data',
      'host-0001', 42n, ScheduleStatus.PENDING),
  ], [fullConfig(), otherConfig()], operations());
  t.deepEqual([...new Set(transaction.ops.map((operation) => operation.opType))].sort((a, b) => a - b), members(Op),
    'the transaction covers every Op member (add the new one here)');
  const decoded = decodeTransaction(encode(transaction));
  t.deepEqual(decoded, transaction);
  t.is((decoded.ops[0]?.op as UpsertTasksT).tasks[0]?.assignedTask?.task?.constraints[1]?.constraintType,
    TaskConstraint.ValueConstraint);
});

function queries(): QueryRequestT[] {
  return [
    new QueryRequestT(Query.TaskQuery, new TaskQueryT('www-data', 'prod', 'hello', ['t-1'],
      [ScheduleStatus.RUNNING, ScheduleStatus.PARTITIONED], [0, 1], ['host-0001'], [jobKey()], 10, 50,
      ConfigDetail.WITHOUT_EXECUTOR_DATA)),
    new QueryRequestT(Query.JobKeysQuery, new JobKeysQueryT('www-data')),
    new QueryRequestT(Query.RoleSummaryQuery, new RoleSummaryQueryT()),
    new QueryRequestT(Query.JobSummaryQuery, new JobSummaryQueryT('www-data')),
    new QueryRequestT(Query.QuotaQuery, new QuotaQueryT('www-data')),
    new QueryRequestT(Query.CronJobsQuery, new CronJobsQueryT('www-data', jobKey())),
    new QueryRequestT(Query.JobUpdateQuery, new JobUpdateQueryT('www-data', updateKey(), jobKey(), 'alice',
      [JobUpdateStatus.ROLLED_FORWARD, JobUpdateStatus.ERROR], 5, 20, ConfigDetail.HASH_ONLY)),
    new QueryRequestT(Query.HostAttributesQuery, new HostAttributesQueryT(['host-0001', 'host-0002'])),
    new QueryRequestT(Query.MaintenanceQuery, new MaintenanceQueryT(['host-0001'])),
    new QueryRequestT(Query.SchedulerQuery, new SchedulerQueryT()),
  ];
}

test('a QueryRequest of every Query member round-trips, alone and in a batch', (t) => {
  const all = queries();
  t.deepEqual(all.map((request) => request.queryType), members(Query),
    'every Query member is covered (add the new one here)');
  for (const request of all) t.deepEqual(decodeQueryRequest(encode(request)), request, Query[request.queryType]);
  const batch = new QueryBatchT(all);
  t.deepEqual(decodeQueryBatch(encode(batch)), batch);
});
