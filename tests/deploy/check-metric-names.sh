#!/usr/bin/env bash
# Every oubli_* metric the dashboard and the alert rules use must be exported
# by oubli-coordinator or oubli-worker, or listed in
# deploy/metrics-planned.txt.
#
#   check-metric-names.sh --dump=FILE [--source=REPO]
# FILE: /metrics dumps of a coordinator that has run a model through a
# deletion and of one of its workers, concatenated
# (tests/deploy/prometheus-end-to-end.sh makes them), so labelled families
# have samples. REPO defaults to this script's repository.
# Histograms: a name used with _bucket/_sum/_count matches its family. A
# family counts as exported if it appears in a sample or a # TYPE/# HELP line.
# Exit: 0 ok, 1 mismatch, 2 usage.
set -euo pipefail

source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dump=""
for arg in "$@"; do
  case "$arg" in
    --dump=*) dump="${arg#*=}" ;;
    --source=*) source_dir="${arg#*=}" ;;
    *) echo "usage: $0 --dump=FILE [--source=DIR]" >&2; exit 2 ;;
  esac
done
if [[ -z "$dump" ]]; then
  echo "usage: $0 --dump=FILE [--source=DIR]" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ ! -s "$dump" ]]; then
  echo "FAIL: empty metrics dump $dump" >&2
  exit 1
fi

# Families the exporter knows: sample names and # TYPE / # HELP lines.
{
  sed -n 's/^# \(TYPE\|HELP\) \([a-zA-Z_:][a-zA-Z0-9_:]*\).*/\2/p' "$dump"
  grep -v '^#' "$dump" | sed -n 's/^\([a-zA-Z_:][a-zA-Z0-9_:]*\)[{ ].*/\1/p'
} | sort -u >"$work/exported"
sed -e 's/#.*//' -e 's/[[:space:]]//g' "$source_dir/deploy/metrics-planned.txt" |
  { grep -v '^$' || true; } | sort -u >"$work/planned"

used_files=(
  "$source_dir/deploy/grafana/oubli.json"
  "$source_dir/deploy/prometheus/oubli-rules.yaml"
)
grep -ohE '\boubli_[a-z0-9_]*[a-z0-9]' "${used_files[@]}" | sort -u >"$work/used"
if [[ ! -s "$work/used" ]]; then
  echo "FAIL: no oubli_* metric found in ${used_files[*]}" >&2
  exit 1
fi

known() { grep -qxF "$1" "$work/exported" || grep -qxF "$1" "$work/planned"; }
missing=0
while read -r name; do
  base="$name"
  if ! known "$name"; then
    case "$name" in
      *_bucket | *_sum | *_count) base="${name%_*}" ;;
    esac
    if [[ "$base" == "$name" ]] || ! known "$base"; then
      echo "MISSING: $name is neither exported nor in deploy/metrics-planned.txt"
      missing=$((missing + 1))
      continue
    fi
  fi
  if grep -qxF "$base" "$work/planned" && grep -qxF "$base" "$work/exported"; then
    echo "NOTE: $base is exported now; remove it from deploy/metrics-planned.txt"
  fi
done <"$work/used"

echo "$(wc -l <"$work/used") metric names used, $(wc -l <"$work/exported") exported" \
  "families/samples, $(wc -l <"$work/planned") planned"
if ((missing > 0)); then
  echo "FAIL: $missing metric name(s) unknown"
  exit 1
fi
echo "OK: every metric name in the dashboard and the rules is exported or planned"
