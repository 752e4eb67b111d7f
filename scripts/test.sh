#!/usr/bin/env bash
# The whole test suite, as README says and CI runs it. Installs what a fresh
# machine lacks where it can (pytest, npm packages), then: Rust format, lint,
# unit and black-box tests; the web app's lint, types, unit tests and a
# reproducible build; the end-to-end tests in Chromium; the static release
# binary's smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "prerequisites"
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install --quiet pytest
if [ ! -x /usr/bin/chromium ]; then
  echo "Chromium is missing: install it with 'apt-get install -y chromium' (the browser tests need /usr/bin/chromium)" >&2
  exit 1
fi

step "cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "Rust unit and API tests"
cargo build --locked
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked
else
  cargo test --locked
fi

step "web: install, lint, types, unit tests"
cd web
[ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
npm run lint
npm run typecheck
npm test

step "web: reproducible build of assets/"
npm run build
cd ..
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

echo
echo "all checks passed"
