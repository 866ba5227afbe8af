#!/usr/bin/env bash
# End to end with a real Prometheus server on loopback:
#   1. oubli-coordinator and two oubli-workers start with the args of
#      deploy/base's StatefulSets and the ConfigMap's flags (so both name
#      only flags the binaries know), the pods' mounts laid out in scratch
#      dirs: the ConfigMap's keys as files (its access policy included), a
#      throwaway CA and the two certificates as the TLS Secrets would hold
#      them, a token file; overridden to loopback and free ports. So the
#      cluster protocol runs over mutual TLS and the API under the policy,
#      as deployed;
#   2. the workers register (positions train there and checkpoints are
#      mirrored onto them); the ConfigMap's probe script must find both
#      sides SERVING; /metrics is HTTPS only (--metrics_tls in the
#      StatefulSets' args): a plaintext GET gets nothing; Prometheus
#      (Debian's `prometheus`) scrapes the coordinator and both workers
#      every second over https, verifying each against the CA and the name
#      its certificate carries, as the ServiceMonitors do;
#   3. oublictl (TLS, bearer token) creates a tiny model, ingests a CSV,
#      trains and forgets one owner, then waits for the deletion to reach
#      RESTORED; a call without the token is refused, and the audit log
#      records the deletion;
#   4. Prometheus' HTTP query API must return the deletion counters, the
#      time-to-forget/-restore histograms and the gRPC method counters;
#   5. every oubli_* name the dashboard and the alert rules use must be in
#      the final /metrics dump (check-metric-names.sh).
#
#   prometheus-end-to-end.sh SOURCE_DIR COORDINATOR_BIN WORKER_BIN OUBLICTL_BIN
# Exit: 0 ok, 1 failure, 77 prometheus, curl or openssl not installed.
set -euo pipefail

source_dir="$1"
coordinator="$2"
worker_bin="$3"
ctl_bin="$4"
for tool in prometheus curl openssl; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed (tools/oubli setup installs it)"
    exit 77
  fi
done

work="$(mktemp -d -t oubli-prom.XXXXXX)"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if ((status != 0)); then
    for log in coordinator.err worker-0.err worker-1.err prometheus.log probe.err; do
      [[ -f "$work/$log" ]] || continue
      echo "--- last lines of $log" >&2
      tail -n 20 "$work/$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# ------------------------------------------------------ the pods' files
base="$source_dir/deploy/base"
# The value of KEY in the oubli-config ConfigMap (a block scalar).
configmap_key() {
  awk -v key="$1" '
    $0 == "  " key ": |" { on = 1; next }
    on && /^    / { sub(/^    /, ""); print; next }
    on && /^ *$/ { print ""; next }
    on { exit }' "$base/configmap.yaml"
}
# The args of the container of StatefulSet file FILE, one per line.
statefulset_args() {
  awk '/^          args:$/ { on = 1; next }
       on && /^ *#/ { next }
       on && /^            - / { sub(/^            - /, ""); print; next }
       on { exit }' "$1"
}
mkdir -p "$work/config" "$work/tokens" "$work/coordinator-tls" "$work/worker-tls"
for key in coordinator.flags worker.flags access-policy.textproto \
  grpc-health-probe.sh; do
  configmap_key "$key" >"$work/config/$key"
  [[ -s "$work/config/$key" ]] || fail "no $key in deploy/base/configmap.yaml"
done

# A CA and the two certificates with the names the binaries check
# (deploy/components/cert-manager issues the same in a cluster), laid out as
# the Secrets oubli-coordinator-tls and oubli-worker-tls.
(
  umask 077
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.crt -days 2 -subj "/CN=oubli e2e CA" \
    -addext "basicConstraints = critical, CA:TRUE" \
    -addext "keyUsage = critical, keyCertSign, cRLSign" 2>/dev/null
  for side in coordinator worker; do
    printf '%s\n' "basicConstraints = critical, CA:FALSE" \
      "keyUsage = critical, digitalSignature" \
      "extendedKeyUsage = serverAuth, clientAuth" \
      "subjectAltName = DNS:oubli-$side, DNS:localhost, IP:127.0.0.1" >"$side.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$side-tls/tls.key" -out "$side.csr" -subj "/CN=oubli-$side" 2>/dev/null
    openssl x509 -req -in "$side.csr" -CA ca.crt -CAkey ca.key \
      -set_serial "0x$(openssl rand -hex 16)" -days 2 -extfile "$side.ext" \
      -out "$side-tls/tls.crt" 2>/dev/null
    cp ca.crt "$side-tls/ca.crt"
  done
) || fail "openssl could not make the certificates"
# The operator's bearer token, and the Secret oubli-api-tokens' file.
token="$(openssl rand -hex 32)"
printf '%s\n' "$token" >"$work/operator.token"
echo "operator $(printf '%s' "$token" | sha256sum | cut -d ' ' -f 1)" \
  >"$work/tokens/tokens"

