#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the official Go modules into a cache outside the
# repository (envtest-style test control plane). Idempotent: does nothing when both
# binaries for the pinned versions are already cached.
#
#   SLUICE_K8S_BIN   where the binaries go (default: ~/.cache/sluice/k8s/<versions>)
#
# Prints the directory holding `kube-apiserver` and `etcd` on its last line.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.35.4}
ETCD_VERSION=${ETCD_VERSION:-3.5.21}
STAGING_VERSION="0.${K8S_VERSION#1.}"
BIN_DIR=${SLUICE_K8S_BIN:-"${XDG_CACHE_HOME:-$HOME/.cache}/sluice/k8s/v${K8S_VERSION}-etcd${ETCD_VERSION}"}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

log() { echo "[control-plane] $*" >&2; }

command -v go >/dev/null || { log "Go is required (https://go.dev/dl); none found on PATH"; exit 1; }
mkdir -p "$BIN_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ! -x "$BIN_DIR/etcd" ]]; then
  log "building etcd v$ETCD_VERSION (1-3 min on 2 cores)"
  mkdir "$work/etcd" && cd "$work/etcd"
  go mod init local/etcd >/dev/null 2>&1
  cat >main.go <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" .
  mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
fi

if [[ ! -x "$BIN_DIR/kube-apiserver" ]]; then
  log "building kube-apiserver v$K8S_VERSION (10-20 min on 2 cores)"
  mkdir "$work/kas" && cd "$work/kas"
  go mod init local/kas >/dev/null 2>&1
  cat >main.go <<'EOF'
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
EOF
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  # k8s.io/kubernetes pins its staging modules at v0.0.0 with local replaces; point each
  # at its published tag instead (golang/go#44840).
  # (exactly v0.0.0: pseudo-versions such as k8s.io/utils v0.0.0-2025… are real and stay)
  for module in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u); do
    go mod edit -replace="$module=$module@v$STAGING_VERSION"
  done
  go get "k8s.io/kubernetes@v$K8S_VERSION" >&2
  go mod tidy >&2
  minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  go build -trimpath -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean" \
    -o "$BIN_DIR/kube-apiserver.tmp" .
  mv "$BIN_DIR/kube-apiserver.tmp" "$BIN_DIR/kube-apiserver"
fi

echo "$BIN_DIR"
