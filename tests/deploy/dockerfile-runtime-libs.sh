#!/usr/bin/env bash
# The runtime stage of deploy/docker/Dockerfile installs a hand-kept list of
# library packages. Check it against the binary built here: every shared
# library the shipped binaries link directly (DT_NEEDED) must come from a
# package in that list or from the base image (libc6, libstdc++6, libgcc-s1),
# and every listed package must exist in Debian (apt-cache).
#   dockerfile-runtime-libs.sh SOURCE_DIR BINARY...
# Exit 77 (SKIP) only if readelf/dpkg are missing (not a Debian system).
set -euo pipefail
source_dir="$1"
shift
dockerfile="$source_dir/deploy/docker/Dockerfile"
for tool in readelf dpkg ldd apt-cache; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

# Packages named in the runtime stage's apt-get install.
listed="$(awk '/^FROM .* AS runtime/ { rt = 1 } rt' "$dockerfile" |
  sed -n '/apt-get install/,/&& rm -rf/p' |
  tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
  grep -vxE 'apt-get|update|install|rm' | sort -u)"
if [[ -z "$listed" ]]; then
  echo "FAIL: found no runtime packages in $dockerfile"
  exit 1
fi
echo "runtime packages:" $listed
base="libc6 libstdc++6 libgcc-s1"

fail=0
for p in $listed; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    echo "FAIL: $p is not a known Debian package"
    fail=1
  fi
done

for binary in "$@"; do
while read -r lib; do
  path="$(ldd "$binary" | awk -v l="$lib" '$1 == l { print $3 }')"
  if [[ -z "$path" || ! -e "$path" ]]; then
    echo "FAIL: $lib does not resolve here"
    fail=1
    continue
  fi
  real="$(realpath "$path")"
  # usrmerge: dpkg may know the file under /lib or /usr/lib.
  pkg="$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true)"
  pkg="${pkg%%:*}"
  if [[ -z "$pkg" ]]; then
    echo "FAIL: no package owns $real ($lib)"
    fail=1
  elif ! grep -qxF "$pkg" <<<"$listed" && [[ " $base " != *" $pkg "* ]]; then
    echo "FAIL: $lib ($(basename "$binary")) comes from $pkg, which the runtime stage does not install"
    fail=1
  fi
done < <(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
done

if ((fail)); then exit 1; fi
echo "OK: the runtime stage installs every library of:" "$@"
