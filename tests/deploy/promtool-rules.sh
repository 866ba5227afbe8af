#!/usr/bin/env bash
# promtool check rules + promtool test rules for deploy/prometheus.
# promtool comes from Debian's prometheus package (tools/oubli setup installs
# it). Exit 77 (ctest SKIP) only when promtool is not installed.
set -euo pipefail
source_dir="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
if ! command -v promtool >/dev/null; then
  echo "SKIP: promtool not installed (apt-get install prometheus, or tools/oubli setup)"
  exit 77
fi
cd "$source_dir/deploy/prometheus"
promtool --version 2>&1 | head -n 1
promtool check rules oubli-rules.yaml
# Every alert needs a unit test.
missing=0
for alert in $(sed -n 's/^ *- alert: *//p' oubli-rules.yaml | sort -u); do
  if ! grep -q "alertname: *$alert\$" tests/*.yaml; then
    echo "FAIL: alert $alert has no unit test in deploy/prometheus/tests/"
    missing=1
  fi
done
promtool test rules tests/*.yaml
exit "$missing"
