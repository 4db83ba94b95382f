#!/usr/bin/env bash
# Build the programs the proxy lives with, pinned in monitoring/versions.env, once per version, into a cache:
#   the OpenTelemetry Collector (OCB, monitoring/collector/builder.yaml), Jaeger v2, Prometheus 3 with promtool,
#   Alertmanager, the ollama CLI, an Ollama server, Ollama's own integration suite (a compiled Go test) and Helm
#   (with the Prometheus Operator's ServiceMonitor CRD, to check the chart against), and Open WebUI with Playwright
#   in a virtual environment of their own (PyPI; several GB, torch included).
# Usage: scripts/build-programs.sh [--cached] [otelcol|jaeger|prometheus|alertmanager|ollama|ollama-server|ollama-integration
#                                   |helm|mistralrs|open-webui ...]
#   (default: all but mistralrs, the mistral.rs server from crates.io, whose first build is too long for CI, and
#   open-webui, a download of several GB that only its browser test needs: .ci/run asks for it by name)
# --cached builds nothing: it exits 1 at the first program named that is not built (how CI asks whether it may run
# the tests of a program too slow to build in its time).
# Prints the cache's bin directory last. A second run finds every binary and builds nothing.
# Cache: $MOP_PROGRAMS_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/mistral-ollama-proxy/programs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=../monitoring/versions.env
source "$repo/monitoring/versions.env"
cache="${MOP_PROGRAMS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mistral-ollama-proxy/programs}"
mkdir -p "$cache/bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0

cached_only=0
if [[ ${1:-} == --cached ]]; then cached_only=1; shift; fi

