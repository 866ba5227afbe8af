#!/usr/bin/env bash
# A throwaway PKI for a local oubli cluster (tools/oubli cluster up, the
# service demo), made with openssl:
#
#   tools/pki/make-local-pki.sh DIR [DAYS]
#
# writes, all EC P-256:
#   DIR/ca.crt, ca.key            a self-signed CA ("oubli local cluster CA")
#   DIR/coordinator.crt, .key     the coordinator's certificate: DNS SANs
#                                 oubli-coordinator (which workers check,
#                                 oubli-worker --tls_coordinator_name),
#                                 localhost, and IP SAN 127.0.0.1 (oublictl
#                                 --server=127.0.0.1:PORT)
#   DIR/worker.crt, .key          one certificate for every worker: DNS SANs
#                                 oubli-worker (which the coordinator checks,
#                                 oubli-coordinator --tls_worker_name),
#                                 localhost, IP SAN 127.0.0.1
# Both leaves are for server and client authentication (mutual TLS), signed
# by the CA, and live DAYS (default 90) days. Keys are mode 600, the
# certificates 644, DIR 700.
#
# The files are reused, and nothing is written, while they are usable: every
# file present, each certificate chaining to the CA, each key matching its
# certificate, and each certificate valid for a week more (half of DAYS when
# DAYS is under 14). Otherwise all of them are made anew, in a temp dir
# beside DIR that replaces DIR once complete (a DIR holding other files is
# refused, not replaced).
#
# Exit status: 0 the files are usable, 1 openssl failed, 2 usage.
set -euo pipefail

log() { printf '[oubli] %s\n' "$*" >&2; }

usage() {
  echo "usage: tools/pki/make-local-pki.sh DIR [DAYS]" >&2
  exit 2
}

(($# >= 1 && $# <= 2)) || usage
case "$1" in -h | --help) sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' |
  sed 's/^# \{0,1\}//'; exit 0 ;; esac
DIR="${1%/}"
[[ -n "$DIR" ]] || usage
DAYS="${2:-90}"
[[ "$DAYS" =~ ^[1-9][0-9]*$ ]] || { log "DAYS must be a positive integer, not '$DAYS'"; usage; }
# Made anew when less than this is left.
if ((DAYS >= 14)); then
  MIN_SECONDS=$((7 * 24 * 3600))
else
  MIN_SECONDS=$((DAYS * 24 * 3600 / 2))
fi

command -v openssl >/dev/null || { log "openssl not found (apt-get install openssl)"; exit 1; }

# Whether $1 (default DIR) holds a CA and both leaf certificates, each
# chaining to the CA, with its key, and valid for MIN_SECONDS more.
usable() {
  local d="${1:-$DIR}" f
  for f in ca.crt coordinator.crt coordinator.key worker.crt worker.key; do
    [[ -s "$d/$f" ]] || return 1
  done
  for f in ca coordinator worker; do
    openssl x509 -noout -checkend "$MIN_SECONDS" \
      -in "$d/$f.crt" >/dev/null 2>&1 || return 1
  done
  openssl verify -CAfile "$d/ca.crt" "$d/coordinator.crt" "$d/worker.crt" \
    >/dev/null 2>&1 || return 1
  # Each key belongs to its certificate.
  for f in coordinator worker; do
    [[ "$(openssl x509 -noout -pubkey -in "$d/$f.crt" 2>/dev/null)" == \
      "$(openssl pkey -pubout -in "$d/$f.key" 2>/dev/null)" ]] || return 1
  done
}

# Issues $1/NAME.crt and NAME.key (EC P-256), signed by $1/ca.*, for both
# server and client authentication, with subjectAltName SAN.
issue_cert() {
  local dir="$1" name="$2" san="$3"
  printf '%s\n' \
    "basicConstraints = critical, CA:FALSE" \
    "keyUsage = critical, digitalSignature" \
    "extendedKeyUsage = serverAuth, clientAuth" \
    "subjectAltName = $san" >"$dir/$name.ext" &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$name" \
      2>/dev/null &&
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" \
      -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days "$DAYS" -extfile "$dir/$name.ext" \
      -out "$dir/$name.crt" 2>/dev/null &&
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}

if usable; then exit 0; fi
# DIR is replaced as a whole: refuse one holding anything else.
if [[ -e "$DIR" || -L "$DIR" ]]; then
  [[ -d "$DIR" && ! -L "$DIR" ]] || { log "$DIR is not a directory"; exit 1; }
  for f in "$DIR"/* "$DIR"/.[!.]* "$DIR"/..?*; do
    [[ -e "$f" || -L "$f" ]] || continue
    case "${f##*/}" in
      ca.crt | ca.key | coordinator.crt | coordinator.key | worker.crt | worker.key) ;;
      *) log "$DIR holds ${f##*/}, not made by this script; give an empty or new directory"
         exit 1 ;;
    esac
  done
fi
log "making a CA and certificates in $DIR"
parent="$(dirname "$DIR")"
mkdir -p "$parent"
tmp="$(mktemp -d "$parent/$(basename "$DIR").new.XXXXXX")"  # mode 700
trap 'rm -rf "$tmp"' EXIT
(
  umask 077
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days "$DAYS" \
    -subj "/CN=oubli local cluster CA" \
    -addext "basicConstraints = critical, CA:TRUE" \
    -addext "keyUsage = critical, keyCertSign, cRLSign" 2>/dev/null &&
    issue_cert "$tmp" coordinator \
      "DNS:oubli-coordinator, DNS:localhost, IP:127.0.0.1" &&
    issue_cert "$tmp" worker \
      "DNS:oubli-worker, DNS:localhost, IP:127.0.0.1"
) || true
if ! usable "$tmp"; then
  log "openssl could not make the certificates"
  exit 1
fi
chmod 644 "$tmp"/*.crt
chmod 600 "$tmp"/*.key
rm -rf "$DIR"
mv "$tmp" "$DIR"
trap - EXIT
