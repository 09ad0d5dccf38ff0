/**
 * The general log form of a transaction that carries configs: every config occurrence becomes a config_hash,
 * and Transaction.configs holds only the configs this transaction stored for the first time. So a config is
 * logged once, when it is first stored, however many tasks, updates or later transactions carry it.
 * Owner: the writer thread. Only transactions that give a config inline, or repeat an already-stored one in
 * Transaction.configs, come here (clients that send each new config once, by hash, skip it: the common case).
 * Invariant: replaying the rewritten transaction on the state before it plans the same configs (by the same
 * hashes) and does the same thing: configs that it does not log were stored before it.
 */
import * as flatbuffers from 'flatbuffers';
import { canonicalConfig } from '../../core/config.js';
import {
  InstanceTaskConfigT, SaveCronJobT, SaveJobUpdateT, TaskConfigT, Transaction, TransactionT, UpsertTasksT,
} from '../../core/fbs/strata.js';

const builder = new flatbuffers.Builder(64 * 1024);

/**
 * `transaction` as the log keeps it; `isNew(hex)`: this transaction stored the config with that hash first.
 * Returns fresh bytes.
 */
export function rewriteConfigs(transaction: Transaction, isNew: (hex: string) => boolean): Uint8Array {
  const t: TransactionT = transaction.unpack();
  const logged = new Map<string, TaskConfigT>();
  const byHash = (config: TaskConfigT): number[] => {
    const canonical = canonicalConfig(config);
    if (isNew(canonical.hashHex) && !logged.has(canonical.hashHex)) logged.set(canonical.hashHex, config);
    return Array.from(canonical.hash);
  };
  for (const config of t.configs) byHash(config);
  for (const operation of t.ops) {
    const op = operation.op;
    if (op instanceof UpsertTasksT) {
      for (const task of op.tasks) {
        const assigned = task.assignedTask;
        if (assigned?.task != null) {
          assigned.configHash = byHash(assigned.task);
          assigned.task = null;
        }
      }
    } else if (op instanceof SaveCronJobT) {
      if (op.job?.taskConfig != null) {
        op.job.configHash = byHash(op.job.taskConfig);
        op.job.taskConfig = null;
      }
    } else if (op instanceof SaveJobUpdateT) {
      const instructions = op.update?.instructions;
      if (instructions != null) {
        const inline = (entry: InstanceTaskConfigT | null): void => {
          if (entry?.task == null) return;
          entry.configHash = byHash(entry.task);
          entry.task = null;
        };
        for (const entry of instructions.initialState) inline(entry);
        inline(instructions.desiredState);
      }
    }
  }
  t.configs = [...logged.values()];
  builder.clear();
  builder.finish(t.pack(builder));
  return builder.asUint8Array().slice();
}
