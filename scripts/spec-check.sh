#!/usr/bin/env bash
# The OpenAPI document against the live server: openapi-spec-validator checks
# the document itself, then schemathesis (property-based, seeded) sends every
# operation generated requests and checks that none gets a 5xx, an undocumented
# status, content type or header, or a body outside the schema. Bounded in
# time: 25 examples per operation, 2 workers, a fixed seed, 90 s at most.
#
# The server is the debug binary (TESTSCHEDULER_BIN to use another) on a
# throwaway project and database, so the POSTs it sends are safe: new runs
# of a one-line test (most are refused as invalid), cancels, and worker
# reports and heartbeats (refused without their token). One finished run,
# id 1, is there so that the /api/testruns/{id}/… operations reach it.
# Called by scripts/test.sh; needs python3 with schemathesis and
# openapi-spec-validator (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${TESTSCHEDULER_BIN:-$PWD/target/debug/testscheduler}"
[ -x "$BIN" ] || cargo build --locked
SCRIPTS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
ST="$(command -v schemathesis || echo "$SCRIPTS/schemathesis")"

WORK="$(mktemp -d)"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/tests"
printf 'def test_spec():\n    print("spec check")\n' >"$WORK/tests/test_spec.py"
"$BIN" --bind 127.0.0.1:0 --project-dir "$WORK" --database "$WORK/ts.db" --workers 1 \
  >"$WORK/stdout" 2>"$WORK/server.log" </dev/null &
SERVER=$!
for _ in $(seq 300); do
  grep -q '^listening on ' "$WORK/stdout" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
URL="$(sed -n 's/^listening on //p' "$WORK/stdout" | head -1)"
[ -n "$URL" ] || { echo "the server did not start" >&2; exit 1; }
echo "server:   $URL"

# The document, and one finished run for the operations on a run.
python3 - "$URL" "$WORK/openapi.json" <<'PY'
import json, sys, time, urllib.request
base, out = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(f"{base}/api/openapi.json") as r:
    open(out, "wb").write(r.read())
body = json.dumps({"username": "spec", "env_id": 1, "path": "./tests/test_spec.py"}).encode()
req = urllib.request.Request(f"{base}/api/testruns", body, {"Content-Type": "application/json"})
run = json.load(urllib.request.urlopen(req))
for _ in range(600):
    run = json.load(urllib.request.urlopen(f"{base}/api/testruns/{run['id']}"))
    if run["status"] not in ("queued", "created", "running"):
        break
    time.sleep(0.05)
print(f"run:      {run['id']} {run['status']}")
PY

python3 -m openapi_spec_validator "$WORK/openapi.json"

cat >"$WORK/schemathesis.toml" <<'TOML'
[parameters]
"path.id" = 1
TOML
(cd "$WORK" && timeout 90 "$ST" run "$URL/api/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples 25 --workers 2 --seed 13 --no-shrink --request-timeout 10)
