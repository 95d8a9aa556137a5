#!/usr/bin/env bash
# HTTP caching conformance: runs the public cache-tests suite (npm package
# http-cache-tests) against kubecdn edge and, for comparison, nginx
# proxy_cache, Varnish and Apache Traffic Server. See README.md beside this file.
#
#   test/conformance/run.sh [kubecdn|nginx|varnish|trafficserver|all] [--floor N] [--id TEST-ID]
#
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
# shellcheck disable=SC2317 # start_TARGET and cleanup are called indirectly
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SUITE_VERSION=0.4.5
SUITE_HOME=${CACHE_TESTS_DIR:-${HOME:-/root}/.cache/kubecdn/cache-tests}
SUITE_DIR=$SUITE_HOME/node_modules/http-cache-tests
RESULTS_DIR=${CONFORMANCE_RESULTS_DIR:-/tmp/kubecdn-conformance}
CLI_TIMEOUT=${CONFORMANCE_CLI_TIMEOUT:-180}
ALL_TARGETS=(kubecdn nginx varnish trafficserver)

usage() {
	cat <<EOF
usage: $0 [TARGET] [--floor N] [--id TEST-ID]
  TARGET   kubecdn (default), nginx, varnish, trafficserver, or all (every one, then a table)
  --floor N  exit 1 when a target passes fewer than N required tests
             (default for kubecdn: the number in $HERE/floor, if that file exists)
  --id ID    run only test ID and dump its requests and responses (debugging)
environment: KUBECDN_BIN (use this binary instead of building ./cmd/kubecdn),
  CACHE_TESTS_DIR (where the npm package is installed, default ~/.cache/kubecdn/cache-tests),
  CONFORMANCE_RESULTS_DIR (default /tmp/kubecdn-conformance)
EOF
}

target=kubecdn
floor=
test_id=
while [ $# -gt 0 ]; do
	case $1 in
	kubecdn | nginx | varnish | trafficserver | all) target=$1 ;;
	--floor)
		[ $# -ge 2 ] || { usage >&2; exit 2; }
		floor=$2
		shift
		;;
	--floor=*) floor=${1#--floor=} ;;
	--id)
		[ $# -ge 2 ] || { usage >&2; exit 2; }
		test_id=$2
		shift
		;;
	--id=*) test_id=${1#--id=} ;;
	-h | --help) usage; exit 0 ;;
	*) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
if [ -n "$floor" ] && ! [[ $floor =~ ^[0-9]+$ ]]; then
	echo "--floor wants a number, got '$floor'" >&2
	exit 2
fi

log() { printf '== %s\n' "$*" >&2; }

WORK=$(mktemp -d /tmp/kubecdn-conformance-run.XXXXXX)
chmod 755 "$WORK" # the peers drop root privileges for their workers
PIDS=()

# stop_pid ends one process started here, with its process group: TERM, then KILL after 5 s.
stop_pid() {
	local pid=$1 p kept=()
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
	for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
	PIDS=("${kept[@]}")
}

stop_all() {
	while [ "${#PIDS[@]}" -gt 0 ]; do
		stop_pid "${PIDS[${#PIDS[@]}-1]}"
	done
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_all
	if [ -n "${CONFORMANCE_KEEP:-}" ]; then
		echo "kept $WORK (logs and configurations)" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn LOGFILE CMD...: starts CMD in its own process group (so that it and its
# children can be stopped together) and records its pid in PIDS and SPAWNED.
spawn() {
	local logfile=$1
	shift
	setsid "$@" >"$logfile" 2>&1 </dev/null &
	SPAWNED=$!
	PIDS+=("$SPAWNED")
}

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# wait_port PORT PID LOGFILE: waits until 127.0.0.1:PORT accepts connections.
wait_port() {
	local port=$1 pid=$2 logfile=$3
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "process $pid exited before listening on 127.0.0.1:$port; its log:" >&2
			tail -n 30 "$logfile" >&2 || true
			return 1
		fi
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$port after 20 s; log:" >&2
	tail -n 30 "$logfile" >&2 || true
	return 1
}

# ---- installation ---------------------------------------------------------

APT_UPDATED=
apt_install() {
	local made_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		# Keep Debian's maintainer scripts from starting the services on their
		# default ports (0.0.0.0:80, :6081, :8080); this script starts its own.
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	if [ -z "$APT_UPDATED" ]; then
		log "apt-get update"
		apt-get update -qq >&2
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
	if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}

ensure_node() {
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		apt_install nodejs npm
	fi
}

ensure_suite() {
	ensure_node
	if [ -f "$SUITE_DIR/package.json" ] &&
		[ "$(node -p 'require(process.argv[1]).version' "$SUITE_DIR/package.json")" = "$SUITE_VERSION" ] &&
		[ -d "$SUITE_HOME/node_modules/node-fetch" ]; then
		return 0
	fi
	log "npm install http-cache-tests@$SUITE_VERSION into $SUITE_HOME"
	mkdir -p "$SUITE_HOME"
	npm install --prefix "$SUITE_HOME" --no-audit --no-fund --loglevel=error "http-cache-tests@$SUITE_VERSION" >&2
}

ensure_peer() {
	case $1 in
	nginx) command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx ;;
	varnish) [ -x /usr/sbin/varnishd ] || apt_install varnish ;;
	trafficserver) [ -x /usr/bin/traffic_server ] || apt_install trafficserver ;;
	kubecdn) ;;
	esac
}

