#!/usr/bin/env bash
# The whole test suite, as README says and CI runs it (.ci/run only calls
# this). First it checks what the suite needs — Rust, Python with pytest,
# schemathesis and openapi-spec-validator, redis-server, Node.js 20+ with
# npm, Chromium, cargo-nextest — and installs what it can (the Python ones
# with pip; Chromium and Redis with apt-get when running as root; the web
# app's packages with npm ci when node_modules is stale;
# without nextest it uses cargo test), or stops with the one command to run.
# Then: Rust format, lint, unit and black-box tests; the OpenAPI document
# against the live server (scripts/spec-check.sh); the web app's lint,
# types, unit tests and a reproducible build; the end-to-end tests in
# Chromium; the static release binary's smoke test. It prints how long each
# stage took, and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# ---- stages and their times ------------------------------------------------
START=$(date +%s)
STAGE=""
STAGE_START=$START
TIMES=()

now() { date +%s; }
end_stage() {
  if [ -n "$STAGE" ]; then
    local took=$(($(now) - STAGE_START))
    TIMES+=("$(printf '%5ds  %s' "$took" "$STAGE")")
    printf '\033[2m-- %s: %ds\033[0m\n' "$STAGE" "$took"
  fi
  STAGE=""
}
step() {
  end_stage
  STAGE="$*"
  STAGE_START=$(now)
  printf '\n\033[1m== %s\033[0m\n' "$*"
}
summary() {
  local rc=$?
  end_stage
  echo
  echo "stage times:"
  for t in "${TIMES[@]}"; do echo "$t"; done
  printf '%5ds  total\n' "$(($(now) - START))"
  if [ "$rc" -eq 0 ]; then echo "all checks passed"; else echo "FAILED (exit $rc)" >&2; fi
}
trap summary EXIT

# Stops with the one command that fixes what is missing.
need() {
  echo >&2
  echo "missing: $1" >&2
  echo "run:     $2" >&2
  exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }
APT_UPDATED=""
apt_install() {
  is_root && have apt-get || return 1
  if [ -z "$APT_UPDATED" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  apt-get install -y -qq "$@"
}

# ---- prerequisites -----------------------------------------------------------
step "prerequisites"

have cargo || need "Rust (cargo)" "curl https://sh.rustup.rs -sSf | sh -s -- -y"
echo "cargo:    $(cargo --version)"

have python3 || apt_install python3 python3-pip || need "Python 3" "apt-get install -y python3 python3-pip"
if ! python3 -c 'import pytest' 2>/dev/null; then
  python3 -m pip install --quiet pytest 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages pytest 2>/dev/null ||
    apt_install python3-pytest ||
    need "pytest" "python3 -m pip install pytest"
fi
echo "pytest:   $(python3 -m pytest --version 2>&1 | head -1)"
SPEC_TOOLS=(schemathesis openapi-spec-validator)
if ! python3 -c 'import schemathesis, openapi_spec_validator' 2>/dev/null; then
  python3 -m pip install --quiet "${SPEC_TOOLS[@]}" 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages "${SPEC_TOOLS[@]}" 2>/dev/null ||
    need "schemathesis and openapi-spec-validator" "python3 -m pip install ${SPEC_TOOLS[*]}"
fi
echo "spec:     schemathesis $(python3 -c 'import schemathesis; print(schemathesis.__version__)'), openapi-spec-validator"

# The browser tests use $CHROMIUM (default /usr/bin/chromium, Debian's package).
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export CHROMIUM
APT_WANT=()
have redis-server || APT_WANT+=(redis-server)
[ -x "$CHROMIUM" ] || APT_WANT+=(chromium)
if [ "${#APT_WANT[@]}" -gt 0 ]; then
  echo "installing ${APT_WANT[*]}"
  apt_install "${APT_WANT[@]}" || need "${APT_WANT[*]}" "sudo apt-get install -y ${APT_WANT[*]}"
fi
have redis-server || need "redis-server" "sudo apt-get install -y redis-server"
[ -x "$CHROMIUM" ] || need "Chromium at $CHROMIUM (the browser tests; set CHROMIUM to use another)" "sudo apt-get install -y chromium"
echo "redis:    $(redis-server --version | head -1)"
echo "chromium: $("$CHROMIUM" --version 2>/dev/null | head -1)"

# Vite 8 needs Node 20.19+ (Debian's own nodejs is older): not installed here.
NODE_CMD="sudo apt-get install -y nodejs npm  # Debian 13 / Ubuntu 24.04 or newer; older releases ship a Node that is too old"
have node && have npm || need "Node.js 20.19+ with npm" "$NODE_CMD"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  need "Node.js 20.19+ (found $(node --version))" "$NODE_CMD"
echo "node:     $(node --version), npm $(npm --version)"

if cargo nextest --version >/dev/null 2>&1; then
  RUST_TESTS=(cargo nextest run --locked)
  echo "nextest:  $(cargo nextest --version | head -1)"
else
  RUST_TESTS=(cargo test --locked)
  echo "nextest:  not installed, using cargo test (faster: cargo install cargo-nextest --locked)"
fi

if [ -d web/node_modules ] && [ web/node_modules/.package-lock.json -nt web/package-lock.json ]; then
  echo "web/node_modules is current"
else
  echo "web/node_modules is missing or older than package-lock.json: npm ci"
  (cd web && npm ci --no-audit --no-fund)
fi

# ---- the suite -------------------------------------------------------------
step "cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "Rust unit and API tests"
cargo build --locked
"${RUST_TESTS[@]}"

step "OpenAPI against the live server (openapi-spec-validator, schemathesis)"
./scripts/spec-check.sh

step "web: lint, types, unit tests"
(cd web && npm run lint && npm run typecheck && npm test)

step "web: reproducible build of assets/"
(cd web && npm run build)
if git rev-parse --git-dir >/dev/null 2>&1 && [ -n "$(git status --porcelain -- assets)" ]; then
  git status --short -- assets >&2
  echo "assets/ differs from a fresh build of web/: run 'cd web && npm run build' and commit assets/" >&2
  exit 1
fi

step "end-to-end tests in Chromium"
cargo build --locked # the debug binary serves assets/ as just built
(cd web && TESTSCHEDULER_BIN="$PWD/../target/debug/testscheduler" npm run e2e)

step "static release binary"
./scripts/smoke-static.sh
