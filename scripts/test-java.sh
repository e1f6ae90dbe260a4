#!/usr/bin/env bash
# Builds the Java client and runs its tests against a real gateway on the fake provider.
# Maven fetches the pinned dependencies and the protoc / protoc-gen-grpc-java executables
# from Maven Central on the first run (then they come from ~/.m2) and generates the
# stubs from proto/ at build time. A missing JDK or Maven fails the run; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "test-java: $*" >&2
  exit 1
}

command -v java >/dev/null && command -v javac >/dev/null \
  || fail "no JDK found: the Java client needs JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null \
  || fail "mvn not found: the Java client builds with Maven 3.6.3 or newer (Debian: apt-get install maven)"
command -v openssl >/dev/null \
  || fail "openssl not found: the mutual TLS tests make their throwaway certificates with it (Debian: apt-get install openssl)"
java_version=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')
[ "${java_version%%.*}" -ge 17 ] 2>/dev/null \
  || fail "Java ${java_version:-of unknown version} found; the Java client needs 17 or newer"

# The tests start the gateway themselves: $PORTICO_BIN, else the repository's own.
if [ -z "${PORTICO_BIN:-}" ] && [ ! -x .venv/bin/portico ]; then
  scripts/setup-python.sh server
fi

cd clients/java
# -q hides Maven's progress; the one logger below keeps Surefire's test counts visible.
# Debian's Maven prints stray colour resets even in batch mode; sed drops them.
mvn -B -q \
  -Dorg.slf4j.simpleLogger.log.org.apache.maven.plugin.surefire=info \
  test 2>&1 | sed -u $'s/\e\\[0m//g'
