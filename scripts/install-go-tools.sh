#!/usr/bin/env bash
# Installs the Go command-line tools the repository uses, at pinned versions, into
# tools/bin/ (git-ignored): the two Go code generators that buf.gen.yaml runs, and the
# grpcurl and grpc_health_probe binaries that the tool tests drive, the ghz load
# generator that `make bench` drives, and kustomize, which renders deploy/kubernetes/ for
# the manifest tests.
#
# Idempotent: a binary whose embedded module version already matches its pin is kept,
# so a second run only reads build info and finishes in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "install-go-tools: the Go toolchain ('go') is not on PATH; install Go 1.25 or newer (what grpcurl and protoc-gen-go-grpc need)" >&2
  exit 1
fi

# name  package path  pinned version
TOOLS=(
  "protoc-gen-go      google.golang.org/protobuf/cmd/protoc-gen-go          v1.36.12"
  "protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc         v1.6.2"
  "grpcurl            github.com/fullstorydev/grpcurl/cmd/grpcurl          v1.9.4"
  "grpc_health_probe  github.com/grpc-ecosystem/grpc-health-probe          v0.4.40"
  "ghz                github.com/bojand/ghz/cmd/ghz                         v0.120.0"
  # v5.8.3 needs Go 1.27; v5.8.2 builds with Go 1.26.
  "kustomize          sigs.k8s.io/kustomize/kustomize/v5                   v5.8.2"
)

bin_dir="$PWD/tools/bin"
mkdir -p "$bin_dir"

# Prints the version of the main module a Go binary was built from ("" if unknown).
built_version() {
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# `go install PKG@VERSION` also asks the module proxy for the module's version list (to
# report deprecation), and the proxy refuses that list for grpc-health-probe although
# it serves every tagged version. So that one is built inside a throwaway module that
# requires the pinned version: the same sources and the same dependency versions.
build_in_temp_module() {
  # The probe's main package is its module's root, so the package path names the module.
  local module="$1" version="$2" output="$3"
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init portico.local/tool-build >/dev/null 2>&1
    go mod edit -require="$module@$version"
    # -mod=mod lets the build record the dependencies' checksums in the throwaway go.sum.
    GOFLAGS="$(go env GOFLAGS) -mod=mod" go build -o "$output" "$module"
  )
}

for entry in "${TOOLS[@]}"; do
  read -r name pkg version <<<"$entry"
  binary="$bin_dir/$name"
  if [[ -x "$binary" && "$(built_version "$binary")" == "$version" ]]; then
    continue
  fi
  echo "install-go-tools: installing $name $version"
  if [[ "$name" == grpc_health_probe ]]; then
    build_in_temp_module "$pkg" "$version" "$binary"
  else
    # GOBIN is per command, so nothing lands in the user's own Go bin directory.
    GOBIN="$bin_dir" go install "$pkg@$version"
  fi
  actual="$(built_version "$binary")"
  if [[ "$actual" != "$version" ]]; then
    echo "install-go-tools: $binary reports version '$actual', expected $version" >&2
    exit 1
  fi
done