# ---- the origin -------------------------------------------------------------

start_origin() {
	ORIGIN_PORT=$(free_port)
	spawn "$WORK/origin.log" env npm_config_protocol=http npm_config_port="$ORIGIN_PORT" \
		npm_config_pidfile="$WORK/origin.pid" \
		node --require "$HERE/lib/loopback.cjs" "$SUITE_DIR/server/server.mjs"
	ORIGIN_PID=$SPAWNED
	wait_port "$ORIGIN_PORT" "$ORIGIN_PID" "$WORK/origin.log"
	log "origin (cache-tests server) on 127.0.0.1:$ORIGIN_PORT"
}

# ---- systems under test -------------------------------------------------------
# Each start_TARGET DIR PORT starts TARGET on 127.0.0.1:PORT in front of the
# origin, with its state under DIR, and sets SUT_PID and SUT_VERSION.

start_kubecdn() {
	local dir=$1 port=$2 bin=${KUBECDN_BIN:-}
	if [ -z "$bin" ]; then
		command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
		log "go build ./cmd/kubecdn"
		(cd "$ROOT" && go build -o "$dir/kubecdn" ./cmd/kubecdn) >&2 || return 1
		bin=$dir/kubecdn
	fi
	local rev
	rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) || rev="no commit"
	if [ -n "$(cd "$ROOT" && git status --porcelain -- cmd internal go.mod go.sum 2>/dev/null)" ]; then
		rev="$rev + local changes"
	fi
	if [ -n "${KUBECDN_BIN:-}" ]; then rev="$KUBECDN_BIN"; fi
	SUT_VERSION="kubecdn ($rev)"
	local admin
	admin=$(free_port)
	spawn "$dir/kubecdn.log" "$bin" edge --listen "127.0.0.1:$port" --origin "http://127.0.0.1:$ORIGIN_PORT" \
		--admin "127.0.0.1:$admin" --memory 64MiB
	SUT_PID=$SPAWNED
}

start_nginx() {
	local dir=$1 port=$2
	mkdir -p "$dir/cache" "$dir/tmp"
	chown www-data "$dir/cache" "$dir/tmp"
	# A shared cache as the nginx documentation recommends: revalidation with
	# conditional requests, one origin fetch per key (cache lock), the
	# client's Host passed on. No proxy_cache_valid: nginx then follows the
	# origin's Cache-Control/Expires. Not set, because each costs required
	# tests (measured): proxy_cache_use_stale updating with
	# proxy_cache_background_update (serves stale while revalidating: -4,
	# the s-maxage-over-max-age tests).
	cat >"$dir/nginx.conf" <<EOF
user www-data;
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    proxy_cache_path $dir/cache levels=1:2 keys_zone=edge:10m max_size=256m inactive=60m use_temp_path=off;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 16; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_cache edge;
            proxy_cache_revalidate on;
            proxy_cache_lock on;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
	SUT_VERSION=$(nginx -v 2>&1 | sed 's/.*: //')
	spawn "$dir/nginx.log" nginx -c "$dir/nginx.conf" -p "$dir"
	SUT_PID=$SPAWNED
}

start_varnish() {
	local dir=$1 port=$2
	mkdir -p "$dir/n"
	chmod 755 "$dir" "$dir/n"
	# Varnish's built-in VCL (it honours Cache-Control, Expires, Age, Vary,
	# Authorization, Set-Cookie and Surrogate-Control), with conditional
	# requests to the backend once an object expires (default_keep), and two
	# parameters changed from their defaults because each costs required tests
	# (measured): default_ttl 0, not 120 s (120 s caches responses that carry
	# no freshness at all, even the suite's own /state answers: 7 passed), and
	# default_grace 0, not 10 s (grace serves stale while revalidating in the
	# background: 89 passed instead of 108).
	cat >"$dir/default.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN_PORT"; }
