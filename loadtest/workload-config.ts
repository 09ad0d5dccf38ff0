/**
 * Task configs of the standard workload (shared reference workload.md): one ~1.5 KiB config per job, or several
 * per job when `distinctConfigs` asks for more. Owner: benchmark and test processes (main thread or a load
 * generator worker); never imported by workers/ or daemon/.
 * Invariants: a config is a function of (seed, its job's names, config index, variant) alone, whatever was built
 * before it (the padding estimate comes from the first job's config, itself such a function); it is built already
 * normalized, so its object is the one `canonicalConfig` hashed and may go into `Transaction.configs` as is; its
 * canonical bytes are within `configPaddingSlackBytes` of the requested size (unless that is below the unpadded size).
 */
import * as flatbuffers from 'flatbuffers';
import { assert } from '../core/assert.js';
import {
  canonicalConfig, type CanonicalConfig, decodeConfig, hashBytes, hashHex, normalizeConfig,
} from '../core/config.js';
import {
  Container, ConstraintT, DockerImageT, ExecutorConfigT, IdentityT, Image, JobKeyT, KeyValueT, LimitConstraintT,
  MesosContainerT, MetadataT, ResourceT, ResourceType, TaskConfigT, TaskConstraint, ValueConstraintT,
} from '../core/fbs/strata.js';
import { Prng } from '../core/prng.js';
import { hex8 } from './workload-task.js';

export const configBytesDefault = 1536;        // workload.md: "one task config per job (~1.5 KiB)"
export const configBytesMax = 256 * 1024;      // the engine's configBytesMax (docs/semantics.md)
export const configPaddingSlackBytes = 8;      // FlatBuffers aligns strings to 4 bytes; one correction pass is enough
export const envNames = ['prod', 'devel', 'staging', 'test'] as const;
export const rackCount = 40;                   // hosts are spread over 40 racks (rack-01 … rack-40)

const saltJob = 0x6a6f62;       // 'job': the job-wide draws (resources, team, priority)
const saltVariant = 0x766172;   // 'var': the per-variant draws (build, git sha)
const teams = ['search', 'ads', 'storage', 'payments', 'identity', 'messaging', 'video', 'infra'];
const executorName = 'AuroraExecutor';

/** One job's identity, as the config and the task ids spell it. */
export interface JobNames {
  role: string;
  environment: string;
  name: string;
}

/** A config and its canonical form, built once and shared by every task that uses it: never mutate. */
export class WorkloadConfig {
  constructor(
    readonly configIndex: number,
    readonly config: TaskConfigT,
    readonly canonical: CanonicalConfig,
    readonly hashList: number[],  // the object API's form of config_hash, shared by the tasks' AssignedTaskT
  ) {}
}

let filler = '';

/** Server flags to pad a command line with: one string, grown on demand and sliced. */
function fillerOf(chars: number): string {
  while (filler.length < chars) filler += ` --opt-${filler.length}=value`; // at most configBytesMax long
  return filler.slice(0, chars);
}

const paddingMarker = '@PADDING@'; // no workload string contains it, and JSON leaves it as it is

/**
 * A Thermos-like executor config, as the JSON before and after the padding, which goes into the server's
 * command line, the way real configs grow. Split once so padding costs no second JSON.stringify.
 */
function executorDataParts(names: JobNames, config: TaskConfigT): [string, string] {
  const thermos = {
    name: names.name, role: names.role, environment: names.environment,
    health_check_config: {
      health_checker: { http: { endpoint: '/health', expected_response_code: 200 } }, interval_secs: 10,
      timeout_secs: 1,
    },
    task: {
      name: names.name, max_failures: config.maxTaskFailures,
      resources: {
        cpu: config.resources[0]?.numCpus ?? 1, ram_mb: Number(config.resources[1]?.ramMb ?? 128n),
        disk_mb: Number(config.resources[2]?.diskMb ?? 1024n),
      },
      processes: [{
        name: 'server', daemon: false, min_duration: 5,
        cmdline: `exec ./bin/${names.name} --port={{thermos.ports[http]}}${paddingMarker}`,
      }],
    },
  };
  const json = JSON.stringify(thermos);
  const marker = json.indexOf(paddingMarker);
  assert(marker > 0, 'the padding marker survives JSON');
  return [json.slice(0, marker), json.slice(marker + paddingMarker.length)];
}

