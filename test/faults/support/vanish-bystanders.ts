/**
 * Bystanders: well-behaved clients that work while a fault suite hurts the daemon (reader crashes, vanishing
 * clients, fuzzing connections), and whose work must come out exactly right. Owner: tests only.
 *
 * Invariants:
 * - Writer w owns the tasks `<role>-w<w>-t<k>` (k < tasksPerWriter); each commit upserts one of them with a new
 *   instance number (the writer's commit count) and a status from a cycle, with no precondition: it cannot fail,
 *   so every commit must be acknowledged exactly once with a revision of its own.
 * - Only bystanders write `role` (a name no fuzzer produces by chance), so the state of `role` at revision R is the
 *   replay of the acknowledged commits up to R: the watcher must see exactly those revisions in order (no gap, no
 *   repeat, each with its one task as committed), and every query answer at R must equal that replay (checked once
 *   every loop ended, so every commit sent has its answer).
 * - A query may be answered with an error only if its code is in `queryErrorsAllowed`; anything else fails.
 */
import { jobConfig, task, txn, upsert, taskQuery } from '../../support/build.js';
import { commitResult, errorOf, f, make, queryResult, RawClient, revisionsOf } from '../../support/raw-client.js';

export interface BystanderOptions {
  url: string;
  role: string;
  writers: number;
  /** Commits each writer keeps in flight. */
  commitsInFlight?: number;
  queriers: number;
  /** Queries each querier keeps in flight. */
  queriesInFlight?: number;
  tasksPerWriter?: number;
  queryErrorsAllowed?: f.ErrorCode[];
}

export interface BystanderFigures {
  commits: number;
  watchedRevisions: number;
  queries: number;
  queriesChecked: number;
  queryErrors: Record<string, number>;
}

interface Acked { revision: number; id: string; instance: number; status: f.ScheduleStatus }

const statuses = [f.ScheduleStatus.PENDING, f.ScheduleStatus.ASSIGNED, f.ScheduleStatus.RUNNING, f.ScheduleStatus.FINISHED];

export class Bystanders {
  private readonly acked: Acked[] = [];
  private readonly answers: { revision: number; digest: string }[] = [];
  private readonly queryErrors = new Map<string, number>();
  private readonly problems: string[] = [];
  private readonly loops: Promise<void>[] = [];
  private stopping = false;
  private queries = 0;

  private constructor(private readonly options: BystanderOptions, private readonly clients: RawClient[],
    private readonly watcher: RawClient, private readonly subscription: number,
    private readonly startRevision: number) {}

  /** Connects, subscribes the watcher to `role` after the current revision, and starts the loops. */
  static async start(options: BystanderOptions): Promise<Bystanders> {
    const watcher = await RawClient.open(options.url);
    const status = await watcher.request(f.Body.StatusRequest, new f.StatusRequestT());
    const startRevision = Number((status.body as f.StatusResponseT).revision);
    const answer = await watcher.request(f.Body.WatchRequest, make(f.WatchRequestT, {
      afterRevision: BigInt(startRevision), filter: make(f.WatchFilterT, { role: options.role }) }));
    if (answer.bodyType !== f.Body.WatchResponse) throw new Error(`watch refused: ${JSON.stringify(errorOf(answer))}`);
    const clients: RawClient[] = [];
    for (let i = 0; i < options.writers + options.queriers; i++) clients.push(await RawClient.open(options.url));
    const b = new Bystanders(options, clients, watcher, (answer.body as f.WatchResponseT).subscription, startRevision);
    for (let w = 0; w < options.writers; w++) {
      for (let s = 0; s < (options.commitsInFlight ?? 2); s++) b.loops.push(b.writeLoop(clients[w]!, w, s));
    }
    for (let q = 0; q < options.queriers; q++) {
      for (let s = 0; s < (options.queriesInFlight ?? 2); s++) b.loops.push(b.queryLoop(clients[options.writers + q]!));
    }
    return b;
  }

  get commits(): number {
    return this.acked.length;
  }

  private async writeLoop(client: RawClient, writer: number, stream: number): Promise<void> {
    const config = jobConfig(this.options.role, 'prod', `w${writer}`);
    const streams = this.options.commitsInFlight ?? 2;
    const tasks = this.options.tasksPerWriter ?? 8;
    for (let n = stream; !this.stopping; n += streams) {
      const id = `${this.options.role}-w${writer}-t${n % tasks}`;
      const status = statuses[n % statuses.length]!;
      const bytes = txn([upsert([task(id, config, n, status)])]);
      const answer = await client.request(f.Body.CommitRequest, make(f.CommitRequestT, { transaction: [...bytes] }));
      if (answer.bodyType !== f.Body.CommitResponse) {
        this.problems.push(`commit ${id}#${n} answered ${JSON.stringify(errorOf(answer))}`);
        return;
      }
      const result = commitResult(answer);
      if (result.error !== null || result.duplicate) {
        this.problems.push(`commit ${id}#${n}: ${String(result.error?.message)} duplicate=${result.duplicate}`);
        return;
      }
      this.acked.push({ revision: Number(result.revision), id, instance: n, status });
    }
  }

