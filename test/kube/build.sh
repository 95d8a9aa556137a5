#!/usr/bin/env bash
# Builds the Kubernetes test servers from the Go module proxy, once:
# etcd v3.6.16, kube-apiserver and kubectl v1.37.2. They land in
# ${KUBECDN_CACHE:-$HOME/.cache/kubecdn}/kube-v1.37.2/ outside the checkout;
# a later run finds them there and returns at once. Prints the directory.
#
# A fresh machine pays about 11 minutes (2 cores, empty Go caches) once.
set -euo pipefail

K8S=v1.37.2
STAGING=v0.37.2
ETCD=v3.6.16
cache="${KUBECDN_CACHE:-$HOME/.cache/kubecdn}"
out="$cache/kube-$K8S"
if [[ -x "$out/etcd" && -x "$out/kube-apiserver" && -x "$out/kubectl" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out" "$cache/src"
# One build at a time (test packages may call this at once); the second
# finds the binaries the first made.
exec 9>"$cache/.build.lock"
flock 9
if [[ -x "$out/etcd" && -x "$out/kube-apiserver" && -x "$out/kubectl" ]]; then
  echo "$out"
  exit 0
fi
export GOFLAGS=-mod=mod CGO_ENABLED=0
# Without these the binaries call themselves v0.0.0-master.
ldflags="-X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

# etcd: a tiny module that requires the server module and builds its main.
src="$cache/src/etcd-$ETCD"
if [[ ! -x "$out/etcd" ]]; then
  mkdir -p "$src"
  cat >"$src/go.mod" <<MOD
module kubecdn.local/etcd

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD
MOD
  cat >"$src/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$src" && go mod tidy >&2 && go build -trimpath -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3 >&2)
  mv "$out/etcd.tmp" "$out/etcd"
fi

# kube-apiserver and kubectl: k8s.io/kubernetes requires its staging modules
# at v0.0.0; every one is replaced by its published version.
src="$cache/src/kubernetes-$K8S"
if [[ ! -x "$out/kube-apiserver" || ! -x "$out/kubectl" ]]; then
  mkdir -p "$src"
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module kubecdn.local/kubernetes"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S"
    echo
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$modfile" | awk -v v="$STAGING" '{print "replace " $1 " => " $1 " " v}'
  } >"$src/go.mod"
  cat >"$src/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$src" && go mod tidy >&2 &&
    go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2 &&
    go build -trimpath -ldflags "$ldflags" -o "$out/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl >&2)
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
  mv "$out/kubectl.tmp" "$out/kubectl"
fi
echo "$out"
