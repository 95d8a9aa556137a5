#!/usr/bin/env bash
# Builds Caddy from the Go module proxy once into ~/.cache/kubecdn (the
# HTTP/3 benchmark's peer); prints the binary's path. Nothing to do when it
# is there already.
set -euo pipefail
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kubecdn/caddy-$CADDY_VERSION"
if [ ! -x "$DIR/caddy" ]; then
	echo "building caddy $CADDY_VERSION into $DIR (once)" >&2
	mkdir -p "$DIR"
	GOBIN="$DIR" GOFLAGS=-mod=mod nice -n 10 go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION" >&2
fi
echo "$DIR/caddy"
