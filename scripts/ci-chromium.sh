#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/test_web_browser.py). Idempotent.
#
#   eval "$(scripts/ci-chromium.sh)"
#
# Installs the `chromium` package with apt-get when /usr/bin/chromium is absent (Playwright then
# drives it through executable_path; no browser download). Prints only `export ...` lines on
# stdout, so the browser tests fail rather than skip when Chromium cannot be had.
set -euo pipefail

log() { echo "ci-chromium: $*" >&2; }
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if [[ ! -x /usr/bin/chromium ]]; then
  log "installing chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >&2 || true
  as_root apt-get install -y -qq chromium >&2
fi
log "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium did not start')"
# wrk, the external load generator of benchmarks/service_wrk.py (its smoke test needs it).
if ! command -v wrk >/dev/null; then
  log "installing wrk with apt-get"
  as_root apt-get install -y -qq wrk >&2 || log "wrk could not be installed"
fi
echo "export LEGSPASM_REQUIRE_BROWSER=1"
