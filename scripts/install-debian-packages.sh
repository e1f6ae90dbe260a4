#!/usr/bin/env bash
# Installs the Debian packages the test suite runs as real parts: `prometheus` (the
# server the metrics test scrapes the gateway with, and `promtool`, which checks the
# alert rules under deploy/prometheus/) and `redis-server` (the shared-state store the
# scale-out tests run several gateway processes against).
#
# Idempotent: a command already on PATH is not installed again, so a second run only
# looks the commands up. Needs root (or sudo) only when something is missing.
set -euo pipefail

# command  package
PACKAGES=(
  "prometheus prometheus"
  "promtool   prometheus"
  "redis-server redis-server"
)

missing=()
for entry in "${PACKAGES[@]}"; do
  read -r command package <<<"$entry"
  if ! command -v "$command" >/dev/null 2>&1 && [[ ! " ${missing[*]-} " == *" $package "* ]]; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-debian-packages: apt-get is not available; install ${missing[*]} with this system's package manager" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-debian-packages: ${missing[*]} missing, and installing needs root (or sudo)" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "install-debian-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# An old package list may name versions the mirror no longer has: refresh it only then.
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
