#!/usr/bin/env bash
# Edge benchmark (issues 2 and 17): the kubecdn edge against nginx
# proxy_cache, Varnish and Apache Traffic Server, side by side on one origin,
# on loopback, in one run.
#
# usage: bench/edge/run.sh [--quick] [--only nginx,varnish,ats,kubecdn]
#                          [--duration S] [--warmup S] [--pin split|none]
#                          [--storm-n N] [--storm-delay D] [--storm-size SIZE]
#                          [--rounds R] [--nice N] [--port-base P] [--out FILE]
#                          [--keep]
#
# It installs nginx, varnish, trafficserver and wrk with apt-get when they are
# missing, builds the origin, the storm tool, the bare sender and kubecdn,
# starts everything on 127.0.0.1 and
# measures each server in turn under the same load:
#   - hit requests/s for a 1 KiB object      (wrk -t1 -c64)
#   - MB/s (10^6 bytes) for a 1 MiB object    (wrk -t1 -c64)
#   - MB/s for a 64 MiB object               (wrk -t1 -c4)
#   - a cold-miss storm: N concurrent requests of one cold object whose origin
#     answers after a delay: origin fetches, p50/p99 latency
#   - resident memory (VmRSS, VmHWM summed over the server's processes)
# and prints a table with the ratio kubecdn / best of (nginx, varnish, ats),
# and for the wrk tests kubecdn as a fraction of the bare limit: bench/cmd/bare,
# a minimal sender answering from memory with one writev (no cache, no parsing).
# With --rounds R (default 3, 1 with --quick) every test runs R times, the
# servers in a rotating order, and the best figure of each is kept (the storm
# round with the best p99; the worst for origin fetches and errors): other work
# on the machine only slows runs.
# --nice N (e.g. -10) runs the whole benchmark at that priority, to shield it
# from other work on a shared machine.
# KUBECDN_BENCH_ACCESS_LOG=PATH (or -) runs kubecdn with its access log on,
# written there (default off, as nginx's access_log is here).
# See README.md beside this file for the pinning and the figures measured.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/bench/edge"
export PATH="/usr/local/go/bin:$PATH"

QUICK=0
ONLY="nginx,varnish,ats,kubecdn"
DURATION=""
WARMUP=""
PIN="none"
STORM_N=1000
STORM_DELAY=50ms
STORM_SIZE=16KiB
PORT_BASE=28080
OUT=""
KEEP=0
ROUNDS=""
NICE=0
CONNS_SMALL=64
CONNS_LARGE=4

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--only) ONLY="$2"; shift ;;
	--only=*) ONLY="${1#*=}" ;;
	--duration) DURATION="$2"; shift ;;
	--warmup) WARMUP="$2"; shift ;;
	--pin) PIN="$2"; shift ;;
	--pin=*) PIN="${1#*=}" ;;
	--storm-n) STORM_N="$2"; shift ;;
	--storm-delay) STORM_DELAY="$2"; shift ;;
	--storm-size) STORM_SIZE="$2"; shift ;;
	--rounds) ROUNDS="$2"; shift ;;
	--nice) NICE="$2"; shift ;;
	--port-base) PORT_BASE="$2"; shift ;;
	--out) OUT="$2"; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
if [ "$QUICK" = 1 ]; then
	: "${DURATION:=2}" "${WARMUP:=1}" "${ROUNDS:=1}"
	REF=() # no origin yardstick in wrk tests: keeps a smoke run under 60 s
else
	: "${DURATION:=10}" "${WARMUP:=3}" "${ROUNDS:=3}"
	REF=(origin bare)
fi

SERVERS=()
for s in ${ONLY//,/ }; do
	case "$s" in
	nginx | varnish | ats | kubecdn) SERVERS+=("$s") ;;
	*) echo "run.sh: unknown server $s (want nginx, varnish, ats, kubecdn)" >&2; exit 2 ;;
	esac
done
has() { [[ " ${SERVERS[*]} " == *" $1 "* ]]; }

