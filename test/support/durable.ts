/**
 * What the durability tests share: a temporary data directory removed after the test, and a commit that must
 * succeed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeTransactionResult } from '../../core/codec.js';
import type { Engine } from '../../daemon/engine.js';
import type * as f from '../../core/fbs/strata.js';

export function tempDir(t: { teardown: (fn: () => void) => void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `strata-${prefix}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function commitOk(engine: Engine, bytes: Uint8Array): Promise<f.TransactionResultT> {
  const result = decodeTransactionResult(await engine.commit(bytes));
  if (result.error !== null) throw new Error(`commit failed: ${String(result.error.message)}`);
  return result;
}
