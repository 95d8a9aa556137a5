#!/usr/bin/env bash
# TLS benchmark (issue 6): the kubecdn edge's HTTPS listener against nginx
# (ssl + proxy_cache), with the same ECDSA P-256 certificate, in one run, on
# loopback.
#
# usage: bench/tls/run.sh [--quick] [--duration S] [--rounds R] [--port-base P]
#                         [--keep]
#
# Measures, for each server in turn under the same load (wrk, one thread):
#   - hit requests/s for a 1 KiB object over HTTPS with keep-alive (-c64)
#   - new TLS handshakes/s: the same hit with "Connection: close", so every
#     request is a new TCP connection and a full handshake (-c32; wrk does not
#     resume sessions)
# and prints a table with the ratio kubecdn / nginx. Each test runs R times
# (default 3, 1 with --quick), servers in alternating order, best kept.
# Both servers may use every CPU (nginx: one worker per CPU; kubecdn: Go's
# default GOMAXPROCS); wrk shares them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="/usr/local/go/bin:$PATH:/usr/sbin"

DURATION=10
ROUNDS=3
PORT_BASE=29080
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) DURATION=3 ROUNDS=1 ;;
	--duration) DURATION="$2"; shift ;;
	--rounds) ROUNDS="$2"; shift ;;
	--port-base) PORT_BASE="$2"; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

log() { printf '[bench-tls %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${need[@]}" >/dev/null
fi

# shellcheck source=../lib.sh
. "$ROOT/bench/lib.sh"
bench_tmp tls

P_ORIGIN=$PORT_BASE
P_NGINX=$((PORT_BASE + 1))
P_KUBECDN=$((PORT_BASE + 2))
P_PLAIN=$((PORT_BASE + 3))
P_ADMIN=$((PORT_BASE + 4))
NCPU=$(nproc)

log "building origin and kubecdn"
(cd "$ROOT" && go build -o "$TMP/origin" ./bench/cmd/origin && go build -o "$TMP/kubecdn" ./cmd/kubecdn)

log "making a test CA and an ECDSA P-256 certificate for bench.example"
bench_cert "$TMP"

"$TMP/origin" -listen "127.0.0.1:$P_ORIGIN" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
wait_port "$P_ORIGIN" 10

mkdir -p "$TMP/nginx/cache" "$TMP/nginx/tmp"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $NCPU;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp;
    proxy_temp_path $TMP/nginx/tmp;
    fastcgi_temp_path $TMP/nginx/tmp;
    uwsgi_temp_path $TMP/nginx/tmp;
    scgi_temp_path $TMP/nginx/tmp;
    keepalive_requests 100000;
    proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=bench:32m max_size=1g inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
    server {
        listen 127.0.0.1:$P_NGINX ssl http2;
        server_name bench.example;
        ssl_certificate $TMP/tls.crt;
        ssl_certificate_key $TMP/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
        }
    }
}
EOF
nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/stdout.log" 2>&1 &
PIDS+=($!)
"$TMP/kubecdn" edge --listen "127.0.0.1:$P_PLAIN" --admin "127.0.0.1:$P_ADMIN" --tls-listen "127.0.0.1:$P_KUBECDN" \
	--tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key" --origin "http://127.0.0.1:$P_ORIGIN" --memory 256MiB \
	>"$TMP/kubecdn.log" 2>&1 &
PIDS+=($!)
wait_port "$P_NGINX" 10 || { cat "$TMP/nginx/error.log" >&2; exit 1; }
wait_port "$P_KUBECDN" 10 || { cat "$TMP/kubecdn.log" >&2; exit 1; }

declare -A PORT=([nginx]=$P_NGINX [kubecdn]=$P_KUBECDN)
URLPATH=/obj/1KiB/tls-bench
for s in nginx kubecdn; do # warm both caches, check the certificate chain
	for _ in 1 2; do
		curl -sS --http2 --cacert "$TMP/ca.crt" --resolve "bench.example:${PORT[$s]}:127.0.0.1" \
			-o /dev/null -w "$s %{http_version} %{http_code}\n" "https://bench.example:${PORT[$s]}$URLPATH" >&2
	done
done

# wrk_rps port conns [header...]: requests/s of one run (errors fail the run).
wrk_rps() {
	local port=$1 conns=$2
	shift 2
	local args=() h
	for h in "$@"; do args+=(-H "$h"); done
	local out
	out=$(wrk -t1 -c"$conns" -d"${DURATION}s" "${args[@]}" -H "Host: bench.example" "https://127.0.0.1:$port$URLPATH" 2>&1)
	if grep -q "Non-2xx\|Socket errors: connect [1-9]" <<<"$out"; then
		log "errors: $(grep -E 'Non-2xx|Socket errors' <<<"$out")"
	fi
	awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out"
}

declare -A KA HS
for s in nginx kubecdn; do KA[$s]=0 HS[$s]=0; done
order=(nginx kubecdn)
for r in $(seq "$ROUNDS"); do
	for s in "${order[@]}"; do
		log "round $r: $s keep-alive"
		v=$(wrk_rps "${PORT[$s]}" 64)
		[ "${v:-0}" -gt "${KA[$s]}" ] && KA[$s]=$v
		log "round $r: $s new handshakes"
		v=$(wrk_rps "${PORT[$s]}" 32 "Connection: close")
		[ "${v:-0}" -gt "${HS[$s]}" ] && HS[$s]=$v
	done
	order=("${order[1]}" "${order[0]}")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
printf '\nTLS benchmark: %s CPUs, %ss x %s rounds (best), wrk -t1, 1 KiB hit, ECDSA P-256, %s, nginx %s\n' \
	"$NCPU" "$DURATION" "$ROUNDS" "$(go version | awk '{print $3}')" "$(nginx -v 2>&1 | sed 's/.*nginx\///')"
printf '%-36s %12s %12s %8s\n' test kubecdn nginx ratio
printf '%-36s %12s %12s %8s\n' "HTTPS keep-alive hits/s (c64)" "${KA[kubecdn]}" "${KA[nginx]}" "$(ratio "${KA[kubecdn]}" "${KA[nginx]}")"
printf '%-36s %12s %12s %8s\n' "new TLS handshakes/s (c32, close)" "${HS[kubecdn]}" "${HS[nginx]}" "$(ratio "${HS[kubecdn]}" "${HS[nginx]}")"
