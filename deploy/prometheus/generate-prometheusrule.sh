#!/usr/bin/env bash
# Writes deploy/base/prometheusrule.yaml from deploy/prometheus/oubli-rules.yaml
# (the rule file is the source; the PrometheusRule embeds its groups verbatim).
#   deploy/prometheus/generate-prometheusrule.sh           rewrite the file
#   deploy/prometheus/generate-prometheusrule.sh --stdout  print it instead
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rules="$here/oubli-rules.yaml"
out="$here/../base/prometheusrule.yaml"

render() {
  cat <<'HEADER'
# GENERATED from deploy/prometheus/oubli-rules.yaml by
# deploy/prometheus/generate-prometheusrule.sh; edit the rule file, not this.
# If your Prometheus selects rules by label (kube-prometheus-stack:
# release=<name>), add that label in an overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: oubli
  labels:
    app.kubernetes.io/name: oubli
    app.kubernetes.io/instance: oubli
    app.kubernetes.io/part-of: oubli
    app.kubernetes.io/managed-by: kustomize
spec:
HEADER
  # Drop the rule file's leading comment block; indent the rest under spec:.
  awk 'started || !/^(#|$)/ { started = 1; print }' "$rules" |
    sed -e 's/^\(.\)/  \1/'
}

if [[ "${1:-}" == "--stdout" ]]; then
  render
else
  render >"$out.tmp"
  mv "$out.tmp" "$out"
  echo "wrote $out" >&2
fi