function resources(prng: Prng): ResourceT[] {
  const numCpus = 0.5 + 0.25 * prng.int(8);          // 0.5 … 2.25
  const ramMb = BigInt(128 * (1 + prng.int(16)));    // 128 … 2048
  const diskMb = BigInt(1024 + 512 * prng.int(7));   // 1024 … 4096
  const zero = BigInt(0);
  return [
    new ResourceT(ResourceType.NUM_CPUS, numCpus, zero, zero, null, zero),
    new ResourceT(ResourceType.RAM_MB, 0, ramMb, zero, null, zero),
    new ResourceT(ResourceType.DISK_MB, 0, zero, diskMb, null, zero),
    new ResourceT(ResourceType.NAMED_PORT, 0, zero, zero, 'health', zero),
    new ResourceT(ResourceType.NAMED_PORT, 0, zero, zero, 'http', zero),
  ];
}

function rackValues(prng: Prng): string[] {
  const first = prng.int(rackCount - 2);
  const count = 1 + prng.int(3);
  const values: string[] = [];
  for (let rack = first; rack < first + count; rack++) values.push(`rack-${String(rack + 1).padStart(2, '0')}`);
  return values;
}

/**
 * The config before padding. Sets are built in canonical order (sorted, unique), so normalizing changes nothing
 * and the object can be shared as the canonical one.
 */
function configUnpadded(names: JobNames, configIndex: number, variant: number, seed: number, prng: Prng): TaskConfigT {
  prng.reseed(seed, configIndex - variant, saltJob); // the job's first config index: the same for all variants
  const production = names.environment === 'prod';
  const config = new TaskConfigT();
  config.job = new JobKeyT(names.role, names.environment, names.name);
  config.owner = new IdentityT(null, `svc-${names.role}`);
  config.isService = prng.chance(0.9);
  config.priority = prng.int(11);
  config.maxTaskFailures = prng.pick([1, 1, 3, 5]);
  config.production = production;
  config.tier = production ? 'preferred' : 'preemptible';
  config.resources = resources(prng);
  config.constraints = [
    new ConstraintT('host', TaskConstraint.LimitConstraint, new LimitConstraintT(1)),
    new ConstraintT('rack', TaskConstraint.ValueConstraint, new ValueConstraintT(false, rackValues(prng))),
  ];
  config.taskLinks = [new KeyValueT('http', 'http://%host%:%port:http%')];
  config.contactEmail = `${names.role}-oncall@example.com`;
  const team = prng.pick(teams);
  const build = 1000 + prng.int(9000) + variant;
  prng.reseed(seed, configIndex, saltVariant);
  const gitSha = hex8(prng.next()) + hex8(prng.next()) + hex8(prng.next()) + hex8(prng.next()) + hex8(prng.next());
  config.metadata = [
    new MetadataT('build', String(build)), new MetadataT('git_sha', gitSha), new MetadataT('team', team),
  ];
  config.containerType = Container.MesosContainer;
  config.container = new MesosContainerT(Image.DockerImage,
    new DockerImageT(`registry.example.com/${names.role}/${names.name}`, `b${build}-${gitSha.slice(0, 12)}`), []);
  config.executorConfig = new ExecutorConfigT(executorName, '');
  return config;
}

/**
 * A builder whose createString copies ASCII itself: Node 20's TextEncoder costs ~0.6 µs a call, which was 40 % of
 * building a config and 20 % of a transition. The bytes are the same, so canonical bytes packed with it equal
 * core/config.ts's. Every builder of the workload is one.
 */
export class AsciiBuilder extends flatbuffers.Builder {
  private scratch = new Uint8Array(4096);

  override createString(value: string | Uint8Array | null | undefined): flatbuffers.Offset {
    if (typeof value !== 'string') return super.createString(value);
    if (value.length > this.scratch.length) this.scratch = new Uint8Array(value.length * 2);
    for (let index = 0; index < value.length; index++) {
      const code = value.charCodeAt(index);
      if (code > 127) return super.createString(value);
      this.scratch[index] = code;
    }
    return super.createString(this.scratch.subarray(0, value.length));
  }
}

const measureBuilder = new AsciiBuilder(4096);
const canonicalBuilder = new AsciiBuilder(4096);
let canonicalChecked = false;

/**
 * canonicalConfig (core/config.ts) with the ASCII builder. The first call in a process also runs the real one
 * on a copy and asserts the same bytes, so a change to canonical form cannot leave this behind unnoticed.
 */
