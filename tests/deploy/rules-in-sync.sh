#!/usr/bin/env bash
# deploy/base/prometheusrule.yaml must be what
# deploy/prometheus/generate-prometheusrule.sh makes of oubli-rules.yaml.
set -euo pipefail
source_dir="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
if ! diff -u "$source_dir/deploy/base/prometheusrule.yaml" \
  <("$source_dir/deploy/prometheus/generate-prometheusrule.sh" --stdout); then
  echo "FAIL: deploy/base/prometheusrule.yaml is stale;" \
    "run deploy/prometheus/generate-prometheusrule.sh"
  exit 1
fi
echo "OK: PrometheusRule matches deploy/prometheus/oubli-rules.yaml"
