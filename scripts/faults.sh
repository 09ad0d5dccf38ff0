#!/usr/bin/env bash
# `npm run test:faults [-- --quick]`: the fault suite (test/faults/, docs/reliability.md). Full by default
# (200+ kill -9 rounds and the rest at their full counts, tens of minutes); --quick is the short run that
# `npm test` includes. Each suite appends one JSON summary line (rounds, faults injected, acknowledged writes
# checked, frames fuzzed, what it found) to $STRATA_FAULTS_REPORT, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=full
for arg in "$@"; do
  case "$arg" in
    --quick) mode=quick ;;
    *) echo "usage: npm run test:faults [-- --quick]" >&2; exit 64 ;;
  esac
done
npm run -s build
report=${STRATA_FAULTS_REPORT:-$PWD/fault-report.jsonl}
: >"$report"
set +e
STRATA_FAULTS=$mode STRATA_FAULTS_REPORT=$report npx ava 'test/faults/**/*.test.ts' --timeout 3h --serial
status=$?
set -e
echo "fault suite ($mode) summaries, from $report:"
cat "$report"
exit "$status"
