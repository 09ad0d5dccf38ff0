/**
 * Reference model, the transaction context and config references. Owner: tests only.
 * Invariants: a config is resolved either inline or by hash, never both; a hash resolves against the configs
 * stored before the transaction and Transaction.configs only (not against inline configs of earlier items or
 * operations), even when an earlier operation dropped the count to 0 (configs at count 0 are removed only at
 * commit); an inline config is validated (job, enums, canonical size) with its operation; counts change only
 * through acquire and release.
 */
import { configHashBytes } from '../../core/config.js';
import { ResourceType, TaskConfigT, MesosContainerT, VolumeMode } from '../../core/fbs/strata.js';
import { hex, invalid, isJobKey, isSetMember, modelLimits, notFound } from './reference-common.js';
import { ConfigRecord, configRecord, State, withRefs } from './reference-state.js';

export interface Context {
  readonly state: State;                                   // the transaction's working copy
  readonly configsBefore: ReadonlyMap<string, ConfigRecord>; // the configs stored before the transaction
  readonly revisionNext: bigint;                           // the revision records get if the commit changes anything
  readonly transactionConfigs: Map<string, ConfigRecord>;  // Transaction.configs by hash (hex)
  tasksCounted: number;                                    // tasks named by the operations so far (a limit)
}

/**
 * The validation of docs/semantics.md for a stored config: a valid job, every enum value a member, and at most
 * configBytesMax canonical bytes.
 */
export function configProblem(record: ConfigRecord): string | null {
  const config = record.config;
  if (!isJobKey(config.job)) return 'config.job is not a valid job key';
  if (record.bytes.length > modelLimits.configBytesMax) {
    return `config of ${record.bytes.length} canonical bytes > ${modelLimits.configBytesMax}`;
  }
  for (const resource of config.resources) {
    if (!isSetMember(ResourceType, resource.type)) return `resource type ${resource.type} is not a ResourceType`;
  }
  if (config.container instanceof MesosContainerT) {
    for (const volume of config.container.volumes) {
      if (!isSetMember(VolumeMode, volume.mode)) return `volume mode ${volume.mode} is not a VolumeMode`;
    }
  }
  return null;
}

/** The config of a task, cron job or instance config: inline or by hash. Returns its hash (hex). */
export function resolveConfig(
  context: Context, inline: TaskConfigT | null, hash: number[], opIndex: number,
): string {
  if (inline !== null && hash.length > 0) throw invalid('both an inline config and a config_hash', opIndex);
  if (inline === null && hash.length === 0) throw invalid('neither an inline config nor a config_hash', opIndex);
  if (inline !== null) return resolveInline(context, inline, opIndex);
  if (hash.length !== configHashBytes) throw invalid(`a config_hash of ${hash.length} bytes`, opIndex);
  const hashHex = hex(hash);
  const known = context.configsBefore.get(hashHex) ?? context.transactionConfigs.get(hashHex);
  if (known === undefined) throw notFound(`no config with hash ${hashHex}`, opIndex);
  if (!context.state.configs.has(hashHex)) context.state.configs.set(hashHex, withRefs(known, 0));
  return hashHex;
}

function resolveInline(context: Context, inline: TaskConfigT, opIndex: number): string {
  const record = configRecord(inline);
  const problem = configProblem(record);
  if (problem !== null) throw invalid(problem, opIndex);
  if (!context.state.configs.has(record.hashHex)) context.state.configs.set(record.hashHex, withRefs(record, 0));
  return record.hashHex;
}

export function acquireConfig(context: Context, hashHex: string): void {
  const record = context.state.configs.get(hashHex);
  if (record === undefined) throw new Error(`reference model: acquire of unknown config ${hashHex}`);
  context.state.configs.set(hashHex, withRefs(record, record.refs + 1));
}

export function releaseConfig(context: Context, hashHex: string): void {
  const record = context.state.configs.get(hashHex);
  if (record === undefined || record.refs <= 0) throw new Error(`reference model: bad release of ${hashHex}`);
  context.state.configs.set(hashHex, withRefs(record, record.refs - 1));
}

export function configOf(state: State, hashHex: string): ConfigRecord {
  const record = state.configs.get(hashHex);
  if (record === undefined) throw new Error(`reference model: record refers to unknown config ${hashHex}`);
  return record;
}

export function hashArray(record: ConfigRecord): number[] {
  return Array.from(record.hash);
}
