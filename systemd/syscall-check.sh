#!/usr/bin/env bash
# Checks the claim behind stratad.service's SystemCallFilter=@system-service: runs the built daemon under
# strace (threads and children followed) through a small workload (start and recovery, status, a transaction,
# a snapshot, a backup, /metrics, SIGHUP when the daemon handles it, SIGTERM), with a fake NOTIFY_SOCKET and
# WATCHDOG_USEC so that the sd_notify path runs too, then compares every system call made with the unit's
# SystemCallFilter= lines as systemd-analyze syscall-filter expands them on this machine.
#
# Invariants: it changes nothing outside its temporary directory (removed on exit); the daemon listens on
# 127.0.0.1 port 0; every wait is bounded (SYSCALL_CHECK_WAIT_S, default 180 s, strace slows node
# down a lot). SYSCALL_CHECK_UNIT: another unit file to take the filter from (tests). Output: one line per system call outside the filter, with its count, the errors it got here and
# whether it is known to be handled, then a summary line. Exit 0: every call inside the filter or handled;
# 1: a call outside it that is not known to be handled; 2: usage or setup failure.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: systemd/syscall-check.sh [--keep] [--help]
Runs dist/daemon/main.js under strace -f through a small workload and lists every system call it made that
systemd's @system-service filter does not allow. Needs strace, systemd-analyze, python3 and a built tree
(npm run build). --keep: keep the temporary directory (the trace is trace.txt).
EOF
}

keep=0
for arg in "$@"; do
  case "$arg" in
    --help|-h) usage; exit 0 ;;
    --keep) keep=1 ;;
    *) echo "syscall-check: unknown argument $arg" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
for tool in strace systemd-analyze python3 node; do
  command -v "$tool" >/dev/null 2>&1 || { echo "syscall-check: $tool is not installed" >&2; exit 2; }
done
[ -f "$root/dist/daemon/main.js" ] || { echo "syscall-check: $root/dist is missing: run npm run build" >&2; exit 2; }
wait_s=${SYSCALL_CHECK_WAIT_S:-180}

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-syscall-check.XXXXXX")
daemon_pid=
notify_pid=
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -KILL "$daemon_pid" 2>/dev/null || true; fi
  if [ -n "$notify_pid" ] && kill -0 "$notify_pid" 2>/dev/null; then kill "$notify_pid" 2>/dev/null || true; fi
  if [ "$keep" -eq 1 ]; then echo "syscall-check: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The example config as installed, with a token file beside it; data dir and port overridden by flags.
cp "$root/systemd/stratad.example.json" "$work/stratad.json"
token=$(node -e 'process.stdout.write(require("node:crypto").randomBytes(24).toString("hex"))')
printf '%s\n' "$token" >"$work/admin.token"
mkdir -p "$work/data"

# A fake notify socket: receives datagrams (and drops any passed fds, which ends systemd-notify's barrier wait).
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        out.write(s.recv(4096).decode(errors="replace").replace("\n", " ") + "\n")
        out.flush()
' "$work/notify.sock" "$work/notify.txt" &
notify_pid=$!

# The daemon refuses STRATA_* variables it does not know: it gets none of the caller's.
unset_strata=()
for name in $(compgen -e); do [[ $name == STRATA_* ]] && unset_strata+=(-u "$name"); done
env "${unset_strata[@]}" -u WATCHDOG_PID NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=3000000 \
  strace -f -qq -o "$work/trace.txt" node "$root/dist/daemon/main.js" --config "$work/stratad.json" \
  --data-dir "$work/data" --listen 127.0.0.1:0 --backup.dir "$work/data/backups" >"$work/stdout.txt" 2>"$work/stderr.txt" &
daemon_pid=$!

