/**
 * A child process for crash and fault tests: opens the engine on a data directory and commits under load,
 * printing one line per acknowledged transaction, until it is killed (SIGKILL from the parent, or a failpoint),
 * or the engine fails (it then exits with stratad's exit code for the failure).
 *
 * argv: dataDir clients perClient firstSeq segmentBytes
 * Client c's transaction with sequence s (idempotency key ("c<c>", s)):
 *   s even: UpsertTasks of two tasks c<c>-s<s>-a and c<c>-s<s>-b (PENDING): both or neither, never half;
 *   s odd:  TransitionTask of c<c>-s<s-1>-a to ASSIGNED (the compact log form).
 * stdout: "ready <revision>", then "ack <c> <s> <revision>" per acknowledged transaction, "done" at the end.
 */
import { decodeTransactionResult } from '../../core/codec.js';
import { Engine, type EngineError } from '../../daemon/engine.js';
import { exitCodeFor } from '../../daemon/exit-codes.js';
import { crashTransaction } from './crash-model.js';

const [dataDir, clientsArg, perClientArg, firstSeqArg, segmentArg] = process.argv.slice(2);
const clients = Number(clientsArg);
const perClient = Number(perClientArg);
const firstSeq = Number(firstSeqArg);

const engine = await Engine.open({
  dataDir: dataDir!, segmentBytes: Number(segmentArg), readerThreads: 1,
  onFailure: (error) => {
    process.stdout.write(`failed ${(error as EngineError).code}\n`);
    process.exit(exitCodeFor((error as EngineError).code ?? 'INTERNAL'));
  },
});
process.stdout.write(`ready ${engine.stats().revision}\n`);
const lines: string[] = [];
const flush = () => {
  if (lines.length > 0) process.stdout.write(lines.join(''));
  lines.length = 0;
};
await Promise.all(Array.from({ length: clients }, async (_, c) => {
  for (let s = firstSeq; s < firstSeq + perClient; s++) {
    const result = decodeTransactionResult(await engine.commit(crashTransaction(c, s)));
    if (result.error !== null) {
      process.stdout.write(`error ${c} ${s} ${result.error.code} ${String(result.error.message)}\n`);
      process.exit(1);
    }
    lines.push(`ack ${c} ${s} ${result.revision}\n`);
    if (lines.length >= 16) flush();
  }
}));
flush();
process.stdout.write('done\n');
await engine.close();
