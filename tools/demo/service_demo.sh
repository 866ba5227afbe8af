#!/usr/bin/env bash
# The service demo: oubli-coordinator on a free loopback port, driven only
# through its public gRPC API with oublictl. Fashion-MNIST with synthetic
# owners: create, ingest, train, predict, forget one owner (receipt and
# stage stream), predict again, verify bitwise, shut down cleanly.
#
#   service_demo.sh BUILD_DIR [--user_samples N] [--keep]
#
# Single node: the coordinator trains in-process (the multi-worker
# deployment is not built yet). Everything lives in a temp dir that is
# removed at the end unless --keep is given.
set -euo pipefail

BUILD_DIR="$1"
shift
USER_SAMPLES=20000
KEEP=0
while (($#)); do
  case "$1" in
    --user_samples) USER_SAMPLES="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "service_demo: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

DATA=/usr/share/datasets/fashion-mnist
COORDINATOR="$BUILD_DIR/coordinator/oubli-coordinator"
CTL="$BUILD_DIR/tools/oublictl"
WORK="$(mktemp -d -t oubli-demo.XXXXXX)"
PID=""

step() { printf '\n== %s\n' "$*"; }

cleanup() {
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
  fi
  if ((KEEP)); then
    echo "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

step "Starting oubli-coordinator on a free loopback port"
"$COORDINATOR" --data_dir="$WORK/data" --listen=127.0.0.1:0 \
  --training_threads=2 >"$WORK/coordinator.out" 2>"$WORK/coordinator.log" &
PID=$!
ADDRESS=""
for _ in $(seq 1 600); do
  ADDRESS="$(sed -n 's/^listening on //p' "$WORK/coordinator.out")"
  [[ -n "$ADDRESS" ]] && break
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "oubli-coordinator exited:" >&2
    cat "$WORK/coordinator.log" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "$ADDRESS" ]] || { echo "no address after 60 s" >&2; exit 1; }
echo "coordinator pid $PID at $ADDRESS (log: $WORK/coordinator.log)"
ctl() { "$CTL" --server="$ADDRESS" --timeout_s=600 "$@"; }

step "Pretraining the frozen base on the public split (train[0, 10000))"
"$BUILD_DIR/tools/oubli-demo" --data_dir="$WORK/base" \
  --export_config="$WORK/model.conf" --public_samples=10000 \
  --user_samples=1 --test_samples=1 | sed -n 's/^  //p'
# The coordinator opens the base file named in the config by path.

step "Creating model 'fashion' (MLP + LoRA, S=4 L=4 B=2, pretrained base)"
ctl create --model fashion --config "$WORK/model.conf"

step "Ingesting $USER_SAMPLES user samples, train[10000, ...) (20 per owner)"
ctl ingest --model fashion --fashion_mnist "$DATA" --offset 10000 \
  --limit "$USER_SAMPLES" --samples_per_owner 20

step "Training every prefix"
ctl train --model fashion --wait

step "Accuracy on the 10,000 test images"
ctl predict --model fashion --fashion_mnist "$DATA" --split test

OWNER="owner-$((10000 / 20))"  # owns train[10000, 10020)
step "Forgetting $OWNER (returns once durable and no longer served)"
ctl delete --model fashion --owner "$OWNER" | tee "$WORK/receipt.txt"
DELETION="$(sed -n 's/^deletion \([^ ]*\) .*/\1/p' "$WORK/receipt.txt")"
[[ -n "$DELETION" ]] || { echo "no deletion id in the receipt" >&2; exit 1; }

step "Accuracy right after FORGOTTEN (no training yet)"
ctl predict --model fashion --fashion_mnist "$DATA" --split test

step "Watching $DELETION until RESTORED"
ctl status --deletion "$DELETION" --watch

step "Accuracy after RESTORED"
ctl predict --model fashion --fashion_mnist "$DATA" --split test

step "Verifying: retrain from scratch on the retained data, compare bits"
ctl verify --model fashion | tee "$WORK/verify.txt"

step "Shutting down"
kill -TERM "$PID"
wait "$PID"
PID=""
echo "coordinator stopped cleanly"
grep -q "match yes" "$WORK/verify.txt"
