# Sourced by the oublictl shell tests: a work dir removed at exit, fail(),
# and start_coordinator, which runs oubli-coordinator on a free loopback
# port (plaintext, no workers, data in $work/data) until the script exits.
# After it: $address (HOST:PORT) and $pid. Needs $coordinator set.
work="$(mktemp -d -t oublictl-test.XXXXXX)"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- coordinator log"
  tail -n 20 "$work/coordinator.log" 2>/dev/null
  exit 1
}

start_coordinator() {
  "$coordinator" --data_dir="$work/data" --listen=127.0.0.1:0 \
    --metrics_listen= >"$work/coordinator.out" 2>"$work/coordinator.log" &
  pid=$!
  address=""
  for _ in $(seq 1 600); do  # 60 s
    address="$(sed -n 's/^listening on //p' "$work/coordinator.out")"
    [[ -n "$address" ]] && return
    kill -0 "$pid" 2>/dev/null || fail "oubli-coordinator exited"
    sleep 0.1
  done
  fail "oubli-coordinator reported no address"
}
