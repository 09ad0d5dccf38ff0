/**
 * Lifecycle transitions for the engine benchmark, as transaction bytes made before any timing starts.
 * Owner: the benchmark process's main thread.
 *
 * Invariants:
 * - One set of `clientsMax` TransitionGenerators (disjoint task sets) per data set, stepped round-robin, is the
 *   only source of transitions against one store: every generator's belief about its tasks' statuses stays true
 *   whatever mix of single and batched transactions was made from it, so every compare-and-set succeeds.
 * - Any run of up to `clientsMax` consecutive steps touches distinct tasks (one step per generator at most), so a
 *   batched transaction never moves the same task twice.
 */
import * as flatbuffers from 'flatbuffers';
import { assert } from '../core/assert.js';
import { TransactionT } from '../core/fbs/strata.js';
import { TransitionGenerator, type WorkloadOptions } from './workload.js';

export const clientsMax = 1000;      // the largest batch the benchmark commits (commit_batch1000)

export class Transitions {
  readonly clientCount: number;
  private readonly generators: TransitionGenerator[] = [];
  private clientNext = 0;
  private readonly builder = new flatbuffers.Builder(1 << 20);
  steps = 0;
  replacements = 0;     // steps that replaced a terminal task (upsert + delete + precondition)

  constructor(o: WorkloadOptions, taskCount: number, seed: number) {
    this.clientCount = Math.min(clientsMax, taskCount);
    for (let client = 0; client < this.clientCount; client++) {
      this.generators.push(new TransitionGenerator(o, { clientIndex: client, clientCount: this.clientCount, seed }));
    }
  }

  private generator(): TransitionGenerator {
    const generator = this.generators[this.clientNext]!;
    this.clientNext = this.clientNext + 1 === this.clientCount ? 0 : this.clientNext + 1;
    this.steps++;
    return generator;
  }

  /** `count` single-transition transactions. */
  single(count: number): Uint8Array[] {
    const out: Uint8Array[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const generator = this.generator();
      out[i] = generator.nextBytes();
      if (generator.replacementId !== '') this.replacements++;
    }
    return out;
  }

  /** `transactionCount` transactions of `batch` transitions of distinct tasks each. */
  batched(batch: number, transactionCount: number): Uint8Array[] {
    assert(batch <= this.clientCount, 'a batch moves distinct tasks: at most one step per generator');
    const out: Uint8Array[] = new Array(transactionCount);
    for (let t = 0; t < transactionCount; t++) {
      const merged = new TransactionT();
      for (let i = 0; i < batch; i++) {
        const generator = this.generator();
        const step = generator.next();
        if (generator.replacementId !== '') this.replacements++;
        for (const precondition of step.preconditions) merged.preconditions.push(precondition);
        for (const operation of step.ops) merged.ops.push(operation);
      }
      this.builder.clear();
      this.builder.finish(merged.pack(this.builder));
      out[t] = this.builder.asUint8Array().slice();
    }
    return out;
  }
}