say() { printf '[build-programs %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# built NAME DIR BINARY...: true when DIR holds a finished build of every BINARY (the marker is written last).
built() {
  local name=$1 dir=$2; shift 2
  [[ -f "$dir/.done" ]] || return 1
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
  say "$name: cached in $dir"
}

not_cached() {  # not_cached NAME: with --cached, stop before NAME is built
  [[ $cached_only == 0 ]] || { say "$1: not built"; exit 1; }
}

finish() {  # finish DIR BINARY...: mark DIR complete and link its binaries into bin/
  local dir=$1; shift
  touch "$dir/.done"
  for b in "$@"; do ln -sfn "$dir/$b" "$cache/bin/$b"; done
}

timed() {  # timed NAME CMD...: run CMD, report how long it took
  local name=$1 start=$SECONDS; shift
  "$@"
  say "$name: built in $((SECONDS - start)) s"
}

build_otelcol() {
  local manifest="$repo/monitoring/collector/builder.yaml"
  local key; key=$(sha256sum "$manifest" | cut -c1-12)
  local dir="$cache/otelcol-$OTELCOL_VERSION-$key"
  built otelcol "$dir" otelcol-mop && { finish "$dir" otelcol-mop; return; }
  not_cached otelcol
  rm -rf "$dir"; mkdir -p "$dir"
  say "otelcol: installing the builder (OCB) v$OTELCOL_VERSION"
  GOBIN="$dir" go install "go.opentelemetry.io/collector/cmd/builder@v$OTELCOL_VERSION"
  say "otelcol: building the manifest's components (first build: several minutes)"
  (cd "$dir" && timed otelcol ./builder --config "$manifest")
  mv "$dir/otelcol-mop/otelcol-mop" "$dir/otelcol-mop.bin" && rm -rf "$dir/otelcol-mop" "$dir/builder"
  mv "$dir/otelcol-mop.bin" "$dir/otelcol-mop"
  finish "$dir" otelcol-mop
}

build_jaeger() {
  local dir="$cache/jaeger-$JAEGER_VERSION-r2"  # r2: stamped with its version, as its own release builds are
  built jaeger "$dir" jaeger && { finish "$dir" jaeger; return; }
  not_cached jaeger
  rm -rf "$dir"; mkdir -p "$dir/src"
  # Its go.mod has replace lines, so `go install pkg@version` refuses it: build it as a tool of a wrapper module.
  say "jaeger: resolving github.com/jaegertracing/jaeger/cmd/jaeger@v$JAEGER_MODULE_VERSION (Jaeger v$JAEGER_VERSION)"
  (cd "$dir/src" && go mod init mop-jaeger >/dev/null 2>&1 \
    && go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@v$JAEGER_MODULE_VERSION")
  say "jaeger: compiling (first build: several minutes)"
  local ldflags="-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v$JAEGER_VERSION"
  (cd "$dir/src" && timed jaeger go build -ldflags "$ldflags" -o "$dir/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
  rm -rf "$dir/src"
  finish "$dir" jaeger
}

build_prometheus() {
  local dir="$cache/prometheus-$PROMETHEUS_VERSION"
  built prometheus "$dir" prometheus promtool && { finish "$dir" prometheus promtool; return; }
  not_cached prometheus
  rm -rf "$dir"; mkdir -p "$dir"
  # Its go.mod has exclude and replace lines: build inside the downloaded module, which honours them.
  say "prometheus: downloading github.com/prometheus/prometheus@v$PROMETHEUS_MODULE_VERSION (Prometheus v$PROMETHEUS_VERSION)"
  local src; src=$(go mod download -json "github.com/prometheus/prometheus@v$PROMETHEUS_MODULE_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  say "prometheus: compiling prometheus and promtool, no UI, no service discovery (first build: several minutes)"
  local ldflags="-X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
  (cd "$src" && GOWORK=off timed prometheus go build -tags remove_all_sd -ldflags "$ldflags" -o "$dir/" \
    ./cmd/prometheus ./cmd/promtool)
  finish "$dir" prometheus promtool
}

build_alertmanager() {
  local dir="$cache/alertmanager-$ALERTMANAGER_VERSION"
  built alertmanager "$dir" alertmanager amtool && { finish "$dir" alertmanager amtool; return; }
  not_cached alertmanager
  rm -rf "$dir"; mkdir -p "$dir"
  # v0.31 is the newest release whose module zip still carries the web UI's built assets.
  say "alertmanager: building alertmanager and amtool from github.com/prometheus/alertmanager@v$ALERTMANAGER_VERSION"
  GOBIN="$dir" timed alertmanager go install "github.com/prometheus/alertmanager/cmd/alertmanager@v$ALERTMANAGER_VERSION" \
    "github.com/prometheus/alertmanager/cmd/amtool@v$ALERTMANAGER_VERSION"
  finish "$dir" alertmanager amtool
}

build_ollama() {
  local dir="$cache/ollama-$OLLAMA_VERSION"
  built ollama "$dir" ollama && { finish "$dir" ollama; return; }
  not_cached ollama
  rm -rf "$dir"; mkdir -p "$dir"
  # Since 0.30 the models run in a separate llama-server, so the Go program builds alone: its CLI is what we use.
  say "ollama: building github.com/ollama/ollama@v$OLLAMA_VERSION (the CLI, as a client of the proxy)"
  # Its packages need cgo (a C compiler), unlike the other programs.
  CGO_ENABLED=1 GOBIN="$dir" timed ollama go install -ldflags "-X github.com/ollama/ollama/version.Version=$OLLAMA_VERSION" \
    "github.com/ollama/ollama@v$OLLAMA_VERSION"
  finish "$dir" ollama
}

build_ollama-server() {
  local v=$OLLAMA_SERVER_VERSION dir="$cache/ollama-server-$OLLAMA_SERVER_VERSION"
  built ollama-server "$dir" ollama-server && { finish "$dir" ollama-server; return; }
  not_cached ollama-server
  rm -rf "$dir"; mkdir -p "$dir/src"
  # Its cgo engine needs llama.cpp's vendored headers, which module zips drop: nlohmann and stb from Debian,
  # miniaudio.h from the miniaudio sdist on PyPI.
  for header in /usr/include/nlohmann/json_fwd.hpp /usr/include/stb/stb_image.h; do
    [[ -f $header ]] || { say "ollama-server: $header is missing: apt-get install nlohmann-json3-dev libstb-dev"; return 1; }
  done
  say "ollama-server: fetching miniaudio.h (PyPI sdist miniaudio==$MINIAUDIO_SDIST_VERSION)"
  python3 -m pip download --quiet --no-binary :all: --no-deps "miniaudio==$MINIAUDIO_SDIST_VERSION" -d "$dir/src"
  tar -xzf "$dir/src/miniaudio-$MINIAUDIO_SDIST_VERSION.tar.gz" -C "$dir/src"
  say "ollama-server: building github.com/ollama/ollama@v$v with its in-process engine (first build: minutes)"
  CGO_ENABLED=1 CGO_CPPFLAGS="-I$dir/src/miniaudio-$MINIAUDIO_SDIST_VERSION" GOBIN="$dir/src/bin" \
    timed ollama-server go install -ldflags "-X github.com/ollama/ollama/version.Version=$v" "github.com/ollama/ollama@v$v"
  mv "$dir/src/bin/ollama" "$dir/ollama-server" && rm -rf "$dir/src"
  finish "$dir" ollama-server
}

build_ollama-integration() {
  local dir="$cache/ollama-integration-$OLLAMA_VERSION"
  built ollama-integration "$dir" ollama-integration && { finish "$dir" ollama-integration; return; }
  not_cached ollama-integration
  rm -rf "$dir"; mkdir -p "$dir/src"
  # The suite (tags integration,fast) runs against an existing server with OLLAMA_TEST_EXISTING=1; it reads its
  # testdata/ from the working directory, so that folder is kept beside the binary.
  say "ollama-integration: compiling github.com/ollama/ollama@v$OLLAMA_VERSION/integration (tags integration,fast)"
  (cd "$dir/src" && go mod init mop-ollama-it >/dev/null 2>&1 \
    && go mod download "github.com/ollama/ollama@v$OLLAMA_VERSION")
  local module; module="$(go env GOMODCACHE)/github.com/ollama/ollama@v$OLLAMA_VERSION"
  cp -r "$module" "$dir/src/ollama" && chmod -R u+w "$dir/src/ollama"
  (cd "$dir/src/ollama" && CGO_ENABLED=1 timed ollama-integration \
    go test -c -tags=integration,fast -o "$dir/ollama-integration" ./integration/)
  cp -r "$dir/src/ollama/integration/testdata" "$dir/" && rm -rf "$dir/src"
  finish "$dir" ollama-integration
}

build_helm() {
  local dir="$cache/helm-$HELM_VERSION-po$PROMETHEUS_OPERATOR_VERSION"
  local crd=monitoring.coreos.com_servicemonitors.yaml
  built helm "$dir" helm && [[ -f "$dir/$crd" ]] && { finish "$dir" helm "$crd"; return; }
  not_cached helm
  rm -rf "$dir"; mkdir -p "$dir"
  say "helm: building helm.sh/helm/v4/cmd/helm@v$HELM_VERSION (first build: a few minutes)"
  GOBIN="$dir" timed helm go install "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION"
  say "helm: the ServiceMonitor CRD of github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION"
  local module
  module=$(cd "$dir" && go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  cp "$module/example/prometheus-operator-crd/$crd" "$dir/$crd"
  finish "$dir" helm "$crd"
}

build_mistralrs() {
  local v=$MISTRALRS_SERVER_VERSION dir="$cache/mistralrs-$MISTRALRS_SERVER_VERSION"
  built mistralrs "$dir" mistralrs && { finish "$dir" mistralrs; return; }
  not_cached mistralrs
  command -v cargo >/dev/null || { say "mistralrs: cargo is missing (rustup, or Debian's cargo)"; return 1; }
  rm -rf "$dir"; mkdir -p "$dir"
  # The crate's own Cargo.lock (--locked) and no features: CPU only, no accelerator. Release profile as published
  # (opt-level 3, 16 codegen units, no LTO), minus debug info; the target folder is kept in the cache so that an
  # interrupted first build resumes where it stopped.
  say "mistralrs: cargo install mistralrs-cli@$v, CPU only (first build: tens of minutes; cargo prints each crate)"
  CARGO_PROFILE_RELEASE_DEBUG=false CARGO_TARGET_DIR="$cache/.cargo-target-mistralrs-$v" \
    timed mistralrs cargo install --locked --root "$dir/root" "mistralrs-cli@$v"
  mv "$dir/root/bin/mistralrs" "$dir/mistralrs" && rm -rf "$dir/root" "$cache/.cargo-target-mistralrs-$v"
  finish "$dir" mistralrs
}

build_open-webui() {
  local dir="$cache/open-webui-$OPEN_WEBUI_VERSION-playwright-$PLAYWRIGHT_VERSION"
  built open-webui "$dir" open-webui && { finish "$dir" open-webui; return; }
  not_cached open-webui
  rm -rf "$dir"; mkdir -p "$dir"
  # Its own environment: its pins (torch, starlette, httpx, opentelemetry...) would fight the proxy's. PyPI has only
  # the CUDA build of torch, which comes in through accelerate: several GB that the CPU never uses. The browser is
  # Debian's chromium (apt), which Playwright launches by path; it downloads none.
  say "open-webui: pip install open-webui==$OPEN_WEBUI_VERSION playwright==$PLAYWRIGHT_VERSION into a new venv (GBs)"
  python3 -m venv "$dir/venv"
  timed open-webui "$dir/venv/bin/pip" install --quiet --disable-pip-version-check \
    "open-webui==$OPEN_WEBUI_VERSION" "playwright==$PLAYWRIGHT_VERSION"
  # A venv's scripts name its python in their first line, so bin/open-webui runs in the venv from anywhere.
  ln -sfn venv/bin/open-webui "$dir/open-webui"
  finish "$dir" open-webui
}

programs=("$@")
[[ ${#programs[@]} -gt 0 ]] || programs=(otelcol jaeger prometheus alertmanager ollama ollama-server ollama-integration helm)
for p in "${programs[@]}"; do "build_$p"; done
echo "$cache/bin"