# A StatefulSet's args with its mount points moved to the scratch dirs
# (TLS_DIR: the pod's TLS Secret) and $(POD_NAME) set to NAME.
pod_args() {
  local file="$1" tls_dir="$2" name="${3:-}"
  statefulset_args "$file" | sed \
    -e "s#/etc/oubli-tls/#$tls_dir/#" -e "s#/etc/oubli-tokens/#$work/tokens/#" \
    -e "s#/etc/oubli/#$work/config/#" \
    -e "s#/var/lib/oubli-worker#$work/worker-data-$name#" \
    -e "s#/var/lib/oubli#$work/data#" -e "s#\$(POD_NAME)#$name#g"
}

# ---------------------------------------------------------- coordinator
mapfile -t coordinator_args < <(pod_args "$base/coordinator-statefulset.yaml" \
  "$work/coordinator-tls")
((${#coordinator_args[@]} > 0)) || fail "no args in coordinator-statefulset.yaml"
grep -q -- '--tls_cert=' <<<"${coordinator_args[*]}" ||
  fail "the coordinator StatefulSet runs without --tls_cert"
echo "coordinator args: ${coordinator_args[*]}"
# Flags after the StatefulSet's override them: loopback, free ports.
"$coordinator" "${coordinator_args[@]}" \
  --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  >"$work/coordinator.out" 2>"$work/coordinator.err" </dev/null &
pids+=($!)
address=""
metrics_address=""
for _ in $(seq 1 600); do
  address="$(sed -n 's/^listening on //p' "$work/coordinator.out")"
  metrics_address="$(sed -n 's/^metrics on //p' "$work/coordinator.out")"
  [[ -n "$address" && -n "$metrics_address" ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || fail "oubli-coordinator exited"
  sleep 0.1
done
[[ -n "$metrics_address" ]] ||
  fail "oubli-coordinator printed no 'listening on' + 'metrics on' lines"
echo "coordinator $address, metrics $metrics_address"
ctl() {
  "$ctl_bin" --server="$address" --timeout_s=120 \
    --tls_ca="$work/coordinator-tls/ca.crt" --tls_server_name=oubli-coordinator \
    --token_file="$work/operator.token" "$@"
}

# Two workers with chunk dirs: positions train there and every checkpoint
# is mirrored onto them. --advertise= : the bound address (the StatefulSet's
# is the pod's DNS name).
for i in 0 1; do
  mapfile -t worker_args < <(pod_args "$base/worker-statefulset.yaml" \
    "$work/worker-tls" "e2e-worker-$i")
  "$worker_bin" "${worker_args[@]}" --coordinator="$address" \
    --listen=127.0.0.1:0 --advertise= --metrics_listen=127.0.0.1:0 \
    >"$work/worker-$i.out" 2>"$work/worker-$i.err" </dev/null &
  pids+=($!)
done
echo "worker args: ${worker_args[*]}"
for i in 0 1; do
  for _ in $(seq 1 600); do
    grep -q '^registered as ' "$work/worker-$i.out" && break
    kill -0 "${pids[$((i + 1))]}" 2>/dev/null || fail "oubli-worker $i exited"
    sleep 0.1
  done
  grep -q '^registered as ' "$work/worker-$i.out" ||
    fail "oubli-worker $i did not register"
done
worker_metrics=()
for i in 0 1; do
  worker_metrics+=("$(sed -n 's/^metrics on //p' "$work/worker-$i.out")")
  [[ -n "${worker_metrics[$i]}" ]] || fail "oubli-worker $i printed no 'metrics on'"
done

# The pods' probe (the kubelet runs it with sh; Debian's is dash) must find
# both sides SERVING over TLS, and a certificate of another name must fail.
probe() {
  local port="$1" tls_dir="$2"
  shift 2
  OUBLI_PROBE_PORT="$port" OUBLI_PROBE_TLS_DIR="$tls_dir" \
    sh "$work/config/grpc-health-probe.sh" "$@" 2>>"$work/probe.err"
}
probe "${address##*:}" "$work/coordinator-tls" oubli-coordinator ||
  fail "the probe finds the coordinator not SERVING"
probe "${address##*:}" "$work/coordinator-tls" oubli-coordinator oubli.v1.Oubli ||
  fail "the probe finds oubli.v1.Oubli not SERVING"
worker_address="$(sed -n 's/^listening on //p' "$work/worker-0.out")"
probe "${worker_address##*:}" "$work/worker-tls" oubli-worker ||
  fail "the probe finds worker 0 not SERVING"
if probe "${address##*:}" "$work/coordinator-tls" oubli-worker; then
  fail "the probe accepted the coordinator's certificate as oubli-worker's"
fi
echo "probes: coordinator and worker SERVING over TLS"

# /metrics is HTTPS only: plaintext gets no answer, and TLS works with the
# CA and name the ServiceMonitors use (deploy/base/servicemonitor.yaml).
# metrics_get ADDRESS SIDE [CURL_ARGS...]: GET /metrics over HTTPS, verifying
# the certificate of oubli-SIDE against its Secret's ca.crt.
metrics_get() {
  local address="$1" side="$2"
  shift 2
  curl -fsS --max-time 10 --cacert "$work/$side-tls/ca.crt" \
    --resolve "oubli-$side:${address##*:}:127.0.0.1" \
    "https://oubli-$side:${address##*:}/metrics" "$@"
}
for target in "coordinator $metrics_address" "worker ${worker_metrics[0]}" \
  "worker ${worker_metrics[1]}"; do
  read -r side at <<<"$target"
  if plain="$(curl -sS --max-time 5 "http://$at/metrics" 2>/dev/null)"; then
    fail "a plaintext GET of oubli-$side's /metrics ($at) was answered (no --metrics_tls in its StatefulSet's args?): ${plain:0:200}"
  fi
  [[ -z "$plain" ]] || fail "a plaintext GET of oubli-$side's /metrics ($at) returned: ${plain:0:200}"
  metrics_get "$at" "$side" -o /dev/null ||
    fail "oubli-$side's /metrics ($at) is not served over HTTPS as oubli-$side"
done
echo "metrics: HTTPS only (plaintext GETs got nothing)"

# ----------------------------------------------------------- prometheus
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: oubli-coordinator
    scheme: https
    tls_config:
      ca_file: $work/coordinator-tls/ca.crt
      server_name: oubli-coordinator
    static_configs:
      - targets: ['$metrics_address']
  - job_name: oubli-worker
    scheme: https
    tls_config:
      ca_file: $work/worker-tls/ca.crt
      server_name: oubli-worker
    static_configs:
      - targets: ['${worker_metrics[0]}', '${worker_metrics[1]}']
EOF
# Prometheus cannot bind port 0 and report it: try random high ports.
prom=""
for attempt in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 30000))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
  prometheus --config.file="$work/prometheus.yml" \
    --storage.tsdb.path="$work/tsdb-$attempt" \
    --web.listen-address="127.0.0.1:$port" \
    >"$work/prometheus.log" 2>&1 </dev/null &
  prom_pid=$!
  for _ in $(seq 1 300); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then
      prom="127.0.0.1:$port"
      break
    fi
    kill -0 "$prom_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n "$prom" ]]; then
    pids+=("$prom_pid")
    break
  fi
  kill -KILL "$prom_pid" 2>/dev/null || true
done
[[ -n "$prom" ]] || fail "Prometheus did not become ready"
echo "prometheus $prom"

# ------------------------------------------------- a deletion, end to end
# 4 features (1x2x2), 8 owners x 6 samples, labels 0..3.
cat >"$work/model.conf" <<EOF
backbone.kind=mlp
backbone.input_channels=1
backbone.input_height=2
backbone.input_width=2
backbone.num_classes=4
backbone.mlp_hidden=8,8
lora.rank=2
shards=2
slices=2
sequences=1
train.epochs_per_position=1
train.batch_size=8
EOF
for i in $(seq 0 47); do
  echo "$((i % 4)),owner-$((i / 6)),0.$((i % 10)),0.$(((i * 3) % 10)),0.$(((i * 7) % 10)),0.5"
done >"$work/samples.csv"

# The policy refuses callers without a token; plaintext gets nowhere.
if "$ctl_bin" --server="$address" --timeout_s=10 \
  --tls_ca="$work/coordinator-tls/ca.crt" --tls_server_name=oubli-coordinator \
  models >"$work/refused.txt" 2>&1; then
  fail "oublictl without a token was served: $(cat "$work/refused.txt")"
fi
if "$ctl_bin" --server="$address" --timeout_s=10 models >/dev/null 2>&1; then
  fail "oublictl without TLS was served"
fi
ctl create --model tiny --config "$work/model.conf" >/dev/null
ctl ingest --model tiny --csv "$work/samples.csv" >/dev/null
ctl train --model tiny --wait >/dev/null
# The worker trained the positions ("positions_trained":"4"; int64 is a
# JSON string).
ctl --json model --model tiny >"$work/model.json"
grep -qE '"worker_placement": *"workers"' "$work/model.json" ||
  fail "positions did not train on the worker: $(cat "$work/model.json")"
grep -qE '"positions_trained": *"[1-9]' "$work/model.json" ||
  fail "the worker trained no position: $(cat "$work/model.json")"
deletion="$(ctl delete --model tiny --owner owner-3 |
  sed -n 's/^deletion \([^ ]*\) .*/\1/p' | head -n 1)"
[[ -n "$deletion" ]] || fail "oublictl delete printed no deletion id"
echo "forgot owner-3: $deletion"
ctl status --deletion "$deletion" --watch >"$work/watch.txt"
grep -q 'RESTORED' "$work/watch.txt" || fail "deletion never reached RESTORED"
audit="$(grep -- '--audit_log=' <<<"$(printf '%s\n' "${coordinator_args[@]}")" |
  sed 's/^--audit_log=//')"
[[ -n "$audit" ]] || fail "the coordinator StatefulSet keeps no --audit_log"
grep -qE '"caller":"operator".*"rpc":"ForgetOwner","model_id":"tiny","code":"OK"' \
  "$audit" || fail "the audit log has no ForgetOwner by operator: $(cat "$audit")"
grep -qE '"rpc":"ListModels".*"code":"UNAUTHENTICATED"' "$audit" ||
  fail "the audit log has no refused ListModels: $(cat "$audit")"
echo "audit log: $(wc -l <"$audit") entries"

# --------------------------------------------- what Prometheus now knows
# The value of a one-series instant query, or empty.
query() {
  curl -fsS --max-time 5 "http://$prom/api/v1/query" --data-urlencode "query=$1" |
    sed -n 's/.*"value":\[[0-9.]*,"\([^"]*\)"\].*/\1/p'
}
expect_at_least() {
  local promql="$1" want="$2" got=""
  # Scrapes every second; the last stages may need a scrape or two.
  for _ in $(seq 1 60); do
    got="$(query "$promql")"
    if [[ -n "$got" ]] && awk -v g="$got" -v w="$want" 'BEGIN { exit !(g >= w) }'; then
      echo "ok: $promql = $got"
      return
    fi
    sleep 0.5
  done
  fail "$promql = '${got}', want >= $want"
}
expect_at_least 'up{job="oubli-coordinator"}' 1
for stage in accepted forgotten purged restored; do
  expect_at_least "oubli_deletions_total{model=\"tiny\",stage=\"$stage\"}" 1
done
expect_at_least 'oubli_deleted_samples_total{model="tiny"}' 6
expect_at_least 'oubli_time_to_forget_seconds_count{model="tiny"}' 1
expect_at_least 'oubli_time_to_forget_seconds_bucket{model="tiny",le="+Inf"}' 1
expect_at_least 'oubli_time_to_restore_seconds_count{model="tiny"}' 1
expect_at_least 'oubli_grpc_server_handled_total{method="ForgetOwner",code="OK"}' 1
expect_at_least 'oubli_grpc_server_handling_seconds_count{method="IngestSamples"}' 1
expect_at_least 'oubli_training_steps_total{model="tiny"}' 1
expect_at_least 'oubli_model_active_samples{model="tiny"}' 42
expect_at_least 'oubli_shard_valid_prefix_length{model="tiny",shard="0"}' 2
expect_at_least 'oubli_worker_up{worker="local"}' 1
expect_at_least 'oubli_worker_up{worker="e2e-worker-0"}' 1
expect_at_least 'oubli_worker_up{worker="e2e-worker-1"}' 1
expect_at_least 'oubli_checkpoint_bytes_encoded_total{model="tiny"}' 1
expect_at_least 'oubli_checkpoint_redundancy_chunks{model="tiny"}' 1
expect_at_least 'oubli_checkpoint_redundancy_target_chunks{model="tiny"}' 1
expect_at_least 'oubli_lineage_db_bytes{model="tiny"}' 1
# The workers' own endpoints.
expect_at_least 'count(up{job="oubli-worker"} == 1)' 2
expect_at_least 'sum(oubli_worker_positions_total{code="OK"})' 4
expect_at_least 'min(oubli_worker_registered)' 1
expect_at_least 'min(oubli_worker_environment_matches)' 1
expect_at_least 'sum(oubli_worker_chunk_bytes_written_total)' 1
expect_at_least 'sum(oubli_worker_chunks_destroyed_total)' 1

# -------------------------------- dashboard and rules name real metrics
metrics_get "$metrics_address" coordinator -o "$work/metrics.txt"
# Rules also use worker series (oubli_worker_registered, ...).
metrics_get "${worker_metrics[0]}" worker >>"$work/metrics.txt"
bash "$source_dir/tests/deploy/check-metric-names.sh" --dump="$work/metrics.txt" \
  --source="$source_dir"
echo "OK: Prometheus scraped the deletion's metrics"
