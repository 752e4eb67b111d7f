#!/usr/bin/env bash
# Builds the single-file release (a static glibc binary) and checks that it is
# static, that it serves the app, runs a real pytest run and stores its output,
# and that it reaches Redis by the host name `localhost` (a static glibc binary
# resolves names through the host's own libraries) and runs a run through it.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --release --target "$target"
bin="target/$target/release/testscheduler"
ldd "$bin" 2>&1 | grep -q "statically linked" || { ldd "$bin"; echo "not a static binary" >&2; exit 1; }
echo "$bin: $(du -h "$bin" | cut -f1), statically linked"

work=$(mktemp -d)
pid='' redis_pid=''
trap 'kill $pid $redis_pid 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r examples/demo/tests "$work/tests"

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

serve() { # name, flags… → starts the binary in the background; sets pid and base
  local name=$1; shift
  "$bin" --bind 127.0.0.1:0 --project-dir "$work" --database "$work/$name.db" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  base=$(sed -n 's/^listening on //p' "$work/$name.out")
  [ -n "$base" ] || { cat "$work/$name.err" >&2; exit 1; }
}

run_demo() { # base URL, env id: queues the passing demo test and checks it succeeds
  local id status=''
  id=$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"username\":\"smoke\",\"env_id\":$2,\"path\":\"./tests/test_passing.py\"}" "$1/api/testruns" | json_field id)
  for _ in $(seq 300); do
    status=$(curl -fsS "$1/api/testruns/$id" | json_field status)
    case "$status" in created|running) sleep 0.1 ;; *) break ;; esac
  done
  [ "$status" = succeeded ] || { echo "smoke run ended $status" >&2; curl -s "$1/api/testruns/$id/log.txt" >&2; exit 1; }
  curl -fsS "$1/api/testruns/$id/log.txt" | grep -q "passed"
}

serve local --workers 1
curl -fsS "$base/healthz" >/dev/null
curl -fsS "$base/" | grep -qi "<!doctype html"
run_demo "$base" 1
echo "static binary: served the app, ran a pytest run, stored its output"
kill "$pid"; wait "$pid" 2>/dev/null || true

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
serve redis --redis "redis://localhost:$port/0" --redis-prefix "smoke-$$:" --workers 1
run_demo "$base" 2
echo "static binary: reached Redis as localhost and ran a run through it"