EOF
	SUT_VERSION=$(varnishd -V 2>&1 | head -n1 | sed 's/^varnishd (\(varnish-[0-9.]*\).*/\1/')
	spawn "$dir/varnish.log" varnishd -F -n "$dir/n" -a "127.0.0.1:$port" -T "127.0.0.1:0" \
		-f "$dir/default.vcl" -s malloc,256m -p default_ttl=0 -p default_grace=0 -p default_keep=3600
	SUT_PID=$SPAWNED
}

start_trafficserver() {
	local dir=$1 port=$2
	mkdir -p "$dir/etc" "$dir/cache" "$dir/log" "$dir/run" "$dir/var" "$dir/data"
	cp -r /etc/trafficserver/. "$dir/etc/"
	rm -f "$dir/etc/records.yaml"
	cat >"$dir/runroot.yaml" <<EOF
prefix: $dir
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $dir/etc
datadir: $dir/data
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $dir/var
runtimedir: $dir/run
logdir: $dir/log
cachedir: $dir/cache
EOF
	# A reverse proxy with caching on: the package's records.config with the
	# listening port on loopback, remapping required (no open proxy), the
	# original Host passed to the origin, and a small file-backed cache.
	# Cache behaviour is ATS's default for a reverse proxy: responses
	# need explicit freshness (required_headers 2) to be cached; Age
	# is inserted; conditional revalidation is used.
	{
		grep -v -E '^CONFIG proxy\.config\.(http\.server_ports|admin\.user_id|url_remap\.|reverse_proxy\.enabled|diags\.|body_factory\.template_sets_dir)' \
			/etc/trafficserver/records.config
		cat <<EOF
CONFIG proxy.config.http.server_ports STRING $port:ipv4:ip-in=127.0.0.1
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.url_remap.pristine_host_hdr INT 1
CONFIG proxy.config.body_factory.template_sets_dir STRING /etc/trafficserver/body_factory
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.cache.ram_cache.size INT 64M
CONFIG proxy.config.diags.debug.enabled INT 0
CONFIG proxy.config.diags.logfile.filename STRING diags.log
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.dns.nameservers STRING 127.0.0.1
CONFIG proxy.config.dns.resolv_conf STRING NULL
EOF
	} >"$dir/etc/records.config"
	cat >"$dir/etc/remap.config" <<EOF
map http://127.0.0.1:$port/ http://127.0.0.1:$ORIGIN_PORT/
map http://localhost:$port/ http://127.0.0.1:$ORIGIN_PORT/
EOF
	echo "$dir/cache 256M" >"$dir/etc/storage.config"
	cat >"$dir/etc/ip_allow.yaml" <<EOF
ip_allow:
  - apply: in
    ip_addrs: 127.0.0.0/8
    action: allow
  - apply: out
    ip_addrs: 127.0.0.0/8
    action: allow
EOF
	SUT_VERSION="trafficserver $(traffic_server --version 2>/dev/null | sed -n 's/.*traffic_server - \([0-9.]*\) .*/\1/p' | head -n1)"
	spawn "$dir/trafficserver.log" traffic_server --run-root="$dir/runroot.yaml"
	SUT_PID=$SPAWNED
}

# ---- one run ------------------------------------------------------------------

# run_cli PORT TEST-ID OUT ERR: runs the suite's cli against 127.0.0.1:PORT
# (every test, or only TEST-ID), in the background so that a signal to this
# script is handled at once.
run_cli() {
	local port=$1 id=$2 out=$3 err=$4 pid rc=0
	(cd "$SUITE_DIR" && exec setsid env npm_config_base="http://127.0.0.1:$port" \
		npm_config_id="$id" npm_package_config_id="$id" \
		timeout "$CLI_TIMEOUT" node --no-warnings cli.mjs) >"$out" 2>"$err" </dev/null &
	pid=$!
	PIDS+=("$pid")
	wait "$pid" || rc=$?
	stop_pid "$pid"
	return "$rc"
}

