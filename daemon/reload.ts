/**
 * SIGHUP: what of a freshly loaded config applies to a running daemon, and what needs a restart. Owner: the main
 * thread. Pure: it compares two checked configs and builds the one to run; the daemon applies it.
 *
 * Invariants:
 * - The config returned is the running one with exactly the live keys (liveKeys) and the tokens of the new one:
 *   a key that needs a restart keeps its running value, whatever the file says now, and is reported.
 * - The report names keys and token names only, never a token's value (nor tlsPassphrase's).
 */
import { configKeys, configValue, setConfigValue, type DaemonConfig, type TokenConfig } from './config.js';

/**
 * Keys applied to a running daemon. Everything else needs a restart: the data directory, the listen address and
 * TLS (the socket is bound), readerThreads (the pool is built), frameBytesMax and idleTimeoutS (uWS fixed them at
 * listen), snapshot.* and backup.* (the writer took them at open), allow* (checked at start).
 * watch.closeBytes is live only while uWS's buffer limit fixed at listen stays above it (live() checks).
 */
export const liveKeys: ReadonlySet<string> = new Set([
  'logLevel', 'shutdownTimeoutMs', 'slowLog.fsyncMs', 'slowLog.commitMs', 'slowLog.queryMs',
  'limits.requestsInFlightMax', 'limits.subscriptionsMax', 'limits.requestsPerSecondMax', 'limits.connectionsMax',
  'limits.helloTimeoutMs', 'watch.historyBytes', 'watch.progressMs', 'watch.bufferBytes', 'watch.closeBytes',
  'watch.listsConcurrent',
]);

/** Keys whose values a log line never shows. */
const secretKeys: ReadonlySet<string> = new Set(['tlsPassphrase']);

export interface ReloadPlan {
  /** The config to run: the running one, with the live changes and the new tokens. */
  config: DaemonConfig;
  /** Live keys that changed: name, old value, new value. */
  applied: { key: string; from: unknown; to: unknown }[];
  /** Keys that changed but need a restart (not applied). */
  needsRestart: { key: string; from: unknown; to: unknown }[];
  tokens: { added: string[]; removed: string[]; changed: string[] };
}

/**
 * Compares the running config with a new one. `backpressureListen`: uWS's per-socket buffer limit fixed at listen
 * (server.ts backpressureMax): a watch.closeBytes that would need a bigger one needs a restart.
 */
export function planReload(running: DaemonConfig, next: DaemonConfig, backpressureOf: (c: DaemonConfig) => number,
  backpressureListen: number): ReloadPlan {
  const config = structuredClone(running);
  const plan: ReloadPlan = { config, applied: [], needsRestart: [], tokens: tokenChanges(running.tokens, next.tokens) };
  for (const key of configKeys) {
    const from = configValue(running, key);
    const to = configValue(next, key);
    if (from === to) continue;
    const shown = secretKeys.has(key) ? { key, from: '***', to: '***' } : { key, from, to };
    if (!liveKeys.has(key)) {
      plan.needsRestart.push(shown);
      continue;
    }
    setConfigValue(config, key, to);
    if (key === 'watch.closeBytes' && backpressureOf(config) > backpressureListen) {
      setConfigValue(config, key, from);
      plan.needsRestart.push(shown);
      continue;
    }
    plan.applied.push(shown);
  }
  // The live keys together must still make sense (loadConfig checked them beside the new file's restart keys).
  if (config.watch.closeBytes < config.watch.bufferBytes || config.watch.closeBytes < config.limits.frameBytesMax) {
    for (const key of ['watch.closeBytes', 'watch.bufferBytes']) {
      const index = plan.applied.findIndex((a) => a.key === key);
      if (index < 0) continue;
      setConfigValue(config, key, configValue(running, key));
      plan.needsRestart.push(plan.applied.splice(index, 1)[0]!);
    }
  }
  config.tokens = next.tokens.map((t) => ({ ...t, read: [...t.read], write: [...t.write] }));
  return plan;
}

function tokenChanges(before: TokenConfig[], after: TokenConfig[]): ReloadPlan['tokens'] {
  const byName = (list: TokenConfig[]) => new Map(list.map((t) => [t.name, t]));
  const old = byName(before);
  const now = byName(after);
  const same = (a: TokenConfig, b: TokenConfig) => a.token === b.token && a.admin === b.admin &&
    a.read.join('\u0000') === b.read.join('\u0000') && a.write.join('\u0000') === b.write.join('\u0000');
  return {
    added: [...now.keys()].filter((n) => !old.has(n)),
    removed: [...old.keys()].filter((n) => !now.has(n)),
    changed: [...now.keys()].filter((n) => old.has(n) && !same(old.get(n)!, now.get(n)!)),
  };
}

/** Whether the plan changes anything at all. */
export function planChanges(plan: ReloadPlan): boolean {
  const t = plan.tokens;
  return plan.applied.length + plan.needsRestart.length + t.added.length + t.removed.length + t.changed.length > 0;
}
