/**
 * Model-based test: random transactions (test/model/generate.ts) applied to both the engine (daemon/engine.ts)
 * and the reference model (test/model/reference.ts); every transaction result and a few random queries after
 * every step must be equal, and so must the revision, task and config counts. Owner: tests only.
 * Invariants: commits and queries are issued one at a time, so the engine's answers read exactly the revision
 * the model is at (commit resolves after publish); the first difference stops the seed and is reported with
 * its seed, key space and step.
 *
 * Seeds run in the small key space (frequent collisions, conflicts and errors) or the large one (thousands of
 * stored tasks, so the engine's B+trees grow several levels deep; a tree of one or two levels hid a separator
 * bug from this test once). Each seed logs its outcomes, the most tasks stored at once, and the depth and node
 * count of the engine's task indexes at the end. Reproduce one seed (after `npm run build`) with
 * `MODEL_SEED=7 MODEL_STEPS=300 npx ava dist/test/model-engine.test.js`, adding `MODEL_KEY_SPACE=large` for a
 * large-space seed.
 */
import test, { ExecutionContext } from 'ava';
import { ArenaView } from '../core/arena.js';
import { nodeCount, treeNodes, TreeShape } from '../core/btree.js';
import { decodeQueryResponse, decodeTransactionResult, encode } from '../core/codec.js';
import { ErrorCode, QueryRequestT, TransactionT } from '../core/fbs/strata.js';
import * as layout from '../core/layout.js';
import { fourKeyShape, jobIndexShape, pairShape, taskIdShape } from '../core/store.js';
import { Engine } from '../daemon/engine.js';
import { Generator } from './model/generate.js';
import { keySpaces, KeySpaceName } from './model/generate-pools.js';
import { describe, normalizeQueryResponse, normalizeTransactionResult } from './model/normalize.js';
import { ReferenceModel } from './model/reference.js';

interface SeedPlan {
  seed: number;
  keySpace: KeySpaceName;
  steps: number;
  queriesPerStep: number;
}

// The whole file must stay near a minute on a busy 2-core machine: about 6 s per small seed, 17 s per large one.
// With the inner-key fix of commit d954132 (core/btree.ts) reverted, both large seeds fail within 15 steps, and
// the four small ones pass.
const smallPlan = { keySpace: 'small', steps: 1200, queriesPerStep: 3 } as const;
const largePlan = { keySpace: 'large', steps: 1500, queriesPerStep: 1 } as const;
const plansDefault: SeedPlan[] = [
  { seed: 1, ...smallPlan }, { seed: 7, ...smallPlan }, { seed: 42, ...smallPlan }, { seed: 20240601, ...smallPlan },
  { seed: 3, ...largePlan }, { seed: 11, ...largePlan },
];
const countsEverySteps = 100;        // engine.stats() against the model, to localize a counting drift

function plansOf(env: NodeJS.ProcessEnv): SeedPlan[] {
  if (env['MODEL_SEED'] === undefined) return plansDefault;
  const keySpace = (env['MODEL_KEY_SPACE'] ?? 'small') as KeySpaceName;
  if (!(keySpace in keySpaces)) throw new Error(`MODEL_KEY_SPACE is one of ${Object.keys(keySpaces).join(', ')}`);
  const plan = keySpace === 'large' ? largePlan : smallPlan;
  return [{ ...plan, seed: Number(env['MODEL_SEED']), steps: Number(env['MODEL_STEPS'] ?? plan.steps) }];
}

interface Run {
  t: ExecutionContext;
  engine: Engine;
  model: ReferenceModel;
  generator: Generator;
  plan: SeedPlan;
  step: number;
  outcomes: Map<string, number>;   // transaction outcomes by error code (or duplicate), to see what a seed covered
  tasksMax: number;                // the most tasks stored at once
}

function reproduce(run: Run): string {
  const space = run.plan.keySpace === 'small' ? '' : `MODEL_KEY_SPACE=${run.plan.keySpace} `;
  return `${space}MODEL_SEED=${run.plan.seed} MODEL_STEPS=${run.step + 1}`;
}

/** Compares two normalized values cheaply; on a difference, logs the context and asserts (for ava's diff). */
function same(run: Run, actual: unknown, expected: unknown, what: string, input: unknown): boolean {
  if (JSON.stringify(actual) === JSON.stringify(expected)) return true;
  run.t.log(`seed ${run.plan.seed} step ${run.step}: ${what} differs; reproduce with ${reproduce(run)}`);
  run.t.log(`input: ${describe(input)}`);
  run.t.deepEqual(actual, expected,
    `seed ${run.plan.seed} step ${run.step}: ${what} (actual: engine, expected: model)`);
  return false;
}

async function engineCall(run: Run, what: string, call: () => Promise<Uint8Array>): Promise<Uint8Array | null> {
  try {
    return await call();
  } catch (error) {
    run.t.fail(`seed ${run.plan.seed} step ${run.step}: engine ${what} threw ${String(error)}; ${reproduce(run)}`);
    return null;
  }
}

