#!/usr/bin/env bash
# Installs the pinned npm packages (package-lock.json) into NPM_DIR with
# `npm ci` when they are missing or stale, then runs validate-manifests.mjs.
#   validate-manifests.sh SOURCE_DIR NPM_DIR
# Exit 77 (ctest SKIP) only when node or npm is not installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="${1:-$(cd "$here/../.." && pwd)}"
npm_dir="${2:-$here/.npm-install}"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed"
    exit 77
  fi
done

mkdir -p "$npm_dir"
if ! cmp -s "$here/package-lock.json" "$npm_dir/installed-package-lock.json" ||
  [[ ! -d "$npm_dir/node_modules" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$npm_dir/"
  rm -f "$npm_dir/installed-package-lock.json"
  # --prefer-offline: a warm npm cache needs no network.
  (cd "$npm_dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$npm_dir/installed-package-lock.json"
fi
node --version
exec node "$here/validate-manifests.mjs" --modules="$npm_dir/node_modules" --source="$source_dir"