url=
for _ in $(seq 1 "$((wait_s * 5))"); do
  # One JSON object per line (pino); the ready line carries "url" (fields in any order).
  url=$(grep '"msg":"stratad ready"' "$work/stdout.txt" 2>/dev/null | head -n 1 | sed -n 's/.*"url":"\([^"]*\)".*/\1/p' || true)
  [ -n "$url" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { echo "syscall-check: the daemon exited before ready:" >&2; cat "$work/stderr.txt" >&2; exit 2; }
  sleep 0.2
done
[ -n "$url" ] || { echo "syscall-check: no 'stratad ready' within ${wait_s}s" >&2; exit 2; }
http=$(echo "$url" | sed 's#^ws://\(.*\)/v1$#http://\1#')
# strace runs the daemon as its child and blocks fatal signals itself (-o FILE PROGRAM): signal node directly.
node_pid=$(pgrep -P "$daemon_pid" -x node | head -n 1)
[ -n "$node_pid" ] || { echo "syscall-check: cannot find the daemon under strace (pid $daemon_pid)" >&2; exit 2; }

cli() {
  STRATA_URL="$url" STRATA_TOKEN="$token" timeout "$wait_s" node "$root/dist/cli/main.js" "$@" --timeout 60000 >/dev/null ||
    { echo "syscall-check: strata $* failed" >&2; exit 2; }
}
cat >"$work/txn.json" <<'EOF'
{ "ops": [ { "op": "upsertTasks", "tasks": [ { "status": "PENDING", "assignedTask": { "taskId": "syscall-check-0",
  "instanceId": 0, "task": { "job": { "role": "ops", "environment": "prod", "name": "check" },
  "executorConfig": { "name": "thermos", "data": "{}" } } } } ] },
  { "op": "saveQuota", "role": "ops", "quota": { "resources": [ { "type": "NUM_CPUS", "numCpus": 1 } ] } } ] }
EOF
cli status
cli txn "$work/txn.json"
cli query --role ops
cli snapshot
cli backup create
timeout "$wait_s" node -e 'fetch(process.argv[1]).then(async (r) => { await r.text(); process.exit(r.ok ? 0 : 1); })' "$http/metrics"
# SIGHUP only if the daemon catches it (bit 0 of SigCgt): otherwise its default action would end the daemon.
sigcgt=$(sed -n 's/^SigCgt:\s*//p' "/proc/$node_pid/status")
hup=no
if (( (16#$sigcgt & 1) == 1 )); then
  hup=yes
  kill -HUP "$node_pid"
  sleep 2
  cli status
fi
fds=$(ls "/proc/$node_pid/fd" | wc -l)
kill -TERM "$node_pid"
status=0
timeout "$wait_s" tail --pid="$daemon_pid" -f /dev/null || { echo "syscall-check: the daemon did not stop within ${wait_s}s" >&2; exit 2; }
wait "$daemon_pid" || status=$?
daemon_pid=
[ "$status" -eq 0 ] || { echo "syscall-check: the daemon exited $status after SIGTERM:" >&2; cat "$work/stderr.txt" >&2; exit 2; }

# The unit's filter, as systemd applies it: SystemCallFilter= lines in order, an allow list (the first line
# without ~) narrowed by deny lists (~); groups (@name) expanded recursively by systemd-analyze.
declare -A allowed=()
expand() {
  local group=$1 line
  while read -r line; do
    case "$line" in
      ''|'#'*|"$group") ;;
      @*) expand "$line" ;;
      *) echo "$line" ;;
    esac
  done < <(systemd-analyze syscall-filter "$group")
}
members() {
  local item
  for item in "$@"; do
    case "$item" in @*) expand "$item" ;; *) echo "$item" ;; esac
  done
}
unit=${SYSCALL_CHECK_UNIT:-$root/systemd/stratad.service}
filters=$(sed -n 's/^SystemCallFilter=//p' "$unit")
[ -n "$filters" ] || { echo "syscall-check: no SystemCallFilter= in $unit" >&2; exit 2; }
while read -r filter; do
  if [[ $filter == "~"* ]]; then
    for name in $(members ${filter#\~}); do unset "allowed[$name]"; done
  else
    for name in $(members $filter); do allowed[$name]=1; done
  fi
done <<<"$filters"
filter_text=$(echo "$filters" | tr '\n' ' ')

# Calls outside the filter that the daemon is known to survive, because SystemCallErrorNumber=EPERM makes them
# fail softly (without it, the default action is SIGSYS: the process dies):
#   pkey_alloc: V8 probes memory protection keys at start and runs without them when the call fails.
declare -A handled=([pkey_alloc]=1)

# strace lines: "PID name(args) = result", "PID name(args <unfinished ...>", "PID <... name resumed>...".
awk '
  { sub(/^[0-9]+ +/, "") }
  /^<\.\.\. [a-z0-9_]+ resumed>/ { name = $2; rest = $0; sub(/^.*resumed>/, "", rest); if (rest ~ /= -1 E/) { r = rest; sub(/^.*= /, "", r); split(r, a, " "); err[name] = err[name] " " a[2] } next }
  /^[a-z0-9_]+\(/ { name = $0; sub(/\(.*/, "", name); count[name]++
    if ($0 ~ /\) += -1 E[A-Z]+/) { r = $0; sub(/^.*\) += /, "", r); split(r, a, " "); err[name] = err[name] " " a[2] } }
  END { for (n in count) printf "%s %d%s\n", n, count[n], err[n] }
' "$work/trace.txt" | sort >"$work/syscalls.txt"

outside=0
unknown=0
total=0
while read -r name count errors; do
  total=$((total + 1))
  if [ -z "${allowed[$name]:-}" ]; then
    outside=$((outside + 1))
    summary=$(echo "$errors" | tr ' ' '\n' | awk 'NF' | sort | uniq -c | awk '{ printf "%s%s x%d", sep, $2, $1; sep = ", " }')
    if [ -n "${handled[$name]:-}" ]; then verdict="handled: fails with EPERM under the filter"; else verdict="NOT HANDLED"; unknown=$((unknown + 1)); fi
    echo "outside the filter: $name (${count} calls${summary:+; failed here: $summary}; $verdict)"
  fi
done <"$work/syscalls.txt"
notified=$(tr '\n' ' ' <"$work/notify.txt" 2>/dev/null | head -c 300 || true)
echo "syscall-check: $total distinct system calls, $outside outside the unit's filter ($filter_text), $unknown of them not known to be handled ($(wc -l <"$work/trace.txt") trace lines; daemon fds at the end: $fds; SIGHUP sent: $hup; notify messages: ${notified:-none})"
[ "$unknown" -eq 0 ]
