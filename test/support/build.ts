/**
 * Small builders of transactions and queries for the engine tests (object API, packed with core/codec.ts).
 */
import { encode, make } from '../../core/codec.js';
import * as f from '../../core/fbs/strata.js';

export { f, make, encode };

export function jobConfig(role: string, environment: string, name: string, options: {
  cpus?: number; ramMb?: number; production?: boolean; dedicated?: boolean; data?: string;
} = {}): f.TaskConfigT {
  const constraints = options.dedicated ? [make(f.ConstraintT, { name: 'dedicated', constraintType:
    f.TaskConstraint.ValueConstraint, constraint: make(f.ValueConstraintT, { values: [role] }) })] : [];
  return make(f.TaskConfigT, {
    job: make(f.JobKeyT, { role, environment, name }),
    production: options.production ?? environment === 'prod',
    resources: [
      make(f.ResourceT, { type: f.ResourceType.NUM_CPUS, numCpus: options.cpus ?? 1 }),
      make(f.ResourceT, { type: f.ResourceType.RAM_MB, ramMb: BigInt(options.ramMb ?? 256) }),
    ],
    constraints,
    executorConfig: make(f.ExecutorConfigT, { name: 'thermos', data: options.data ?? '{"task":"run"}' }),
  });
}

export function task(id: string, config: f.TaskConfigT, instance: number, status = f.ScheduleStatus.PENDING,
  host: string | null = null): f.ScheduledTaskT {
  return make(f.ScheduledTaskT, {
    status,
    assignedTask: make(f.AssignedTaskT, { taskId: id, instanceId: instance, task: config, slaveHost: host }),
    taskEvents: [make(f.TaskEventT, { timestamp: 1n, status, message: 'created' })],
  });
}

export function op(type: f.Op, value: object): f.OperationT {
  return make(f.OperationT, { opType: type, op: value as never });
}

export function txn(ops: f.OperationT[], extra: Partial<f.TransactionT> = {}): Uint8Array {
  return encode(make(f.TransactionT, { ops, ...extra }));
}

export function upsert(tasks: f.ScheduledTaskT[]): f.OperationT {
  return op(f.Op.UpsertTasks, make(f.UpsertTasksT, { tasks }));
}

export function transition(id: string, status: f.ScheduleStatus, fields: Partial<f.TransitionTaskT> = {}): f.OperationT {
  return op(f.Op.TransitionTask, make(f.TransitionTaskT, { taskId: id, status, timestamp: 2n, ...fields }));
}

export function query(type: f.Query, value: object): Uint8Array {
  return encode(make(f.QueryRequestT, { queryType: type, query: value as never }));
}

export function taskQuery(fields: Partial<f.TaskQueryT> = {}): Uint8Array {
  return query(f.Query.TaskQuery, make(f.TaskQueryT, fields));
}
