#!/usr/bin/env bash
# Installs a built strata tree as a systemd service (docs/operations.md "Running under systemd").
#
# Invariants:
# - An operator's files are never overwritten: /etc/strata/stratad.json and its token file are written only
#   when absent; local unit changes belong in drop-ins (/etc/systemd/system/stratad.service.d/).
# - The application is staged complete in PREFIX.new (production dependencies only, its entry point loaded once
#   as a check) before it replaces PREFIX, so a failed install leaves the previous one in place.
# - With DESTDIR set, everything lands under DESTDIR only: no user is created, no systemctl, no chown.
# - The unit runs the node found here (absolute path) on the installed copy, never on this source tree.
set -euo pipefail
umask 022

usage() {
  cat <<'EOF'
usage: [DESTDIR=DIR] systemd/install.sh [--prefix DIR] [--help]

Installs the built daemon (run `npm ci && npm run build` first) as the systemd service stratad:
  PREFIX (default /opt/strata)                  dist/ without tests, package.json, package-lock.json,
                                                production node_modules (npm ci --omit=dev), docs/, systemd/
  /usr/local/lib/systemd/system/stratad.service the unit, with this machine's node and PREFIX substituted
  /usr/local/lib/sysusers.d/strata.conf         the system user strata
  /usr/local/lib/tmpfiles.d/strata.conf         /var/lib/strata, /var/lib/strata/backups, /etc/strata
  /usr/local/bin/strata                         the strata command (online and offline tools)
  /etc/strata/stratad.json, admin.token         the example config and a new random admin token, only if
                                                there is no stratad.json yet (an existing one is kept)
Then, unless DESTDIR is set: creates the user (systemd-sysusers), the directories (systemd-tmpfiles), lets the
group strata read the config, and reloads systemd. It does not start or restart the service.

Environment: DESTDIR=DIR stages into DIR as a root (no user, no systemctl, no chown: for packaging);
NODE=PATH uses that node (default: command -v node; Node 20.10 or a later 20.x).
Needs root unless DESTDIR is set.
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

prefix=/opt/strata
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --prefix) [ $# -ge 2 ] || { usage >&2; exit 2; }; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

destdir=${DESTDIR:-}
src=$(cd "$(dirname "$0")/.." && pwd)

# Paths go into the unit's ExecStart= unquoted: no spaces or characters systemd or sed would read specially.
safe_path='^/[A-Za-z0-9._/+-]*$'
[[ $prefix =~ $safe_path ]] || die "--prefix must be an absolute path of letters, digits and ._/+- (got '$prefix')"
[ "$prefix" != / ] || die "--prefix / would replace the whole file system"
if [ -n "$destdir" ]; then
  [[ $destdir == /* ]] || destdir="$(pwd)/$destdir"
fi

[ -f "$src/dist/daemon/main.js" ] && [ -f "$src/dist/cli/main.js" ] ||
  die "$src/dist is missing or incomplete: build first (npm ci && npm run build)"
[ -n "$destdir" ] || [ "$(id -u)" -eq 0 ] || die "must run as root to install (or set DESTDIR=DIR to stage into DIR)"

node=${NODE:-$(command -v node || true)}
[ -n "$node" ] || die "node is not installed (or set NODE=/path/to/node)"
[[ $node =~ $safe_path ]] || die "the node path must be absolute and plain (got '$node')"
[ -x "$node" ] || die "$node is not executable"
# The unit's ProtectHome=yes hides /home, /root and /run/user: a node (nvm) or a prefix there fails at start (203/EXEC).
for hidden in /home/ /root/ /run/user/; do
  [[ $node != "$hidden"* ]] || die "$node is under $hidden, which the unit hides (ProtectHome=yes): install Node system-wide or set NODE="
  [[ $prefix/ != "$hidden"* ]] || die "--prefix $prefix is under $hidden, which the unit hides (ProtectHome=yes)"
done
node_version=$("$node" -p 'process.versions.node')
[[ $node_version =~ ^20\.([0-9]+)\. ]] && [ "${BASH_REMATCH[1]}" -ge 10 ] ||
  die "$node is Node $node_version; strata needs Node 20.10 or a later 20.x (package.json engines)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
# A running daemon loads new worker threads (readers, snapshots) from its install tree: swapping the tree under it
# could mix versions in one process. Stop it first (its data is safe: the stop is graceful), then restart it.
if [ -z "$destdir" ] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet stratad 2>/dev/null; then
  die "stratad is running: systemctl stop stratad, run this again, then systemctl start stratad"
fi

app="$destdir$prefix"
stage="$app.new"
# Only a previous strata install is replaced: --prefix /usr/local must never wipe /usr/local.
if [ -e "$app" ] && [ ! -f "$app/.strata-install" ]; then
  die "$app exists and is not a strata install (no $app/.strata-install): choose an empty or new --prefix"
fi
rm -rf "$stage"
mkdir -p "$stage/dist"
for entry in "$src"/dist/*; do
  case "$(basename "$entry")" in test|loadtest) ;; *) cp -R "$entry" "$stage/dist/" ;; esac
done
cp "$src/package.json" "$src/package-lock.json" "$stage/"
cp -R "$src/docs" "$src/systemd" "$stage/"
# Install scripts stay off, as package.json's allowScripts says (ws's optional native helpers have prebuilds
# or a JS fallback); npm's cache makes this quick after the build's own npm ci.
(cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null) ||
  die "npm ci --omit=dev failed in $stage"
# Every module of the daemon loads (main.js imports them all before it reads --help).
"$node" "$stage/dist/daemon/main.js" --help >/dev/null || die "the staged daemon does not load: $stage"
echo "strata $("$node" -p "require('$stage/package.json').version"), installed $(date -u +%FT%TZ)" >"$stage/.strata-install"
if [ -d "$app" ]; then
  mv "$app" "$app.old.$$"
  mv "$stage" "$app"
  rm -rf "$app.old.$$"
else
  mkdir -p "$(dirname "$app")"
  mv "$stage" "$app"
fi

units="$destdir/usr/local/lib/systemd/system"
mkdir -p "$units" "$destdir/usr/local/lib/sysusers.d" "$destdir/usr/local/lib/tmpfiles.d" "$destdir/usr/local/bin"
sed -e "s|/usr/bin/node |$node |g" -e "s|/opt/strata|$prefix|g" "$src/systemd/stratad.service" >"$units/stratad.service.tmp"
chmod 0644 "$units/stratad.service.tmp"
mv "$units/stratad.service.tmp" "$units/stratad.service"
install -m 0644 "$src/systemd/strata.sysusers" "$destdir/usr/local/lib/sysusers.d/strata.conf"
install -m 0644 "$src/systemd/strata.tmpfiles" "$destdir/usr/local/lib/tmpfiles.d/strata.conf"
printf '#!/bin/sh\n# The strata command, installed by %s/systemd/install.sh.\nexec %s %s/dist/cli/main.js "$@"\n' \
  "$prefix" "$node" "$prefix" >"$destdir/usr/local/bin/strata"
chmod 0755 "$destdir/usr/local/bin/strata"

if [ -z "$destdir" ]; then
  systemd-sysusers /usr/local/lib/sysusers.d/strata.conf
  systemd-tmpfiles --create /usr/local/lib/tmpfiles.d/strata.conf
fi

config="$destdir/etc/strata"
mkdir -p -m 0750 "$config"
config_note="kept the existing $config/stratad.json (the current example: $prefix/systemd/stratad.example.json)"
if [ ! -e "$config/stratad.json" ]; then
  config_note="installed the example config $config/stratad.json"
  if [ ! -e "$config/admin.token" ]; then
    (umask 0027 && "$node" -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("hex") + "\n")' >"$config/admin.token")
    config_note="$config_note and a new random admin token in $config/admin.token"
  fi
  install -m 0640 "$src/systemd/stratad.example.json" "$config/stratad.json"
  if [ -z "$destdir" ]; then chgrp strata "$config/stratad.json" "$config/admin.token"; fi
fi

echo "installed strata $("$node" -p "require('$app/package.json').version") into $app (node $node_version at $node)"
echo "$config_note"
if [ -n "$destdir" ]; then
  echo "staged under $destdir: on the target, run systemd-sysusers, systemd-tmpfiles --create, chgrp strata /etc/strata/*, systemctl daemon-reload"
  exit 0
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
else
  echo "systemd is not running here: run systemctl daemon-reload once it is"
fi
cat <<EOF
next steps:
  review /etc/strata/stratad.json (docs: $prefix/docs/operations.md, "Running under systemd")
  systemctl enable --now stratad         # or, after an upgrade: systemctl restart stratad
  systemctl status stratad; journalctl -u stratad -o cat | jq
  STRATA_TOKEN=\$(cat /etc/strata/admin.token) strata status
EOF