async function commitStep(run: Run, transaction: TransactionT): Promise<boolean> {
  const bytes = await engineCall(run, 'commit', () => run.engine.commit(encode(transaction)));
  const result = run.model.commit(transaction);
  const outcome = result.duplicate ? 'duplicate' : ErrorCode[result.error?.code ?? ErrorCode.OK] ?? 'unknown';
  run.outcomes.set(outcome, (run.outcomes.get(outcome) ?? 0) + 1);
  const expected = normalizeTransactionResult(result);
  if (bytes === null) return false;
  const actual = normalizeTransactionResult(decodeTransactionResult(bytes));
  return same(run, actual, expected, 'transaction result', transaction);
}

async function queryStep(run: Run, request: QueryRequestT): Promise<boolean> {
  const bytes = await engineCall(run, 'query', () => run.engine.query(encode(request)));
  if (bytes === null) return false;
  const actual = normalizeQueryResponse(decodeQueryResponse(bytes));
  const expected = normalizeQueryResponse(run.model.query(request));
  return same(run, actual, expected, 'query response', request);
}

function countsStep(run: Run): boolean {
  const stats = run.engine.stats();
  const actual = { revision: stats.revision, taskCount: stats.taskCount, configCount: stats.configCount };
  const expected = { revision: run.model.revision, taskCount: run.model.taskCount(),
    configCount: run.model.configCount() };
  return same(run, actual, expected, 'engine.stats() counts', {});
}

/** Depth and node count of a tree; all leaves of a B+tree are at the same depth, so the first child path tells. */
function treeSize(view: ArenaView, shape: TreeShape, root: number): string {
  let nodes = 0;
  treeNodes(view, shape, root, () => { nodes += 1; });
  let depth = 0;
  const firstChildWord = 4 + shape.keyWords;   // core/btree.ts: header words 0-3, then inner entries (key, child)
  for (let node = root; node !== 0 && depth < 24; depth += 1) {
    node = view.u32[(node >>> 2) + 1] === 1 ? 0 : view.u32[(node >>> 2) + firstChildWord]!;   // word 1: leaf flag
  }
  return `depth ${depth} (${nodes} nodes, root ${nodeCount(view, root)} entries)`;
}

/** The engine's task indexes in the published revision; read between steps, while the writer is idle. */
function treeSizes(engine: Engine): string {
  const view = new ArenaView(engine.arena);
  const rootBlock = Atomics.load(new Int32Array(engine.control), layout.controlRootPublishedWord) >>> 0;
  const roots = new Uint32Array(engine.arena, rootBlock, layout.rootWords);
  const trees: [string, number, TreeShape][] = [
    ['task ids', layout.rootTaskIdTreeWord, taskIdShape], ['jobs', layout.rootJobIndexWord, jobIndexShape],
    ['statuses', layout.rootStatusIndexWord, pairShape], ['hosts', layout.rootHostIndexWord, pairShape],
    ['config hashes', layout.rootConfigHashWord, fourKeyShape], ['strings', layout.rootInternWord, pairShape],
  ];
  return trees.map(([name, word, shape]) => `${name} ${treeSize(view, shape, roots[word]!)}`).join('; ');
}

async function runSeed(t: ExecutionContext, plan: SeedPlan): Promise<void> {
  const engine = await Engine.open({ readerThreads: 1 });
  const model = new ReferenceModel();
  const generator = new Generator(plan.seed, model, { keySpace: plan.keySpace });
  const run: Run = { t, engine, model, generator, plan, step: 0, outcomes: new Map(), tasksMax: 0 };
  try {
    for (; run.step < plan.steps; run.step += 1) {
      if (!await commitStep(run, run.generator.transaction())) return;
      run.tasksMax = Math.max(run.tasksMax, model.taskCount());
      for (let index = 0; index < plan.queriesPerStep; index += 1) {
        if (!await queryStep(run, run.generator.query())) return;
      }
      if (run.step % countsEverySteps === 0 && !countsStep(run)) return;
    }
    if (!countsStep(run)) return;
    t.log(`seed ${plan.seed} (${plan.keySpace}): ${plan.steps} steps, revision ${model.revision}, ` +
      `${model.taskCount()} tasks (at most ${run.tasksMax}), ${model.configCount()} configs; outcomes ` +
      `${[...run.outcomes].map(([code, count]) => `${code} ${count}`).join(', ')}`);
    t.log(`seed ${plan.seed} trees at the end: ${treeSizes(engine)}`);
    t.pass();
  } finally {
    await engine.close();
  }
}

for (const plan of plansOf(process.env)) {
  test.serial(`the engine answers like the reference model (seed ${plan.seed}, ${plan.keySpace} key space, ` +
    `${plan.steps} steps)`, (t) => runSeed(t, plan));
}