LAST_PASSED=
# run_target TARGET: starts TARGET, runs the suite through it, prints the
# summary, stops TARGET, writes the results file; sets LAST_PASSED and
# RESULT_FILE (empty when the run failed).
run_target() {
	local t=$1 dir port rc=0
	dir=$WORK/$t
	mkdir -p "$dir"
	port=$(free_port)
	RESULT_FILE=
	LAST_PASSED=
	log "$t: starting on 127.0.0.1:$port"
	if ! "start_$t" "$dir" "$port"; then
		echo "$t: could not be started" >&2
		return 1
	fi
	if ! wait_port "$port" "$SUT_PID" "$dir/$t.log"; then
		[ -f "$dir/error.log" ] && tail -n 20 "$dir/error.log" >&2
		[ -f "$dir/log/diags.log" ] && tail -n 20 "$dir/log/diags.log" >&2
		stop_pid "$SUT_PID"
		return 1
	fi
	log "$t: $SUT_VERSION; running http-cache-tests@$SUITE_VERSION with --base http://127.0.0.1:$port"
	local started=$SECONDS
	if [ -n "$test_id" ]; then
		run_cli "$port" "$test_id" /dev/stdout /dev/stderr || rc=$?
		stop_pid "$SUT_PID"
		return "$rc"
	fi
	run_cli "$port" "" "$dir/results.json" "$dir/cli.err" || rc=$?
	stop_pid "$SUT_PID"
	if [ "$rc" -ne 0 ] || ! node -e 'JSON.parse(require("fs").readFileSync(process.argv[1]))' "$dir/results.json" 2>/dev/null; then
		echo "$t: the suite's cli failed (exit $rc); stderr:" >&2
		tail -n 20 "$dir/cli.err" >&2 || true
		return 1
	fi
	mkdir -p "$RESULTS_DIR"
	RESULT_FILE=$RESULTS_DIR/$t-$(date -u +%Y%m%dT%H%M%SZ).json
	cp "$dir/results.json" "$RESULT_FILE"
	cp "$dir/results.json" "$RESULTS_DIR/$t.json"
	local summary
	local failing=()
	[ "$t" = kubecdn ] && failing=(--failing "$HERE/failing.md")
	summary=$(node "$HERE/lib/summarize.mjs" "$SUITE_DIR" "${failing[@]}" "$t=$RESULT_FILE")
	echo "$summary"
	echo "$t: $SUT_VERSION, suite took $((SECONDS - started)) s; results: $RESULT_FILE"
	LAST_PASSED=$(echo "$summary" | tail -n1 | sed -n 's/.*required \([0-9]*\) passed.*/\1/p')
	echo "$t: $SUT_VERSION" >"$RESULTS_DIR/$t.version"
}

ensure_suite
if [ "$target" = all ]; then
	targets=("${ALL_TARGETS[@]}")
else
	targets=("$target")
fi
for t in "${targets[@]}"; do ensure_peer "$t"; done

start_origin
status=0
declare -A passed files
for t in "${targets[@]}"; do
	if run_target "$t"; then
		passed[$t]=$LAST_PASSED
		[ -n "$RESULT_FILE" ] && files[$t]=$RESULT_FILE
	else
		echo "$t: run failed"
		status=1
	fi
	echo
done
stop_all

if [ -n "$test_id" ]; then exit "$status"; fi

if [ "${#targets[@]}" -gt 1 ] && [ "${#files[@]}" -gt 0 ]; then
	args=()
	for t in "${targets[@]}"; do
		[ -n "${files[$t]:-}" ] && args+=("$t=${files[$t]}")
	done
	echo "== comparison (http-cache-tests@$SUITE_VERSION, $(date -u +%Y-%m-%d))"
	for t in "${targets[@]}"; do
		[ -f "$RESULTS_DIR/$t.version" ] && [ -n "${files[$t]:-}" ] && cat "$RESULTS_DIR/$t.version"
	done
	node "$HERE/lib/summarize.mjs" "$SUITE_DIR" "${args[@]}"
fi

# The floor: --floor N for every target; otherwise the floor file for kubecdn.
for t in "${targets[@]}"; do
	f=$floor
	if [ -z "$f" ] && [ "$t" = kubecdn ] && [ -f "$HERE/floor" ]; then
		f=$(tr -dc '0-9' <"$HERE/floor")
	fi
	[ -n "$f" ] || continue
	p=${passed[$t]:-}
	if [ -z "$p" ]; then
		echo "$t: no result, floor $f not met" >&2
		status=1
	elif [ "$p" -lt "$f" ]; then
		echo "$t: required $p passed, below the floor of $f" >&2
		status=1
	else
		echo "$t: required $p passed, floor $f met"
	fi
done
exit "$status"
