/**
 * Reference model, state: plain Maps of records, one per table of docs/semantics.md. Owner: tests only.
 * Invariants: records are never mutated once stored (a change stores a new object), so a transaction works on
 * a shallow copy of the Maps and an error simply drops the copy; every stored config has refs > 0 between
 * transactions; stored records hold no empty strings and no inline configs (they refer to configs by hash).
 */
import * as flatbuffers from 'flatbuffers';
import { canonicalConfig, decodeConfig, hashHex } from '../../core/config.js';
import {
  HostAttributesT, HostMaintenanceRequestT, JobConfigurationT, JobUpdateDetailsT, QuotaT, ScheduledTaskT,
  SchedulerMetadataT, TaskConfigT,
} from '../../core/fbs/strata.js';

export interface ConfigRecord {
  readonly hash: Uint8Array;
  readonly hashHex: string;
  readonly bytes: Uint8Array;         // canonical bytes
  readonly bytesStripped: Uint8Array; // canonical bytes without executor_config.data
  readonly config: TaskConfigT;       // decoded from the canonical bytes
  readonly refs: number;
}

export interface TaskRecord { readonly task: ScheduledTaskT; readonly configHex: string }
export interface CronRecord { readonly job: JobConfigurationT; readonly configHex: string }
/** A job update: instructions by hash; `summary.state` is null here and derived by queries. */
export interface UpdateRecord { readonly details: JobUpdateDetailsT; readonly configHexes: readonly string[] }

export interface State {
  tasks: Map<string, TaskRecord>;
  configs: Map<string, ConfigRecord>;
  cronJobs: Map<string, CronRecord>;       // by jobKeyString
  updates: Map<string, UpdateRecord>;      // by updateKeyString
  quotas: Map<string, QuotaT>;
  hosts: Map<string, HostAttributesT>;
  maintenance: Map<string, HostMaintenanceRequestT>;
  scheduler: SchedulerMetadataT | null;
}

export function emptyState(): State {
  return {
    tasks: new Map(), configs: new Map(), cronJobs: new Map(), updates: new Map(), quotas: new Map(),
    hosts: new Map(), maintenance: new Map(), scheduler: null,
  };
}

export function copyState(state: State): State {
  return {
    tasks: new Map(state.tasks), configs: new Map(state.configs), cronJobs: new Map(state.cronJobs),
    updates: new Map(state.updates), quotas: new Map(state.quotas), hosts: new Map(state.hosts),
    maintenance: new Map(state.maintenance), scheduler: state.scheduler,
  };
}

/** Removes the configs whose count dropped to 0 during a transaction. */
export function dropUnreferencedConfigs(state: State): void {
  for (const [key, record] of state.configs) {
    if (record.refs === 0) state.configs.delete(key);
  }
}

const builder = new flatbuffers.Builder(1024);

/** A private deep copy (the object API has no clone): pack, then unpack. */
export function copyConfig(config: TaskConfigT): TaskConfigT {
  builder.clear();
  builder.finish(config.pack(builder));
  return decodeConfig(builder.asUint8Array().slice());
}

/** A config as the model stores it, with refs 0; the caller counts references. */
export function configRecord(config: TaskConfigT): ConfigRecord {
  const canonical = canonicalConfig(copyConfig(config));
  const stripped = decodeConfig(canonical.bytes);
  if (stripped.executorConfig !== null) stripped.executorConfig.data = null;
  return {
    hash: canonical.hash,
    hashHex: hashHex(canonical.hash),
    bytes: canonical.bytes,
    bytesStripped: canonicalConfig(stripped).bytes,
    config: decodeConfig(canonical.bytes),
    refs: 0,
  };
}

export function withRefs(record: ConfigRecord, refs: number): ConfigRecord {
  return { ...record, refs };
}
