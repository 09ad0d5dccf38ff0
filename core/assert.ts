/**
 * Assertions. Owner: any thread. Always on: a failed assertion is a bug, the thread throws, and the main
 * thread treats a worker's error as fatal. No client byte may reach an assertion: validate at the edge.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: boolean, message?: string): asserts condition {
  if (!condition) throw new AssertionError(message ?? 'assertion failed');
}
