#!/usr/bin/env bash
# The project's test command (the README names it; CI runs it on a fresh
# Debian machine). It installs what the tests need, then runs: gofmt and
# go vet, every Go test (unit, integration, end to end), and the HTTP
# caching conformance suite against the edge with its recorded floor.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v curl >/dev/null || need_pkgs+=(curl)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v dig >/dev/null || need_pkgs+=(bind9-dnsutils)
command -v kdig >/dev/null || need_pkgs+=(knot-dnsutils)
command -v knotd >/dev/null || [[ -x /usr/sbin/knotd ]] || need_pkgs+=(knot)
command -v npm >/dev/null || need_pkgs+=(npm)
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v ffmpeg >/dev/null || need_pkgs+=(ffmpeg)
# The demo video's burned-in clock (internal/local/demo).
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf ]] || need_pkgs+=(fonts-dejavu-core)
if ((${#need_pkgs[@]})); then
	echo "== installing ${need_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# kube-apiserver, etcd and kubectl for the deploy tests: built once from
# the Go module proxy into ~/.cache/kubecdn (minutes the first time).
echo "== Kubernetes test servers"
test/kube/build.sh

# provider: local (test/infra/local): kube-controller-manager, kube-scheduler,
# kwok and OpenTofu, built once into ~/.cache/kubecdn like the servers above.
echo "== local regions: controller manager, scheduler, kwok, OpenTofu"
start=$SECONDS
test/infra/build-local.sh
# The tests (and kubecdn infra) find tofu through $KUBECDN_TOFU.
KUBECDN_TOFU="$(test/infra/build-tofu.sh)/tofu"
export KUBECDN_TOFU
echo "built (or found) in $((SECONDS - start)) s"

echo "== gofmt, go vet"
unformatted=$(gofmt -l cmd internal test bench 2>/dev/null || true)
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...

echo "== go test"
go test -race -count=1 ./internal/... ./cmd/...
go test -count=1 ./test/... ./bench/...

echo "== HTTP caching conformance (http-cache-tests)"
test/conformance/run.sh kubecdn
