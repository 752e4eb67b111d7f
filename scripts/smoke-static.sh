#!/usr/bin/env bash
# Builds the single-file release (a static glibc binary) and checks that it is
# static and that it serves, runs a real pytest run, and stores its output.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --release --target "$target"
bin="target/$target/release/testscheduler"
ldd "$bin" 2>&1 | grep -q "statically linked" || { ldd "$bin"; echo "not a static binary" >&2; exit 1; }
echo "$bin: $(du -h "$bin" | cut -f1), statically linked"

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r examples/demo/tests "$work/tests"
"$bin" --bind 127.0.0.1:0 --project-dir "$work" --workers 1 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/out")
[ -n "$base" ] || { cat "$work/err"; exit 1; }
curl -fsS "$base/healthz" >/dev/null
curl -fsS "$base/" | grep -qi "<!doctype html"
id=$(curl -fsS -H 'Content-Type: application/json' -d '{"username":"smoke","env_id":1,"path":"./tests/test_passing.py"}' "$base/api/testruns" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 300); do
  status=$(curl -fsS "$base/api/testruns/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  case "$status" in created|running) sleep 0.1 ;; *) break ;; esac
done
[ "$status" = succeeded ] || { echo "smoke run ended $status"; curl -s "$base/api/testruns/$id/log.txt"; exit 1; }
curl -fsS "$base/api/testruns/$id/log.txt" | grep -q "passed"
echo "static binary: served, ran a pytest run ($status), stored its output"
