/**
 * The fault suite's mode and report (scripts/faults.sh). Quick unless STRATA_FAULTS=full: the short run that
 * `npm test` includes must pass on a busy 2-core machine in a minute or two; the full run is the one whose
 * figures docs/reliability.md quotes.
 */
import { appendFileSync } from 'node:fs';

export const faultMode: 'quick' | 'full' = process.env.STRATA_FAULTS === 'full' ? 'full' : 'quick';

/** The quick figure or the full one. */
export function byMode<T>(quick: T, full: T): T {
  return faultMode === 'full' ? full : quick;
}

/**
 * One suite's summary: what ran, what was injected, what was checked and found. Appended as a JSON line to
 * $STRATA_FAULTS_REPORT when set (scripts/faults.sh prints them), and returned for t.log.
 */
export function report(suite: string, figures: Record<string, unknown>): string {
  const line = JSON.stringify({ suite, mode: faultMode, date: new Date().toISOString(), ...figures });
  const file = process.env.STRATA_FAULTS_REPORT;
  if (file !== undefined && file !== '') appendFileSync(file, `${line}\n`);
  return line;
}