# Pinning. The machine has 2 cores and wrk needs about one of them.
# "none" (default): no pinning; wrk, the origin and the server under test share
# both cores as a plain `wrk` on the same box would (the way the issue's
# reference figures were taken), and the idle servers sleep. "split": the load
# generator (wrk, storm) on CPU 0, the servers and the origin on CPU 1, so the
# server under test gets exactly one core of its own (nginx runs one worker).
NCPU=$(nproc)
case "$PIN" in
split)
	if [ "$NCPU" -lt 2 ]; then echo "run.sh: --pin split needs 2 CPUs" >&2; exit 2; fi
	LOAD_PIN=(taskset -c 0)
	SERVER_PIN=(taskset -c 1)
	SERVER_NCPU=1
	;;
none) LOAD_PIN=() SERVER_PIN=() SERVER_NCPU=$NCPU ;;
*) echo "run.sh: --pin must be split or none" >&2; exit 2 ;;
esac

if [ "$NICE" != 0 ]; then renice -n "$NICE" -p $$ >/dev/null; fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- tools ------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
has nginx && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && need+=(nginx)
has varnish && ! command -v varnishd >/dev/null && [ ! -x /usr/sbin/varnishd ] && need+=(varnish)
has ats && ! command -v traffic_server >/dev/null && need+=(trafficserver)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# --- scratch, processes, cleanup --------------------------------------------
TMP=$(mktemp -d /tmp/kubecdn-bench.XXXXXX)
chmod 0755 "$TMP" # nginx workers and varnish's child run as other users
PIDS=()
declare -A PID
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "$KEEP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

P_ORIGIN=$PORT_BASE
declare -A PORT=([origin]=$P_ORIGIN [nginx]=$((PORT_BASE + 1)) [varnish]=$((PORT_BASE + 2)) [kubecdn]=$((PORT_BASE + 3))
	[ats]=$((PORT_BASE + 5)) [bare]=$((PORT_BASE + 6)))
P_ADMIN=$((PORT_BASE + 4))
for p in $P_ORIGIN "${PORT[@]}" $P_ADMIN; do
	if ss -Htln "sport = :$p" | awk '{print $4}' | grep -Eq '^(127\.0\.0\.1|0\.0\.0\.0|\*|\[::\]):'; then
		echo "run.sh: port $p is in use; pick another --port-base" >&2
		exit 1
	fi
done

