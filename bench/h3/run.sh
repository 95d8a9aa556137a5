#!/usr/bin/env bash
# HTTP/3 benchmark (issue 17): the kubecdn edge against Caddy over HTTP/3,
# same origin, same ECDSA P-256 certificate, same load, one run, loopback.
#
# usage: bench/h3/run.sh [--quick] [--duration S] [--rounds R] [--port-base P]
#                        [--keep]
#
# Servers, each measured with bench/cmd/h3load (quic-go's http3 client):
#   kubecdn      the edge, a 1 KiB and a 1 MiB hit from its cache, over HTTP/3
#   kubecdn-h2   the same edge and objects over HTTP/2 (the same client)
#   caddy-proxy  Caddy's reverse_proxy to the same origin over HTTP/3: Caddy
#                has no cache, so every request goes to the origin (a proxy,
#                not a cache: the figure a team gets from Caddy in front of
#                its origin)
#   caddy-files  Caddy's file_server with the same bytes on disk over HTTP/3
#                (a static HTTP/3 server: what Caddy's QUIC stack does with no
#                upstream at all, the bound for a cache)
# Load: 1 KiB: 16 connections x 8 requests in flight; 1 MiB: 8 x 2. Each
# test runs R times (default 2, 1 with --quick), servers in rotating order,
# best kept. Prints requests/s (1 KiB), body MB/s (1 MiB), the ratios
# kubecdn / caddy-*, and the load average before and after.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="/usr/local/go/bin:$PATH:/usr/sbin"

DURATION=10
ROUNDS=2
PORT_BASE=29180
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) DURATION=4 ROUNDS=1 ;;
	--duration) DURATION="$2"; shift ;;
	--rounds) ROUNDS="$2"; shift ;;
	--port-base) PORT_BASE="$2"; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 120 ] || { echo "run.sh: --duration $DURATION: want 1 to 120" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 5 ] || { echo "run.sh: --rounds $ROUNDS: want 1 to 5" >&2; exit 2; }

log() { printf '[bench-h3 %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
CADDY=$("$ROOT/bench/h3/build-caddy.sh")

# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
bench_tmp h3

P_ORIGIN=$PORT_BASE
P_KUBECDN=$((PORT_BASE + 1))
P_PLAIN=$((PORT_BASE + 2))
P_ADMIN=$((PORT_BASE + 3))
P_CPROXY=$((PORT_BASE + 4))
P_CFILES=$((PORT_BASE + 5))
NCPU=$(nproc)

log "building origin, kubecdn and h3load"
(cd "$ROOT" && go build -o "$TMP/origin" ./bench/cmd/origin && go build -o "$TMP/kubecdn" ./cmd/kubecdn &&
	go build -o "$TMP/h3load" ./bench/cmd/h3load)

log "making a test CA and an ECDSA P-256 certificate for bench.example"
bench_cert "$TMP"

"$TMP/origin" -listen "127.0.0.1:$P_ORIGIN" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
wait_port "$P_ORIGIN" 10

SMALL=/obj/1KiB/h3-bench
LARGE=/obj/1MiB/h3-bench
# The file server's copies: the origin's bytes, on disk under the same paths.
for p in $SMALL $LARGE; do
	mkdir -p "$TMP/www$(dirname $p)"
	curl -sSf -o "$TMP/www$p" "http://127.0.0.1:$P_ORIGIN$p"
done

"$TMP/kubecdn" edge --listen "127.0.0.1:$P_PLAIN" --admin "127.0.0.1:$P_ADMIN" --tls-listen "127.0.0.1:$P_KUBECDN" \
	--tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key" --origin "http://127.0.0.1:$P_ORIGIN" --memory 256MiB \
	--access-log off >"$TMP/kubecdn.log" 2>&1 &
PIDS+=($!)

mkdir -p "$TMP/caddy"
cat >"$TMP/Caddyfile" <<EOF
{
	admin off
	persist_config off
	auto_https disable_redirects
	storage file_system $TMP/caddy
	servers {
		protocols h1 h2 h3
	}
}
https://bench.example:$P_CPROXY {
	bind 127.0.0.1
	tls $TMP/tls.crt $TMP/tls.key
	reverse_proxy 127.0.0.1:$P_ORIGIN
}
https://bench.example:$P_CFILES {
	bind 127.0.0.1
	tls $TMP/tls.crt $TMP/tls.key
	root * $TMP/www
	file_server
}
EOF
HOME=$TMP/caddy XDG_DATA_HOME=$TMP/caddy XDG_CONFIG_HOME=$TMP/caddy \
	"$CADDY" run --config "$TMP/Caddyfile" --adapter caddyfile >"$TMP/caddy.log" 2>&1 &
