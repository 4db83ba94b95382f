#!/usr/bin/env bash
# Time .ci/run as a fresh machine would run it: a clean clone of HEAD, a new virtualenv, and every cache it
# fills (pip, npm, Go modules and builds, the programs around the proxy, the default model) empty.
# Usage: scripts/ci-fresh.sh [WORKDIR]   (default: a new temporary directory; removed only on success, its log
# kept beside it as WORKDIR.log)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/mop-ci-fresh.XXXXXX)}"
mkdir -p "$work/home"
git clone --quiet "$repo" "$work/repo"
python3 -m venv "$work/venv"

export HOME="$work/home" XDG_CACHE_HOME="$work/home/.cache" PIP_CACHE_DIR="$work/home/.cache/pip"
export npm_config_cache="$work/home/.npm" GOPATH="$work/home/go" GOMODCACHE="$work/home/go/pkg/mod"
export GOCACHE="$work/home/.cache/go-build" PATH="$work/venv/bin:$PATH"
unset MOP_PROGRAMS_CACHE
start=$SECONDS
echo "fresh CI run in $work (log: $work/ci.log)"
if bash "$work/repo/.ci/run" >"$work/ci.log" 2>&1; then
  echo "fresh CI run passed in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s (log: $work.log)"
  cp "$work/ci.log" "$work.log"  # its figures outlive the caches
  chmod -R u+w "$work" && rm -rf "$work"
else
  echo "fresh CI run FAILED after $((SECONDS - start)) s; see $work/ci.log" >&2
  exit 1
fi
