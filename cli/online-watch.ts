/**
 * `strata watch`: a change stream as JSON lines, one per revision (and one per bookmark, state page and state
 * marker), resumed by the client SDK across reconnects. Owner: the strata process's main thread.
 * Invariants:
 * - Each revision is printed once, whole, in increasing order, none missing, however often the connection drops
 *   (client/watch.ts resumes after the last revision it delivered); a line is flushed as soon as it is printed.
 * - SIGINT and SIGTERM end the watch cleanly (exit 0, the subscription cancelled); --count N ends it after N
 *   revisions; COMPACTED (the revisions asked for are no longer kept) ends it with exit 1 and the oldest revision.
 */
import { CompactedError, StrataClient, StrataError, type WatchMessage, type WatchOptions } from '../client/index.js';
import { count, integer, type Io, list, text, type Values } from './command-spec.js';
import { clientOptions, connectOptions, onlineFailed } from './online.js';
import { enumNames, enumValue, longJson, recordJson } from './schema-json.js';
import { exitFailure, exitOk, UsageError } from './tool-support.js';

/** The client's bookmarks: the server's bounds (10 ms .. its own maximum) apply beyond this. */
const progressMsMax = 24 * 60 * 60 * 1000;

export function watchOptions(values: Values): WatchOptions {
  const tables = list(values, 'table').map((name) => {
    const value = enumValue('RecordTable', /^\d+$/.test(name) ? Number(name) : name);
    if (value === null) {
      throw new UsageError(`--table: unknown table ${JSON.stringify(name)} (one of ${enumNames('RecordTable').join(', ')})`);
    }
    return value;
  });
  const options: WatchOptions = { filter: { tables, taskIds: list(values, 'task') } };
  const role = text(values, 'role');
  const environment = text(values, 'env');
  const jobName = text(values, 'job');
  if (role !== undefined) options.filter!.role = role;
  if (environment !== undefined) options.filter!.environment = environment;
  if (jobName !== undefined) options.filter!.jobName = jobName;
  const from = integer('from', values['from'], 1, 'a revision');
  if (values['list'] === true) {
    if (from !== undefined) throw new UsageError('give --from or --list, not both (a list starts at the current revision)');
    options.list = true;
  }
  if (from !== undefined) options.afterRevision = from - 1;
  const progressMs = integer('progress-ms', values['progress-ms'], 1, 'milliseconds');
  if (progressMs !== undefined) {
    if (progressMs > progressMsMax) throw new UsageError(`--progress-ms: at most ${progressMsMax}`);
    options.progressMs = progressMs;
  }
  return options;
}

/** The JSON line of one message of the watch. */
export function messageLine(message: WatchMessage): string {
  switch (message.type) {
    case 'changes': return JSON.stringify({ type: 'changes', ...recordJson('RevisionChanges', message.changes) });
    case 'state': return JSON.stringify({ type: 'state', ...recordJson('QueryResponse', message.response) });
    default: return JSON.stringify({ type: message.type, revision: longJson(message.revision) });
  }
}

export async function watch(values: Values, io: Io): Promise<number> {
  const options = watchOptions(values);
  const stopAfter = count('count', values['count']);
  const connect = connectOptions(values);
  let client: StrataClient;
  try {
    client = await StrataClient.connect(clientOptions(connect, true));
  } catch (error) {
    return onlineFailed(error, 'watch', io);
  }
  const stream = client.watch(options);
  const stop = () => { void stream.cancel(); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  client.on('disconnected', (info) => {
    const resume = stream.revision;
    io.writeError(`strata: watch: connection lost (${info.error?.message ?? `close ${info.code}`}); reconnecting` +
      `${resume === null ? '' : `, resuming after revision ${resume}`}`);
  });
  client.on('connected', () => io.writeError('strata: watch: reconnected'));
  client.on('error', () => undefined); // reported through the watch or the requests that failed
  let revisions = 0;
  try {
    for await (const message of stream) {
      io.write(messageLine(message));
      io.flush?.();
      if (message.type === 'changes' || message.type === 'reset') revisions++;
      if (stopAfter !== undefined && revisions >= stopAfter) break;
    }
    return exitOk;
  } catch (error) {
    if (error instanceof CompactedError) {
      io.writeError(`strata: watch: COMPACTED: the revisions asked for are no longer kept; the oldest revision is ` +
        `${error.oldestRevision}: watch again with --from ${error.oldestRevision} or --list`);
      return exitFailure;
    }
    if (error instanceof StrataError) return onlineFailed(error, 'watch', io);
    throw error;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await client.close();
  }
}
