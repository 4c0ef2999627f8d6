#!/usr/bin/env bash
# System packages the test suite needs beyond Python: nginx for tests/scaleout/, the Debian
# chromium (driven by Playwright at /usr/bin/chromium) and npm (axe-core) for tests/browser/.
# Idempotent and quick: installs only what is missing; runs "apt-get update" only when an
# install is needed (and retries once after an update if the package lists are stale).
set -euo pipefail

# command-or-absolute-path-to-check:debian-package(s), first available wins
want=(
  "nginx:nginx-light nginx"
  "/usr/bin/chromium:chromium"
  "npm:npm"
)

missing=()
for entry in "${want[@]}"; do
  cmd="${entry%%:*}"
  pkgs="${entry#*:}"
  if [ "${cmd#/}" != "$cmd" ]; then
    [ -x "$cmd" ] && continue
  elif command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ]; then
    continue
  fi
  missing+=("$pkgs")
done

[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-packages: apt-get not available; please install: ${missing[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

install_one() {  # try each alternative package name in turn
  local p
  for p in $1; do
    if $SUDO apt-get install -y -q --no-install-recommends "$p" >/dev/null; then
      echo "install-system-packages: installed $p"
      return 0
    fi
  done
  return 1
}

updated=0
for pkgs in "${missing[@]}"; do
  if ! install_one "$pkgs"; then
    if [ "$updated" -eq 0 ]; then
      $SUDO apt-get update -q >/dev/null
      updated=1
    fi
    install_one "$pkgs" || { echo "install-system-packages: cannot install $pkgs" >&2; exit 1; }
  fi
done
