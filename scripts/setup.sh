#!/usr/bin/env bash
# Installs everything the build and the tests need, skipping what is already there:
# the wasm32 target, wasm-bindgen-cli (pinned to the wasm-bindgen crate's exact version),
# Chromium and ChromeDriver (Debian packages; skipped with TANDEM_SETUP_NO_BROWSER=1, as npm start
# does), and the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null
# The tag's release build rebuilds std (see scripts/build.mjs), which needs std's source.
rustup component add rust-src >/dev/null

wanted=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
if [ -z "$wanted" ]; then echo "setup: cannot read the wasm-bindgen version from Cargo.toml" >&2; exit 1; fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wanted\$"; then
  echo "setup: installing wasm-bindgen-cli $wanted (about 3 minutes)"
  cargo install wasm-bindgen-cli --version "=$wanted"
fi

if [ "${TANDEM_SETUP_NO_BROWSER:-}" != 1 ] && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
  echo "setup: installing chromium and chromium-driver"
  sudo_=""
  if [ "$(id -u)" != 0 ]; then sudo_="sudo"; fi
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# npm ci only when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