wait_port() { # port timeout_s
	local i
	for i in $(seq $(($2 * 10))); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# --- build --------------------------------------------------------------------
log "building origin, storm and bare"
(cd "$ROOT" && go build -o "$TMP/bin/origin" ./bench/cmd/origin && go build -o "$TMP/bin/storm" ./bench/cmd/storm &&
	go build -o "$TMP/bin/bare" ./bench/cmd/bare)
KUBECDN_SKIP=""
if has kubecdn; then
	log "building kubecdn"
	if ! (cd "$ROOT" && go build -o "$TMP/bin/kubecdn" ./cmd/kubecdn) >"$TMP/kubecdn-build.log" 2>&1; then
		KUBECDN_SKIP="go build ./cmd/kubecdn failed: $(head -c 300 "$TMP/kubecdn-build.log" | tr '\n' ' ')"
	elif [[ "$("$TMP/bin/kubecdn" edge -h 2>&1)" != *-origin* ]]; then
		KUBECDN_SKIP="kubecdn has no working edge subcommand yet"
	fi
fi

# --- start --------------------------------------------------------------------
start() { # name logfile cmd...
	local name=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 &
	PID[$name]=$!
	PIDS+=($!)
}

log "starting origin on 127.0.0.1:$P_ORIGIN"
start origin "$TMP/origin.log" "${SERVER_PIN[@]}" "$TMP/bin/origin" -listen "127.0.0.1:$P_ORIGIN"
wait_port "$P_ORIGIN" 10 || { cat "$TMP/origin.log" >&2; exit 1; }
if [ ${#REF[@]} -gt 1 ]; then
	log "starting bare (the bare limit) on 127.0.0.1:${PORT[bare]}"
	start bare "$TMP/bare.log" "${SERVER_PIN[@]}" "$TMP/bin/bare" -listen "127.0.0.1:${PORT[bare]}"
	wait_port "${PORT[bare]}" 10 || { cat "$TMP/bare.log" >&2; exit 1; }
fi

start_nginx() {
	local d="$TMP/nginx"
	mkdir -p "$d/cache" "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
# nginx proxy_cache as a user would tune it for a cache in front of one origin.
# worker_processes is "auto" counted in the CPUs nginx may run on (nginx 1.22's
# auto counts every online CPU, even under taskset).
daemon off;
master_process on;
worker_processes $SERVER_NCPU;
worker_rlimit_nofile 65536;
pid $d/nginx.pid;
error_log $d/error.log warn;
events {
    worker_connections 16384;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 30s;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    proxy_cache_path $d/cache levels=1:2 keys_zone=bench:32m max_size=2g inactive=1h use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$P_ORIGIN;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 30s;
            proxy_cache_lock_age 30s;
            proxy_cache_use_stale updating error timeout;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
EOF
	chown -R nobody "$d/cache" "$d/tmp" 2>/dev/null || true
	start nginx "$d/stdout.log" "${SERVER_PIN[@]}" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf"
}

start_varnish() {
	local d="$TMP/varnish"
	mkdir -p "$d"
	cat >"$d/bench.vcl" <<EOF
vcl 4.1;
# Varnish in front of one origin: the built-in VCL does the caching (it honours
# Cache-Control, coalesces misses on its waiting list and streams); we only add
# a keep-alive backend with roomy timeouts and a cache status header.
backend origin {
    .host = "127.0.0.1";
    .port = "$P_ORIGIN";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}
sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
EOF
	start varnish "$d/stdout.log" "${SERVER_PIN[@]}" varnishd -F -n "$d/work" \
		-a "127.0.0.1:${PORT[varnish]}" -T none -f "$d/bench.vcl" -s malloc,256m \
		-p listen_depth=4096
}

start_ats() {
	# Traffic Server 9.2 (Debian) as a reverse-proxy cache: a runroot of its
	# own (configs, cache, logs under $d), one remap rule to the origin,
	# exec threads = the CPUs it may use, a RAM cache the size of kubecdn's
	# memory tier that keeps objects of any size (ram_cache_cutoff), a 2 GiB
	# cache file, no access log. read-while-writer (on by default) and open
	# read retries let requests for an object being fetched wait for it.
	local d="$TMP/ats"
	mkdir -p "$d/etc" "$d/run" "$d/log" "$d/cache" "$d/state"
	cp -r /etc/trafficserver/body_factory "$d/etc/" 2>/dev/null || true
	for f in cache.config hosting.config parent.config plugin.config socks.config splitdns.config \
		ssl_multicert.config volume.config sni.yaml strategies.yaml; do : >"$d/etc/$f"; done
	cp /etc/trafficserver/logging.yaml "$d/etc/"
	cat >"$d/etc/ip_allow.yaml" <<EOF
ip_allow:
  - apply: in
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
EOF
	echo "$d/cache 2G" >"$d/etc/storage.config"
	echo "map http://127.0.0.1:${PORT[ats]}/ http://127.0.0.1:$P_ORIGIN/" >"$d/etc/remap.config"
	cat >"$d/etc/records.config" <<EOF
CONFIG proxy.config.http.server_ports STRING ${PORT[ats]}:ipv4:ip-in=127.0.0.1
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT $SERVER_NCPU
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.cache.ram_cache.size INT 268435456
CONFIG proxy.config.cache.ram_cache_cutoff INT 268435456
CONFIG proxy.config.cache.enable_read_while_writer INT 1
CONFIG proxy.config.http.cache.max_open_read_retries INT 100
CONFIG proxy.config.http.cache.open_read_retry_time INT 10
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.http.insert_response_via_str INT 0
CONFIG proxy.config.http.keep_alive_no_activity_timeout_in INT 120
CONFIG proxy.config.net.connections_throttle INT 30000
CONFIG proxy.config.admin.user_id STRING trafficserver
EOF
	cat >"$d/runroot.yaml" <<EOF
prefix: $d
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/bin
sysconfdir: $d/etc
datadir: /usr/share/trafficserver
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $d/state
runtimedir: $d/run
logdir: $d/log
cachedir: $d/cache
EOF
	chown -R trafficserver "$d" 2>/dev/null || true
	start ats "$d/stdout.log" "${SERVER_PIN[@]}" traffic_server --run-root="$d/runroot.yaml"
}

start_kubecdn() {
	local d="$TMP/kubecdn"
	mkdir -p "$d/cache"
	start kubecdn "$d/stdout.log" "${SERVER_PIN[@]}" "$TMP/bin/kubecdn" edge \
		--listen "127.0.0.1:${PORT[kubecdn]}" --origin "http://127.0.0.1:$P_ORIGIN" \
		--admin "127.0.0.1:$P_ADMIN" --memory 256MiB --cache-dir "$d/cache" --disk 2GiB \
		--access-log "${KUBECDN_BENCH_ACCESS_LOG:-off}"
}

ACTIVE=()
declare -A SKIP
for s in "${SERVERS[@]}"; do
	if [ "$s" = kubecdn ] && [ -n "$KUBECDN_SKIP" ]; then
		SKIP[$s]=$KUBECDN_SKIP
		log "skipping kubecdn: $KUBECDN_SKIP"
		continue
	fi
	log "starting $s on 127.0.0.1:${PORT[$s]}"
	"start_$s"
	if ! wait_port "${PORT[$s]}" 30; then
		SKIP[$s]="did not listen within 30 s"
		log "$s did not start:"
		tail -n 20 "$TMP/$s"/*.log >&2 || true
		continue
	fi
	ACTIVE+=("$s")
done
[ ${#ACTIVE[@]} -gt 0 ] || { echo "run.sh: no server started" >&2; exit 1; }

RUN=$(date +%s)-$$
declare -A R     # R[metric,server]="value value ..." (one per round)
WARN=()

origin_count() { curl -s "http://127.0.0.1:$P_ORIGIN/__count?path=$1"; }

# prime URL expected_size: one miss then one hit, checking the body size.
prime() {
	local got
	got=$(curl -s -o /dev/null -w '%{size_download}' --max-time 30 "$1")
	got=$(curl -s -o /dev/null -w '%{size_download}' --max-time 30 "$1")
	if [ "$got" != "$2" ]; then
		WARN+=("$1: body of $got bytes, want $2")
		return 1
	fi
}

wrk_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# bench_wrk server label path size conns field
bench_wrk() {
	local s=$1 label=$2 path=$3 size=$4 conns=$5 field=$6 url out errs fetched
	url="http://127.0.0.1:${PORT[$s]}$path"
	prime "$url" "$size" || { R[$label,$s]+=" ERR"; return; }
	"${LOAD_PIN[@]}" wrk -t1 -c"$conns" -d"${WARMUP}s" --timeout 10s "$url" >/dev/null 2>&1 || true
	out=$("${LOAD_PIN[@]}" wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s -s "$HERE/report.lua" "$url" 2>&1 | grep '^WRK' || true)
	if [ -z "$out" ]; then
		R[$label,$s]+=" ERR"
		WARN+=("$s $label: wrk printed no result")
		return
	fi
	local v
	v=$(wrk_field "$field" "$out")
	R[$label,$s]+=" $v"
	errs=$(($(wrk_field err_connect "$out") + $(wrk_field err_read "$out") + $(wrk_field err_write "$out") + $(wrk_field err_status "$out") + $(wrk_field err_timeout "$out")))
	[ "$errs" = 0 ] || WARN+=("$s $label: $errs wrk errors ($out)")
	fetched=$(origin_count "${path%%\?*}")
	if [ "$s" != origin ] && [ "$s" != bare ] && [ "$fetched" != 1 ]; then
		WARN+=("$s $label: origin fetched $path $fetched times (want 1: hits only)")
		if [ "$s" = kubecdn ]; then # what the edge says of its tiers and fetches
			curl -s "http://127.0.0.1:$P_ADMIN/metrics" >"$TMP/kubecdn/metrics-$label.txt" || true
			WARN+=("  kubecdn: $(grep -E '^kubecdn_edge_(upstream_fetches_total|memory_tier_bytes|memory_tier_objects|disk_tier_objects|disk_write_drops)' "$TMP/kubecdn/metrics-$label.txt" | tr '\n' ' ')")
		fi
	fi
	log "$s $label: $v (p99 $(( $(wrk_field p99_us "$out") / 1000 )) ms)"
}

storm_field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# bench_storm name port warm_path round
bench_storm() {
	local s=$1 port=$2 warm=$3 path out f
	path="/obj/$STORM_SIZE/storm-$s-$RUN-$4"
	out=$("${LOAD_PIN[@]}" "$TMP/bin/storm" -url "http://127.0.0.1:$port$path?delay=$STORM_DELAY" \
		-n "$STORM_N" -warm "$warm" -timeout 60s 2>&1) || { WARN+=("$s storm: $out"); R[storm_errors,$s]+=" ERR"; return; }
	f=$(origin_count "$path")
	R[storm_fetches,$s]+=" $f"
	R[storm_errors,$s]+=" $(storm_field errors "$out")"
	R[storm_round,$s]+=" $(storm_field p99_ms "$out"):$(storm_field p50_ms "$out"):$(storm_field spread_ms "$out")"
	log "$s storm: $out fetches=$f"
}

# The origin's own time: one request straight to the origin (median of 3).
own=()
for i in 1 2 3; do
	out=$("${LOAD_PIN[@]}" "$TMP/bin/storm" -url "http://127.0.0.1:$P_ORIGIN/obj/$STORM_SIZE/own-$i-$RUN?delay=$STORM_DELAY" -n 1)
	own+=("$(storm_field p50_ms "$out")")
done
ORIGIN_OWN=$(printf '%s\n' "${own[@]}" | sort -n | sed -n 2p)
log "origin's own time for one $STORM_SIZE request with delay $STORM_DELAY: $ORIGIN_OWN ms"

log "pinning: $PIN; wrk ${WARMUP}s warm-up + ${DURATION}s, 1 thread, $CONNS_SMALL connections ($CONNS_LARGE for 64 MiB)"
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
	# rotate the order each round so no server always runs first
	ORDER=("${ACTIVE[@]:$(((r - 1) % ${#ACTIVE[@]}))}" "${ACTIVE[@]:0:$(((r - 1) % ${#ACTIVE[@]}))}")
	log "round $r of $ROUNDS: ${ORDER[*]}"
	# "origin" is the reference: the bare Go net/http origin serving the same
	# objects from memory, a yardstick for how loaded the machine is.
	for s in "${ORDER[@]}" "${REF[@]}"; do bench_wrk "$s" hit1k "/obj/1KiB/hot-$s-$RUN" 1024 "$CONNS_SMALL" rps; done
	for s in "${ORDER[@]}" "${REF[@]}"; do bench_wrk "$s" mbps1m "/obj/1MiB/big-$s-$RUN" 1048576 "$CONNS_SMALL" mbps; done
	for s in "${ORDER[@]}" "${REF[@]}"; do bench_wrk "$s" mbps64m "/obj/64MiB/huge-$s-$RUN" 67108864 "$CONNS_LARGE" mbps; done
	for s in "${ORDER[@]}"; do bench_storm "$s" "${PORT[$s]}" "/obj/1KiB/hot-$s-$RUN" "$r"; done
	# Reference: the same storm straight at the origin (no cache: N fetches).
	bench_storm origin "$P_ORIGIN" "/obj/1KiB/hot-origin-$RUN" "$r"
done
LOAD1=$(cut -d' ' -f1 /proc/loadavg)

# Resident memory of each server, summed over its process tree.
descendants() {
	local p c
	for p in "$@"; do
		echo "$p"
		for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do descendants "$c"; done
	done
}
for s in "${ACTIVE[@]}"; do
	rss=0 hwm=0
	for p in $(descendants "${PID[$s]}"); do
		[ -r "/proc/$p/status" ] || continue
		rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" || echo 0)))
		hwm=$((hwm + $(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" || echo 0)))
	done
	R[rss,$s]=$((rss / 1024))
	R[hwm,$s]=$((hwm / 1024))
done

# Reduce the rounds: best for performance, worst for fetches and errors.
reduce() { # how values...
	local how=$1
	shift
	printf '%s\n' "$@" | awk -v how="$how" '
		$1 ~ /^[0-9.]+$/ { v = $1 + 0; if (n == 0 || (how == "max" ? v > r : v < r)) r = v; n++; next }
		{ bad = 1 }
		END { if (bad || n == 0) print "ERR"; else print r }'
}
for key in hit1k:max mbps1m:max mbps64m:max storm_fetches:max storm_errors:max; do
	for s in nginx varnish ats kubecdn origin bare; do
		[ -n "${R[${key%%:*},$s]:-}" ] || continue
		# shellcheck disable=SC2086
		R[${key%%:*},$s]=$(reduce "${key##*:}" ${R[${key%%:*},$s]})
	done
done
# The storm round with the best p99 gives p50, p99 and the send spread.
for s in nginx varnish ats kubecdn origin; do
	[ -n "${R[storm_round,$s]:-}" ] || continue
	# shellcheck disable=SC2086
	best=$(printf '%s\n' ${R[storm_round,$s]} | sort -t: -k1,1g | head -n1)
	IFS=: read -r R[storm_p99,$s] R[storm_p50,$s] R[storm_spread,$s] <<<"$best"
done
for s in nginx varnish ats kubecdn origin; do
	[[ "${R[storm_p99,$s]:-}" =~ ^[0-9.]+$ ]] || continue
	R[storm_over,$s]=$(awk -v a="${R[storm_p99,$s]}" -v b="$ORIGIN_OWN" 'BEGIN { printf "%.2f", a - b }')
done

# --- report -------------------------------------------------------------------
# metric label better(hi|lo)
METRICS=(
	"hit1k|1 KiB hits, requests/s|hi"
	"mbps1m|1 MiB hits, MB/s|hi"
	"mbps64m|64 MiB hits, MB/s|hi"
	"storm_fetches|storm: origin fetches|lo"
	"storm_p50|storm: p50 ms|lo"
	"storm_p99|storm: p99 ms|lo"
	"storm_over|storm: p99 - origin's own, ms|none"
	"storm_errors|storm: errors|lo"
	"storm_spread|storm: send spread, ms (client)|none"
	"rss|VmRSS after run, MiB|lo"
	"hwm|VmHWM after run, MiB|lo"
)
{
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' metric nginx varnish ats kubecdn "kubecdn/best" "origin (bare Go)" "bare limit" "kubecdn/bare"
	for m in "${METRICS[@]}"; do
		IFS='|' read -r key label better <<<"$m"
		row=("$label")
		for s in nginx varnish ats kubecdn; do row+=("${R[$key,$s]:--}"); done
		ratio=$(awk -v n="${R[$key,nginx]:-}" -v v="${R[$key,varnish]:-}" -v a="${R[$key,ats]:-}" -v k="${R[$key,kubecdn]:-}" -v b="$better" '
			function num(x) { return x ~ /^[0-9.]+$/ }
			function better(x) { if (num(x) && (best == "" || (b == "hi" ? x+0 > best+0 : x+0 < best+0))) best = x }
			BEGIN {
				if (b == "none") { print "-"; exit }
				best = ""
				better(n); better(v); better(a)
				if (!num(k) || best == "") { print "n/a"; exit }
				if (best+0 == 0) { print (k+0 == 0 ? "1.00" : "inf"); exit }
				printf "%.2f\n", k / best
			}')
		bare=$(awk -v k="${R[$key,kubecdn]:-}" -v l="${R[$key,bare]:-}" 'BEGIN {
			if (k ~ /^[0-9.]+$/ && l ~ /^[0-9.]+$/ && l+0 > 0) printf "%.2f\n", k / l; else print "-" }')
		row+=("$ratio" "${R[$key,origin]:--}" "${R[$key,bare]:--}" "$bare")
		(IFS=$'\t'; echo "${row[*]}")
	done
} >"$TMP/table.tsv"

echo
echo "kubecdn edge benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, pin=$PIN, wrk -t1 ${WARMUP}s+${DURATION}s, best of $ROUNDS round(s), nice $NICE, load average $LOAD0 -> $LOAD1"
echo "storm: $STORM_N concurrent GETs of one cold $STORM_SIZE object; origin's own time $ORIGIN_OWN ms (one request, delay $STORM_DELAY)"
echo "origin (bare Go) column: the same tests straight at the origin, no cache (a yardstick for the machine's load)"
echo "bare limit column: bench/cmd/bare, a minimal sender (one writev from memory, no cache) on the same loopback"
echo
column -t -s $'\t' "$TMP/table.tsv"
echo "(ratios: throughput higher is better; fetches, latency, errors and memory lower is better)"
for s in "${SERVERS[@]}"; do
	[ -n "${SKIP[$s]:-}" ] && echo "skipped $s: ${SKIP[$s]}"
done
if [ ${#WARN[@]} -gt 0 ]; then
	echo
	echo "warnings:"
	printf '  %s\n' "${WARN[@]}"
fi
if [ -n "$OUT" ]; then
	cp "$TMP/table.tsv" "$OUT"
fi
