#!/bin/sh
# Benchmark prerequisites: wrk (Debian package) and the project's virtualenv (make setup).
set -e
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update && apt-get install -y wrk
  else
    sudo apt-get update && sudo apt-get install -y wrk
  fi
fi
command -v taskset >/dev/null 2>&1 || echo "taskset missing (util-linux): no CPU pinning" >&2
