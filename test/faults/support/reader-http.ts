/**
 * The daemon's HTTP face as the fault suites watch it: one gauge or counter from /metrics, and a monitor that keeps
 * asking /metrics and /readyz while faults happen. Owner: tests only.
 * Invariants: the monitor has at most one request in flight and pauses `intervalMs` between rounds (it is a probe,
 * not load); every answer that is not 200 is recorded with its path and status, a refused connection too.
 */

/** The value of an unlabelled metric (or the first series of a labelled one) in /metrics; NaN when absent. */
export async function metricValue(http: string, name: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return match === null ? Number.NaN : Number(match[1]);
}

export interface HealthFigures { answered: number; failures: string[] }

export class HealthMonitor {
  private readonly figures: HealthFigures = { answered: 0, failures: [] };
  private stopping = false;
  private readonly loop: Promise<void>;

  constructor(private readonly http: string, private readonly intervalMs = 100) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      for (const path of ['/metrics', '/readyz']) {
        try {
          const response = await fetch(`${this.http}${path}`);
          await response.text();
          if (response.status === 200) this.figures.answered++;
          else this.figures.failures.push(`${path} ${response.status}`);
        } catch (error) {
          this.figures.failures.push(`${path} ${String((error as Error).message)}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
    }
  }

  async stop(): Promise<HealthFigures> {
    this.stopping = true;
    await this.loop;
    return this.figures;
  }
}
