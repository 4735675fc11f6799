#!/usr/bin/env bash
# Debian's chromium for the studio's browser tests (Playwright drives it; it downloads no browser).
#
# Usage: tools/install-chromium.sh NOTE_FILE
#
# Installs the apt package when the machine lacks a Chromium (as root, or with passwordless sudo).
# It never fails the build: when the browser cannot be installed it writes the reason to NOTE_FILE,
# and the browser tests skip with that reason, visibly. A browser found (or installed) removes NOTE_FILE.
set -u
note="$1"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

found() {
  [ -n "${AMLPIPE_CHROMIUM:-}" ] && [ -x "${AMLPIPE_CHROMIUM}" ] && return 0
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

unavailable() {
  echo "$1" > "$note"
  echo "studio browser tests will be skipped: $1" >&2
  exit 0
}

if found; then rm -f "$note"; exit 0; fi
command -v apt-get >/dev/null 2>&1 || unavailable "no Chromium on this machine and no apt-get to install it (set AMLPIPE_CHROMIUM to a Chromium binary)"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  unavailable "no Chromium on this machine, and installing Debian's chromium needs root or passwordless sudo"
fi

echo "Installing Debian's chromium for the studio's browser tests..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends chromium >"$log" 2>&1; then
  # The package lists may be missing (a fresh image) or stale: refresh them once and try again.
  "${sudo[@]}" apt-get update -q -o DPkg::Lock::Timeout=120 >>"$log" 2>&1
  "${sudo[@]}" apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends chromium >>"$log" 2>&1
fi
found || unavailable "apt-get could not install chromium: $(tail -n 1 "$log")"
rm -f "$note"
