#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright. Install it when missing and we can.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests…"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    && exit 0
fi
echo "WARNING: chromium is not installed; browser tests will be skipped (install Debian's 'chromium')." >&2
exit 0
