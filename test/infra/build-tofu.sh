#!/usr/bin/env bash
# Builds OpenTofu from the Go module proxy, once: tofu v1.12.6 lands in
# ${KUBECDN_CACHE:-$HOME/.cache/kubecdn}/tofu-v1.12.6/ outside the checkout;
# a later run finds it there and returns at once. Prints the directory.
#
# OpenTofu's go.mod replaces hashicorp/hcl/v2 with its own fork; a replace
# only counts in the main module, so a wrapper module carries that one line
# (and OpenTofu's godebug settings) and builds cmd/tofu.
set -euo pipefail

TOFU=v1.12.6
cache="${KUBECDN_CACHE:-$HOME/.cache/kubecdn}"
out="$cache/tofu-$TOFU"
if [[ -x "$out/tofu" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out" "$cache/src"
# One tofu build at a time (its own lock: it may run beside the Kubernetes
# build); the second finds the binary the first made.
exec 9>"$cache/.build-tofu.lock"
flock 9
if [[ -x "$out/tofu" ]]; then
  echo "$out"
  exit 0
fi
export GOFLAGS=-mod=mod CGO_ENABLED=0

src="$cache/src/opentofu-$TOFU"
mkdir -p "$src"
modfile=$(go mod download -json "github.com/opentofu/opentofu@$TOFU" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module kubecdn.local/opentofu"
  echo
  grep -m1 -E '^go ' "$modfile"
  echo
  # godebug ( ... ) block, as OpenTofu's own release builds have it.
  sed -n '/^godebug (/,/^)/p' "$modfile"
  echo
  echo "require github.com/opentofu/opentofu $TOFU"
  echo
  grep -E '^replace ' "$modfile"
} >"$src/go.mod"
if ! grep -q '^replace ' "$src/go.mod"; then
  echo "build-tofu.sh: OpenTofu $TOFU's go.mod has no replace line; check the wrapper" >&2
  exit 1
fi
cat >"$src/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
GO
(cd "$src" && go mod tidy >&2 &&
  go build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
    -o "$out/tofu.tmp" github.com/opentofu/opentofu/cmd/tofu >&2)
mv "$out/tofu.tmp" "$out/tofu"
echo "$out"
