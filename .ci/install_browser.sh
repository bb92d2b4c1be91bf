#!/usr/bin/env bash
# Headless Chromium from Debian's packages for the browser tests (model card, `indb ui`).
# Playwright (a dev dependency) drives this executable; it never downloads a browser.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "[install_browser] chromium already installed: $(command -v chromium)"
    exit 0
fi
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
sudo_if_needed apt-get update -qq
DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq chromium >/dev/null
echo "[install_browser] done: $(command -v chromium)"
