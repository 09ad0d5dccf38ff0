/**
 * Reference model, pieces every query result uses: paging, vector limits, config detail, the `configs` list.
 * Owner: tests only.
 * Invariants: `configs` lists each config once, in order of first use by the returned records, and is empty for
 * HASH_ONLY; WITHOUT_EXECUTOR_DATA gives the canonical bytes of the config without executor_config.data, under
 * the hash of the stored (whole) config.
 */
import { ConfigDetail, StoredConfigT } from '../../core/fbs/strata.js';
import { invalid, isMember, modelLimits } from './reference-common.js';
import { configOf } from './reference-configs.js';
import { State } from './reference-state.js';

export function checkPaging(offset: number, limit: number): void {
  if (offset < 0) throw invalid(`negative offset ${offset}`);
  if (limit < 0) throw invalid(`negative limit ${limit}`);
}

export function checkVectors(vectors: readonly (readonly unknown[])[]): void {
  for (const vector of vectors) {
    if (vector.length > modelLimits.queryKeysMax) throw invalid(`a vector of ${vector.length} entries`);
  }
}

export function checkConfigDetail(detail: number): void {
  if (!isMember(ConfigDetail, detail)) throw invalid(`config_detail ${detail} is not a ConfigDetail`);
}

/** offset, then limit (0: no limit). */
export function paged<T>(items: readonly T[], offset: number, limit: number): T[] {
  return items.slice(offset, limit === 0 ? undefined : offset + limit);
}

/** Each distinct config once, in order of first use, in the detail asked for. */
export function storedConfigs(state: State, configHexes: readonly string[], detail: ConfigDetail): StoredConfigT[] {
  if (detail === ConfigDetail.HASH_ONLY) return [];
  const seen = new Set<string>();
  const out: StoredConfigT[] = [];
  for (const configHex of configHexes) {
    if (seen.has(configHex)) continue;
    seen.add(configHex);
    const record = configOf(state, configHex);
    const bytes = detail === ConfigDetail.WITHOUT_EXECUTOR_DATA ? record.bytesStripped : record.bytes;
    out.push(new StoredConfigT(Array.from(record.hash), Array.from(bytes)));
  }
  return out;
}
