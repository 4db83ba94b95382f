#!/usr/bin/env bash
# The original stack's test-monitoring.sh: check every endpoint of a running stack (compose defaults),
# send test traffic, verify Prometheus scrapes it, and print the dashboard and trace links.
set -euo pipefail
exec mistral-ollama-proxy check \
  --proxy "${PROXY_URL:-http://localhost:11434}" \
  --prometheus "${PROMETHEUS_URL:-http://localhost:9090}" \
  --grafana "${GRAFANA_URL:-http://localhost:3000}" \
  --jaeger "${JAEGER_URL:-http://localhost:16686}" \
  "$@"