function canonicalConfigFast(config: TaskConfigT): CanonicalConfig {
  normalizeConfig(config);
  canonicalBuilder.clear();
  canonicalBuilder.finish(config.pack(canonicalBuilder));
  const bytes = canonicalBuilder.asUint8Array().slice();
  const hash = hashBytes(bytes);
  if (!canonicalChecked) {
    const reference = canonicalConfig(decodeConfig(bytes));
    assert(Buffer.compare(reference.bytes, bytes) === 0, 'the fast canonical bytes equal core/config.ts\'s');
    canonicalChecked = true;
  }
  return { bytes, hash, hashHex: hashHex(hash) };
}

function packedBytes(config: TaskConfigT): number {
  measureBuilder.clear();
  measureBuilder.finish(config.pack(measureBuilder));
  return measureBuilder.offset();
}

/** What a string costs in a buffer: a u32 length, the bytes, a NUL, padding to 4 (all workload text is ASCII). */
function stringBytes(value: string | Uint8Array | null): number {
  return value === null ? 0 : 4 + ((value.length + 4) & ~3);
}

/** The bytes all of a config's strings cost: the part of its size that varies from config to config. */
function configStringBytes(config: TaskConfigT): number {
  let bytes = stringBytes(config.tier) + stringBytes(config.contactEmail);
  const job = config.job;
  if (job !== null) bytes += stringBytes(job.role) + stringBytes(job.environment) + stringBytes(job.name);
  if (config.owner !== null) bytes += stringBytes(config.owner.role) + stringBytes(config.owner.user);
  for (const resource of config.resources) bytes += stringBytes(resource.namedPort);
  for (const constraint of config.constraints) {
    bytes += stringBytes(constraint.name);
    if (!(constraint.constraint instanceof ValueConstraintT)) continue;
    for (const value of constraint.constraint.values) bytes += stringBytes(value);
  }
  for (const link of config.taskLinks) bytes += stringBytes(link.key) + stringBytes(link.value);
  for (const entry of config.metadata) bytes += stringBytes(entry.key) + stringBytes(entry.value);
  const executor = config.executorConfig;
  if (executor !== null) bytes += stringBytes(executor.name) + stringBytes(executor.data);
  if (config.container instanceof MesosContainerT && config.container.image instanceof DockerImageT) {
    bytes += stringBytes(config.container.image.name) + stringBytes(config.container.image.tag);
  }
  return bytes;
}

/**
 * The bytes of a workload's configs that are not strings, measured once on its first job's config: with it one
 * pack sizes a config's padding (tables and vectors are the same in every config, give or take a scalar left at
 * its default). Deterministic: a function of the first job's names and the seed.
 */
export function configOverheadBytes(names: JobNames, seed: number, prng: Prng): number {
  const config = configUnpadded(names, 0, 0, seed, prng);
  const [before, after] = executorDataParts(names, config);
  (config.executorConfig as ExecutorConfigT).data = before + after;
  return packedBytes(config) - configStringBytes(config);
}

/**
 * Builds config `configIndex` (variant `variant` of its job), padded to `configBytes` canonical bytes using the
 * workload's `overheadBytes`; a config that misses by more than the slack is padded again from its real size.
 */
export function buildWorkloadConfig(
  names: JobNames, configIndex: number, variant: number, seed: number, configBytes: number, overheadBytes: number,
  prng: Prng,
): WorkloadConfig {
  assert(configBytes > 0, 'configBytes is positive');
  assert(configBytes <= configBytesMax, 'configBytes is at most configBytesMax');
  const config = configUnpadded(names, configIndex, variant, seed, prng);
  const executor = config.executorConfig;
  assert(executor !== null);
  const [before, after] = executorDataParts(names, config);
  executor.data = before + after;
  let paddingChars = Math.max(0, configBytes - overheadBytes - configStringBytes(config));
  executor.data = before + fillerOf(paddingChars) + after;
  let canonical = canonicalConfigFast(config);
  const missBytes = configBytes - canonical.bytes.length;
  if (paddingChars > 0 && Math.abs(missBytes) > configPaddingSlackBytes) {
    paddingChars = Math.max(0, paddingChars + missBytes);
    executor.data = before + fillerOf(paddingChars) + after;
    canonical = canonicalConfigFast(config);
  }
  if (paddingChars > 0) {
    assert(Math.abs(canonical.bytes.length - configBytes) <= configPaddingSlackBytes, 'config padded to size');
  }
  return new WorkloadConfig(configIndex, config, canonical, Array.from(canonical.hash));
}
