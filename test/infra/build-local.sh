#!/usr/bin/env bash
# Builds what a `provider: local` region runs beside etcd and kube-apiserver,
# once, from the Go module proxy: kube-controller-manager and kube-scheduler
# v1.37.2 (the same k8s.io/kubernetes module test/kube/build.sh builds the
# API server from) and kwok v0.8.0 (fake nodes). Everything lands in
# ${KUBECDN_CACHE:-$HOME/.cache/kubecdn}/kube-v1.37.2/ (kwok as a link to
# kwok-v0.8.0/kwok); a later run returns at once. Prints the directory,
# which then holds etcd, kube-apiserver, kubectl, kube-controller-manager,
# kube-scheduler, kwok and kwok-stages/ (kwok's default stages).
set -euo pipefail

K8S=v1.37.2
KWOK=v0.8.0
cache="${KUBECDN_CACHE:-$HOME/.cache/kubecdn}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out=$(bash "$here/../kube/build.sh")
done_() { [[ -x "$out/kube-controller-manager" && -x "$out/kube-scheduler" && -x "$out/kwok" && -f "$out/kwok-stages/pod-ready.yaml" ]]; }
if done_; then
  echo "$out"
  exit 0
fi
exec 9>"$cache/.build.lock"
flock 9
if done_; then
  echo "$out"
  exit 0
fi
export GOFLAGS=-mod=mod CGO_ENABLED=0
ldflags="-X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"

# test/kube/build.sh left the wrapper module (with its replace lines) here.
src="$cache/src/kubernetes-$K8S"
if [[ ! -x "$out/kube-controller-manager" || ! -x "$out/kube-scheduler" ]]; then
  cat >"$src/tools_local.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  (cd "$src" && go mod tidy >&2 &&
    go build -trimpath -ldflags "$ldflags" -o "$out/kube-controller-manager.tmp" k8s.io/kubernetes/cmd/kube-controller-manager >&2 &&
    go build -trimpath -ldflags "$ldflags" -o "$out/kube-scheduler.tmp" k8s.io/kubernetes/cmd/kube-scheduler >&2)
  mv "$out/kube-controller-manager.tmp" "$out/kube-controller-manager"
  mv "$out/kube-scheduler.tmp" "$out/kube-scheduler"
fi

# kwok's go.mod has no replace lines, so `go install module@version` builds it.
kw="$cache/kwok-$KWOK"
if [[ ! -x "$kw/kwok" ]]; then
  mkdir -p "$kw"
  GOFLAGS= GOBIN="$kw" go install -trimpath sigs.k8s.io/kwok/cmd/kwok@"$KWOK" >&2
fi
# kwok's default stages (what kwokctl gives a cluster: nodes become Ready
# and keep a lease, pods become Ready, complete and go when deleted), from
# the same module version; internal/infra/local passes them with its own.
if [[ ! -f "$kw/stages/pod-ready.yaml" ]]; then
  mod=$(go mod download -json "sigs.k8s.io/kwok@$KWOK" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$kw/stages.tmp"
  cp "$mod/kustomize/stage/node/fast/node-initialize.yaml" \
    "$mod/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
    "$mod/kustomize/stage/pod/fast/pod-ready.yaml" \
    "$mod/kustomize/stage/pod/fast/pod-complete.yaml" \
    "$mod/kustomize/stage/pod/fast/pod-delete.yaml" "$kw/stages.tmp/"
  chmod 644 "$kw/stages.tmp/"*
  rm -rf "$kw/stages" && mv "$kw/stages.tmp" "$kw/stages"
fi
ln -sfn "$kw/kwok" "$out/kwok"
ln -sfn "$kw/stages" "$out/kwok-stages"
echo "$out"