PIDS+=($!)
wait_port "$P_KUBECDN" 10 || { cat "$TMP/kubecdn.log" >&2; exit 1; }
wait_port "$P_CPROXY" 10 || { cat "$TMP/caddy.log" >&2; exit 1; }
wait_port "$P_CFILES" 10 || { cat "$TMP/caddy.log" >&2; exit 1; }
sleep 0.5 # the UDP sockets are bound right after the TCP ones

declare -A PORT=([kubecdn]=$P_KUBECDN [kubecdn-h2]=$P_KUBECDN [caddy-proxy]=$P_CPROXY [caddy-files]=$P_CFILES)
declare -A PROTO=([kubecdn]=h3 [kubecdn-h2]=h2 [caddy-proxy]=h3 [caddy-files]=h3)
SERVERS=(kubecdn kubecdn-h2 caddy-proxy caddy-files)

# load server path conns streams seconds: one h3load line.
load() {
	"$TMP/h3load" -url "https://127.0.0.1:${PORT[$1]}$2" -host bench.example -ca "$TMP/ca.crt" \
		-proto "${PROTO[$1]}" -conns "$3" -streams "$4" -duration "${5}s"
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

for s in "${SERVERS[@]}"; do # warm the cache, check each answers
	for p in $SMALL $LARGE; do
		out=$(load "$s" "$p" 1 1 1) || { log "$s $p failed: $out"; tail -20 "$TMP/kubecdn.log" "$TMP/caddy.log" >&2; exit 1; }
	done
	log "$s answers (${PROTO[$s]})"
done
if ! curl -sS --http2 --cacert "$TMP/ca.crt" --resolve "bench.example:$P_KUBECDN:127.0.0.1" -D - -o /dev/null \
	"https://bench.example:$P_KUBECDN$SMALL" | grep -qi '^alt-svc: h3'; then
	log "kubecdn does not advertise HTTP/3"
	exit 1
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RPS MBPS
for s in "${SERVERS[@]}"; do RPS[$s]=0 MBPS[$s]=0; done
order=("${SERVERS[@]}")
for r in $(seq "$ROUNDS"); do
	for s in "${order[@]}"; do
		out=$(load "$s" $SMALL 16 8 "$DURATION")
		log "round $r: $s 1 KiB: $out"
		v=$(field rps "$out")
		awk -v a="$v" -v b="${RPS[$s]}" 'BEGIN { exit !(a > b) }' && RPS[$s]=$v
		out=$(load "$s" $LARGE 8 2 "$DURATION")
		log "round $r: $s 1 MiB: $out"
		v=$(field mbps "$out")
		awk -v a="$v" -v b="${MBPS[$s]}" 'BEGIN { exit !(a > b) }' && MBPS[$s]=$v
	done
	order=("${order[@]:1}" "${order[0]}")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ORIGIN_HITS=$(curl -sS "http://127.0.0.1:$P_ORIGIN/__count?path=$SMALL")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
printf '\nHTTP/3 benchmark: %s CPUs, %ss x %s rounds (best), h3load (quic-go %s), ECDSA P-256, %s, caddy %s\n' \
	"$NCPU" "$DURATION" "$ROUNDS" "$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/quic-go/quic-go)" \
	"$(go version | awk '{print $3}')" "$(basename "$(dirname "$CADDY")" | sed 's/^caddy-//')"
printf 'net.core.rmem_max=%s wmem_max=%s; load average before %s, after %s; the origin answered %s requests for the 1 KiB object\n' \
	"$(cat /proc/sys/net/core/rmem_max)" "$(cat /proc/sys/net/core/wmem_max)" "$LOAD_BEFORE" "$LOAD_AFTER" "$ORIGIN_HITS"
printf '%-20s %14s %14s\n' server "1 KiB req/s" "1 MiB MB/s"
for s in "${SERVERS[@]}"; do printf '%-20s %14s %14s\n' "$s (${PROTO[$s]})" "${RPS[$s]}" "${MBPS[$s]}"; done
printf '%-20s %14s %14s\n' "kubecdn/caddy-proxy" "$(ratio "${RPS[kubecdn]}" "${RPS[caddy-proxy]}")" "$(ratio "${MBPS[kubecdn]}" "${MBPS[caddy-proxy]}")"
printf '%-20s %14s %14s\n' "kubecdn/caddy-files" "$(ratio "${RPS[kubecdn]}" "${RPS[caddy-files]}")" "$(ratio "${MBPS[kubecdn]}" "${MBPS[caddy-files]}")"
