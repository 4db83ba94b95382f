#!/usr/bin/env bash
# Run Ollama's own integration suite (github.com/ollama/ollama/integration, tags integration,fast) against a
# running proxy, with one small chat model standing in for every model the suite names.
# Usage: scripts/ollama-integration.sh [proxy host:port, default 127.0.0.1:11434] [model, default smollm2:135m]
#        [go test flags, e.g. -test.run 'TestAPI/api-chat']
# The suite is compiled once from the pinned module (OLLAMA_VERSION in monitoring/versions.env) and cached
# (scripts/build-programs.sh ollama-integration); tests/clients/test_ollama_integration.py runs the part that applies.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
host=${1:-127.0.0.1:11434} model=${2:-smollm2:135m}
shift $(($# < 2 ? $# : 2))
bin=$(bash "$repo/scripts/build-programs.sh" ollama-integration | tail -1)
suite=$(readlink -f "$bin/ollama-integration")
cd "$(dirname "$suite")"  # its testdata/ sits beside it
OLLAMA_TEST_EXISTING=1 OLLAMA_HOST="$host" OLLAMA_TEST_MODEL="$model" "$suite" -test.v -test.count 1 \
  -test.timeout 30m "$@"
