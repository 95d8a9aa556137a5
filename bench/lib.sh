# Shared by the bench/*/run.sh scripts that serve TLS (source it; bash).

# bench_tmp NAME: makes $TMP (/tmp/kubecdn-bench-NAME.XXXXXX) and arranges
# that on exit every pid in PIDS is stopped (TERM, then KILL) and $TMP is
# removed unless KEEP=1. Calls log, which the script defines.
bench_tmp() {
	TMP=$(mktemp -d "/tmp/kubecdn-bench-$1.XXXXXX")
	chmod 0755 "$TMP"
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	ulimit -n 65536 2>/dev/null || true
}

bench_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
	exit $rc
}

# wait_port PORT TIMEOUT_S: until 127.0.0.1:PORT accepts TCP.
wait_port() {
	local i
	for i in $(seq $(($2 * 10))); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# bench_cert DIR: a test CA (DIR/ca.crt) and an ECDSA P-256 certificate for
# bench.example (DIR/tls.crt, DIR/tls.key), valid two days.
bench_cert() {
	(
		cd "$1"
		openssl ecparam -name prime256v1 -genkey -noout -out ca.key
		openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -out ca.crt
		openssl ecparam -name prime256v1 -genkey -noout -out leaf.ec
		openssl pkcs8 -topk8 -nocrypt -in leaf.ec -out tls.key
		openssl req -new -key tls.key -subj /CN=bench.example -out leaf.csr
		printf 'subjectAltName=DNS:bench.example\nextendedKeyUsage=serverAuth\n' >ext.cnf
		openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out tls.crt
	) 2>"$1/openssl.log"
}
