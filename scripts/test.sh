#!/usr/bin/env bash
# Runs every test: native core and collector tests, the shell's tests in headless Chromium
# (wasm-bindgen-test), the build with its size guard, and the end-to-end browser tests.
# Installs what it needs first, so it works on a fresh machine (see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== native tests (core, platforms, collector)"
cargo test --workspace

echo "== a build with one platform (cargo features): the others are refused by name"
cargo test -p tandem --lib --no-default-features --features meta -- platforms::tests

echo "== shell tests in headless Chromium (wasm-bindgen-test)"
web_tests=(cargo test -p tandem --target wasm32-unknown-unknown --features test-hooks --test web)
# Compiled first so that the time limit below measures the browser run, not the build.
"${web_tests[@]}" --no-run
# The suite runs in about 6 s. Each attempt is bounded: ChromeDriver gives up on a page load after
# 20 s (webdriver.json), the runner on the suite after WASM_BINDGEN_TEST_TIMEOUT, and `timeout`
# stops the whole attempt, ChromeDriver and Chromium included (it signals its process group),
# after web_limit seconds. The proxy (see scripts/web-test-proxy.mjs) removes the known cause of
# a page that never loads; the retries cover whatever else might keep Chromium from reporting.
# An attempt that printed a test result is a verdict and is never retried.
web_limit=100
web_log=$(mktemp)
trap 'rm -f "$web_log"' EXIT
web_passed=
for attempt in 1 2 3; do
  echo "== shell tests: attempt $attempt (limit ${web_limit}s)"
  started=$SECONDS
  CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=60 \
    timeout -k 10 "$web_limit" node scripts/web-test-proxy.mjs "${web_tests[@]}" >"$web_log" 2>&1 &
  attempt_pid=$!
  tail -n +1 -f --pid="$attempt_pid" "$web_log" &
  tail_pid=$!
  # timeout(1) gives the attempt its own process group, out of reach of a Ctrl-C at the terminal.
  trap 'kill -TERM "$attempt_pid" "$tail_pid" 2>/dev/null; exit 130' INT TERM
  status=0
  wait "$attempt_pid" || status=$?
  wait "$tail_pid" || true
  trap - INT TERM
  took=$((SECONDS - started))
  if [ "$status" = 0 ]; then
    echo "== shell tests: attempt $attempt passed in ${took}s"
    web_passed=1
    break
  fi
  if grep -q 'test result: ' "$web_log"; then
    echo "== shell tests: attempt $attempt FAILED in ${took}s (a test verdict, not retried)" >&2
    exit "$status"
  fi
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "== shell tests: attempt $attempt HUNG: no test result after ${took}s; stopped it" >&2
  else
    echo "== shell tests: attempt $attempt ended without a test result (exit $status) after ${took}s" >&2
  fi
done
if [ -z "$web_passed" ]; then
  echo "== shell tests: no attempt produced a test result; giving up" >&2
  exit 1
fi

echo "== build"
node scripts/build.mjs
node scripts/check-size.mjs
node scripts/build.mjs --test-hooks

echo "== end-to-end tests in headless Chromium"
node --test --test-concurrency=1 --test-timeout=120000 tests/e2e/
