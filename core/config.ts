/**
 * Canonical task configs. Owner: any thread (pure).
 * Invariants: equal configs (as Aurora compares them: sets as sets, maps as maps, empty strings as absent) give
 * byte-identical canonical FlatBuffers and so the same hash; the canonical bytes decode to the same config.
 * The hash is the first configHashBytes bytes of SHA-256 of the canonical bytes.
 */
import { createHash } from 'node:crypto';
import * as flatbuffers from 'flatbuffers';
import { text, type Text } from './text.js';
import {
  ConstraintT, KeyValueT, LimitConstraintT, MesosFetcherUriT, MetadataT, ResourceT,
  TaskConfig, TaskConfigT, TaskConstraint, ValueConstraintT,
} from './fbs/strata.js';

export const configHashBytes = 16; // 128 bits: collisions are out of reach for any config count we can store

export interface CanonicalConfig {
  bytes: Uint8Array;
  hash: Uint8Array;
  hashHex: string;
}

const builder = new flatbuffers.Builder(4096);

function compareStrings(a: Text, b: Text): number {
  const x = text(a);
  const y = text(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareNumbers(a: number | bigint, b: number | bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function emptyToNull(value: Text): string | null {
  const s = text(value);
  return s === '' ? null : s;
}

function sortedUnique<T>(items: T[], compare: (a: T, b: T) => number): T[] {
  const sorted = items.slice().sort(compare);
  const out: T[] = [];
  for (const item of sorted) {
    const last = out[out.length - 1];
    if (last === undefined || compare(last, item) !== 0) out.push(item);
  }
  return out;
}

function compareResources(a: ResourceT, b: ResourceT): number {
  return compareNumbers(a.type, b.type) || compareNumbers(a.numCpus, b.numCpus) ||
    compareNumbers(a.ramMb, b.ramMb) || compareNumbers(a.diskMb, b.diskMb) ||
    compareStrings(a.namedPort, b.namedPort) || compareNumbers(a.numGpus, b.numGpus);
}

function constraintKey(c: ConstraintT): string {
  if (c.constraintType === TaskConstraint.ValueConstraint) {
    const v = c.constraint as ValueConstraintT;
    return `v${v.negated ? 1 : 0}\u0000${v.values.join('\u0000')}`;
  }
  if (c.constraintType === TaskConstraint.LimitConstraint) return `l${(c.constraint as LimitConstraintT).limit}`;
  return '-';
}

/**
 * Empty means absent: replaces every empty string field of an object-API value (recursively, through nested
 * tables and vectors of tables) with null, in place. Strings inside vectors of strings are left as they are.
 */
export function emptyStringsToNull<T>(value: T): T {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) {
    for (const item of value) emptyStringsToNull(item);
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const field = record[key];
    if (field === '') record[key] = null;
    else if (field !== null && typeof field === 'object') emptyStringsToNull(field);
  }
  return value;
}

/** Normalizes a config in place (sets sorted and de-duplicated, empty strings to null) and returns it. */
export function normalizeConfig(config: TaskConfigT): TaskConfigT {
  emptyStringsToNull(config);
  config.tier = emptyToNull(config.tier);
  config.contactEmail = emptyToNull(config.contactEmail);
  if (config.job) {
    config.job.role = emptyToNull(config.job.role);
    config.job.environment = emptyToNull(config.job.environment);
    config.job.name = emptyToNull(config.job.name);
  }
  if (config.owner) {
    config.owner.role = emptyToNull(config.owner.role);
    config.owner.user = emptyToNull(config.owner.user);
  }
  for (const r of config.resources) r.namedPort = emptyToNull(r.namedPort);
  config.resources = sortedUnique(config.resources, compareResources);
  for (const c of config.constraints) {
    c.name = emptyToNull(c.name);
    if (c.constraintType === TaskConstraint.ValueConstraint) {
      const v = c.constraint as ValueConstraintT;
      v.values = sortedUnique(v.values.map(text), compareStrings);
    }
  }
  config.constraints = sortedUnique(config.constraints,
    (a, b) => compareStrings(a.name, b.name) || compareStrings(constraintKey(a), constraintKey(b)));
  config.requestedPorts = sortedUnique(config.requestedPorts.map(text), compareStrings);
  config.mesosFetcherUris = sortedUnique(config.mesosFetcherUris, (a: MesosFetcherUriT, b: MesosFetcherUriT) =>
    compareStrings(a.value, b.value) || compareNumbers(+a.extract, +b.extract) || compareNumbers(+a.cache, +b.cache));
  config.taskLinks = sortedUnique(config.taskLinks, (a: KeyValueT, b: KeyValueT) =>
    compareStrings(a.key, b.key) || compareStrings(a.value, b.value));
  config.metadata = sortedUnique(config.metadata, (a: MetadataT, b: MetadataT) =>
    compareStrings(a.key, b.key) || compareStrings(a.value, b.value));
  if (config.executorConfig) {
    config.executorConfig.name = emptyToNull(config.executorConfig.name);
    config.executorConfig.data = emptyToNull(config.executorConfig.data);
  }
  return config;
}

export function hashBytes(bytes: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(bytes).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, configHashBytes).slice();
}

export function hashHex(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex');
}

/** The canonical bytes and hash of a config (which is normalized in place). */
export function canonicalConfig(config: TaskConfigT): CanonicalConfig {
  normalizeConfig(config);
  builder.clear();
  builder.finish(config.pack(builder));
  const bytes = builder.asUint8Array().slice();
  const hash = hashBytes(bytes);
  return { bytes, hash, hashHex: hashHex(hash) };
}

/** Reads canonical (or any) TaskConfig bytes into the object API. */
export function decodeConfig(bytes: Uint8Array): TaskConfigT {
  return TaskConfig.getRootAsTaskConfig(new flatbuffers.ByteBuffer(bytes)).unpack();
}