  private async queryLoop(client: RawClient): Promise<void> {
    const request = [...taskQuery({ role: this.options.role })];
    while (!this.stopping) {
      const answer = await client.request(f.Body.QueryRequestMessage, make(f.QueryRequestMessageT, { request }));
      this.queries++;
      const error = errorOf(answer);
      if (error !== null) {
        const name = f.ErrorCode[error.code] ?? String(error.code);
        this.queryErrors.set(name, (this.queryErrors.get(name) ?? 0) + 1);
        if (!(this.options.queryErrorsAllowed ?? []).includes(error.code)) {
          this.problems.push(`query answered ${name}: ${error.message}`);
          return;
        }
        continue;
      }
      const response = queryResult(answer);
      if (response.error !== null) {
        this.problems.push(`query result error ${response.error.code}: ${String(response.error.message)}`);
        return;
      }
      const tasks = (response.result as f.TasksResultT).tasks;
      this.answers.push({ revision: Number(response.revision), digest: digest(tasks.map((x) =>
        [String(x.assignedTask!.taskId), x.assignedTask!.instanceId, x.status] as const)) });
    }
  }

  /**
   * Stops the loops, waits for the watcher to reach the last acknowledged revision, and checks everything (see the
   * invariants). Returns the figures, or throws with every problem found.
   */
  async stop(timeoutMs = 120_000): Promise<BystanderFigures> {
    this.stopping = true;
    await withTimeout(Promise.all(this.loops), timeoutMs, 'bystander loops did not finish');
    const revisions = this.acked.map((a) => a.revision).sort((a, b) => a - b);
    const last = revisions.at(-1) ?? this.startRevision;
    let watched: f.RevisionChangesT[] = [];
    await this.watcher.until(() => {
      watched = revisionsOf(this.watcher.pushes, this.subscription);
      return Number(watched.at(-1)?.revision ?? this.startRevision) >= last;
    }, timeoutMs).catch((error: Error) => this.problems.push(`watch: ${error.message}`));
    this.checkWatch(watched, revisions);
    const checked = this.checkAnswers();
    for (const c of [...this.clients, this.watcher]) c.close();
    if (this.problems.length > 0) throw new Error(`bystanders saw ${this.problems.length} problems:\n${this.problems.slice(0, 20).join('\n')}`);
    return { commits: this.acked.length, watchedRevisions: watched.length, queries: this.queries,
      queriesChecked: checked, queryErrors: Object.fromEntries(this.queryErrors) };
  }

  private checkWatch(watched: f.RevisionChangesT[], revisions: number[]): void {
    if (new Set(revisions).size !== revisions.length) this.problems.push('two commits acknowledged with one revision');
    const byRevision = new Map(this.acked.map((a) => [a.revision, a]));
    const seen = watched.map((r) => Number(r.revision));
    if (seen.join(',') !== revisions.join(',')) {
      this.problems.push(`watch saw ${seen.length} revisions, ${revisions.length} acknowledged; first difference at ` +
        `${seen.findIndex((r, i) => r !== revisions[i])}`);
    }
    for (const r of watched) {
      const a = byRevision.get(Number(r.revision));
      const t = r.tasks[0];
      if (a === undefined || r.tasks.length !== 1 || t === undefined) continue;
      if (t.assignedTask!.taskId !== a.id || t.assignedTask!.instanceId !== a.instance || t.status !== a.status) {
        this.problems.push(`watch revision ${r.revision} carries ${String(t.assignedTask!.taskId)}#${t.assignedTask!.instanceId}`);
      }
    }
  }

  /** Every query answer at revision R equals the replay of the acknowledged commits up to R. */
  private checkAnswers(): number {
    const acked = [...this.acked].sort((a, b) => a.revision - b.revision);
    const answers = [...this.answers].sort((a, b) => a.revision - b.revision);
    const state = new Map<string, readonly [string, number, f.ScheduleStatus]>();
    let next = 0;
    for (const answer of answers) {
      while (next < acked.length && acked[next]!.revision <= answer.revision) {
        const a = acked[next++]!;
        state.set(a.id, [a.id, a.instance, a.status]);
      }
      const expected = digest([...state.values()]);
      if (answer.digest !== expected) {
        this.problems.push(`query at revision ${answer.revision}: ${answer.digest.slice(0, 200)} != ${expected.slice(0, 200)}`);
        if (this.problems.length > 20) break;
      }
    }
    return answers.length;
  }
}

function digest(tasks: readonly (readonly [string, number, f.ScheduleStatus])[]): string {
  return tasks.map(([id, instance, status]) => `${id}:${instance}:${status}`).sort().join(',');
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
