#!/usr/bin/env bash
# Run Ollama's own integration suite (github.com/ollama/ollama/integration, tags integration,fast) against a
# running proxy, with one small chat model standing in for every model the suite names.
# Usage: scripts/ollama-integration.sh [proxy host:port, default 127.0.0.1:11434] [model, default smollm2:135m]
# The suite is compiled once from the pinned module (OLLAMA_VERSION in monitoring/versions.env) and cached.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=../monitoring/versions.env
source "$repo/monitoring/versions.env"
host=${1:-127.0.0.1:11434} model=${2:-smollm2:135m}
cache="${MOP_PROGRAMS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mistral-ollama-proxy/programs}"
suite="$cache/ollama-integration-$OLLAMA_VERSION/integration.test"
if [[ ! -x $suite ]]; then
  echo "compiling Ollama $OLLAMA_VERSION's integration suite (once)" >&2
  src=$(mktemp -d)
  (cd "$src" && go mod init mop-ollama-it >/dev/null 2>&1 && go mod download -json "github.com/ollama/ollama@v$OLLAMA_VERSION" >/dev/null)
  module="$(go env GOMODCACHE)/github.com/ollama/ollama@v$OLLAMA_VERSION"
  cp -r "$module" "$src/ollama" && chmod -R u+w "$src/ollama"
  mkdir -p "$(dirname "$suite")"
  (cd "$src/ollama" && CGO_ENABLED=1 go test -c -tags=integration,fast -o "$suite" ./integration/)
  cp -r "$src/ollama/integration/testdata" "$(dirname "$suite")/"
  rm -rf "$src"
fi
cd "$(dirname "$suite")"  # its testdata/ sits beside it
OLLAMA_TEST_EXISTING=1 OLLAMA_HOST="$host" OLLAMA_TEST_MODEL="$model" "$suite" -test.v -test.count 1 -test.timeout 30m
