#!/usr/bin/env bash
# bench/dns/run.sh: queries per second of `kubecdn dns` (geo policy on),
# Knot DNS and CoreDNS serving the same zone, measured with dnsperf in one
# run, printed with ratios. The servers take turns for ROUNDS rounds and the
# median of each is reported, so a passing load on the machine skews all
# three alike rather than one.
#
# Needs Debian's dnsperf, knot and python3 (apt-get install dnsperf knot
# python3), and Go. CoreDNS is built once from the Go module proxy into the
# cache directory (never into the checkout).
#
# Each server is pinned to CPU 0 and dnsperf to CPU 1 (taskset), so the
# server under test gets one core and the load generator the other; set
# PIN=0 to run unpinned. Load goes to 127.0.0.1 only, for DURATION seconds
# per server and round.
#
# Environment: DURATION (default 5), ROUNDS (default 3), CLIENTS (dnsperf -c, default 4),
# OUTSTANDING (dnsperf -q, default 200), KUBECDN_BIN (a kubecdn binary;
# default: built from this checkout into the cache), CACHE (default
# $HOME/.cache/kubecdn/bin), COREDNS_VERSION (default v1.15.0), PIN.
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
CACHE=${CACHE:-$HOME/.cache/kubecdn/bin}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
PIN=${PIN:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/kubecdn-bench-dns.XXXXXX)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "bench/dns: $1 not found: apt-get install $2" >&2; exit 1; }; }
need dnsperf dnsperf
need knotd knot
need python3 python3
need taskset util-linux

mkdir -p "$CACHE"
if [[ -z "${KUBECDN_BIN:-}" ]]; then
	KUBECDN_BIN=$CACHE/kubecdn-bench
	(cd "$ROOT" && go build -o "$KUBECDN_BIN" ./cmd/kubecdn)
fi
if [[ ! -x $CACHE/coredns-$COREDNS_VERSION ]]; then
	echo "building CoreDNS $COREDNS_VERSION into $CACHE (once)..." >&2
	tmpbin=$(mktemp -d)
	GOBIN=$tmpbin GOFLAGS=-buildvcs=false go install "github.com/coredns/coredns@$COREDNS_VERSION"
	mv "$tmpbin/coredns" "$CACHE/coredns-$COREDNS_VERSION"
	rm -rf "$tmpbin"
fi
COREDNS_BIN=$CACHE/coredns-$COREDNS_VERSION

server_cpu=()
client_cpu=()
if [[ $PIN == 1 && $(nproc) -ge 2 ]]; then
	server_cpu=(taskset -c 0)
	client_cpu=(taskset -c 1)
fi

# two healthy "edges" that answer the health path (the dns probes them)
mkdir -p "$WORK/edge/.well-known/kubecdn"
echo ok >"$WORK/edge/.well-known/kubecdn/health"
for ip in 127.0.0.2 127.0.0.3; do
	python3 -m http.server 18080 --bind "$ip" --directory "$WORK/edge" >/dev/null 2>&1 &
	PIDS+=($!)
done

# the same zone for all three: what kubecdn answers a client located in
# New York (127.0.0.0/8 is pinned there by the geo table) is us-east-1's edge.
cat >"$WORK/cdn.example.com.zone" <<ZONE
\$ORIGIN cdn.example.com.
\$TTL 3600
@    SOA ns1 hostmaster 1 3600 600 604800 30
@    NS  ns1
ns1  A   192.0.2.53
www  30  A 127.0.0.2
ZONE
cat >"$WORK/kubecdn.yaml" <<YAML
apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: bench}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {dir: ./public}
  routing:
    policy: geo
    geo:
      networks:
        - {cidr: 127.0.0.0/8, location: {lat: 40.7, lon: -74.0}}
  dns:
    nameservers: [{name: ns1.cdn.example.com, addresses: [192.0.2.53]}]
  regions:
    alwaysOn:
      - {name: us-east-1, provider: aws, edges: ["127.0.0.2:18080"]}
      - {name: eu-west-1, provider: aws, edges: ["127.0.0.3:18080"]}
YAML
mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@15302
    rundir: $WORK/knot
log:
  - target: stderr
    any: error
database:
    storage: $WORK/knot
zone:
  - domain: cdn.example.com
    storage: $WORK
    file: cdn.example.com.zone
    journal-content: none
    zonefile-sync: -1
KNOT
cat >"$WORK/Corefile" <<CORE
cdn.example.com:15303 {
    bind 127.0.0.1
    file $WORK/cdn.example.com.zone
}
CORE
echo "www.cdn.example.com A" >"$WORK/queries"

"${server_cpu[@]}" "$KUBECDN_BIN" dns -f "$WORK/kubecdn.yaml" --listen 127.0.0.1:15301 --admin 127.0.0.1:19301 2>"$WORK/kubecdn.log" &
PIDS+=($!)
"${server_cpu[@]}" knotd -c "$WORK/knot.conf" 2>"$WORK/knot.log" &
PIDS+=($!)
(cd "$WORK" && exec "${server_cpu[@]}" "$COREDNS_BIN" -conf "$WORK/Corefile" -quiet >"$WORK/coredns.log" 2>&1) &
PIDS+=($!)

check() { # name port
	local out
	for _ in $(seq 50); do
		out=$(dig +short +tries=1 +time=1 @127.0.0.1 -p "$2" www.cdn.example.com A 2>/dev/null || true)
		[[ $out == 127.0.0.2 ]] && return 0
		sleep 0.2
	done
	echo "bench/dns: $1 does not answer www.cdn.example.com A = 127.0.0.2 (got '$out')" >&2
	cat "$WORK"/*.log >&2
	exit 1
}
check kubecdn 15301
check knot 15302
check coredns 15303

qps() { # port
	"${client_cpu[@]}" dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries" -l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING" 2>&1 |
		awk '/Queries per second:/ {print $4} /Queries lost:/ {lost=$3} END {if (lost+0 > 0) print "lost " lost > "/dev/stderr"}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# one short warm-up each, then ROUNDS rounds of turns
for p in 15301 15302 15303; do DURATION=2 qps "$p" >/dev/null; done
K=() N=() C=()
for r in $(seq "$ROUNDS"); do
	K+=("$(qps 15301)")
	N+=("$(qps 15302)")
	C+=("$(qps 15303)")
	echo "round $r: kubecdn ${K[-1]}  knot ${N[-1]}  coredns ${C[-1]}" >&2
done
k=$(median "${K[@]}")
n=$(median "${N[@]}")
c=$(median "${C[@]}")
echo "dnsperf, median of $ROUNDS rounds of ${DURATION}s each, -c $CLIENTS -q $OUTSTANDING, $( [[ ${#server_cpu[@]} -gt 0 ]] && echo 'server on CPU 0, dnsperf on CPU 1' || echo unpinned ), $(nproc) CPUs"
printf '%-28s %12s\n' "server" "queries/s"
printf '%-28s %12.0f\n' "kubecdn dns (geo policy)" "$k" "Knot DNS $(knotd --version | awk '{print $NF}')" "$n" "CoreDNS $COREDNS_VERSION" "$c"
awk -v k="$k" -v n="$n" -v c="$c" 'BEGIN {
	printf "kubecdn / CoreDNS = %.2fx   Knot / CoreDNS = %.2fx   kubecdn / Knot = %.2fx\n", k/c, n/c, k/n }'
