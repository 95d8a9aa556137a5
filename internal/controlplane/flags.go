package controlplane

import (
	"net"
	"strconv"
)

// ServiceClusterIPRange is the range ClusterIPs are allocated from.
const ServiceClusterIPRange = "10.96.0.0/16"

// EtcdArgs are the flags of a single-member etcd named name, its data in
// dataDir, serving clients on clientURL and its peer on peerURL (either may
// name port 0: etcd then picks one and logs it).
func EtcdArgs(name, dataDir, clientURL, peerURL string) []string {
	return []string{
		"--name=" + name,
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=" + name + "=" + peerURL,
		"--enable-grpc-gateway=false",
		// A single member on one machine: durability across a power cut
		// buys nothing here, and it never waits for a peer.
		"--unsafe-no-fsync",
		"--heartbeat-interval=10",
		"--election-timeout=100",
	}
}

// APIServerArgs are the flags of a kube-apiserver on 127.0.0.1:port backed
// by etcdURL, authenticating p's tokens, authorizing with RBAC. certDir is
// where it may write what it generates itself.
func APIServerArgs(p *PKI, etcdURL string, port int, certDir string) []string {
	return []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + p.CertFile,
		"--tls-private-key-file=" + p.KeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAKeyFile,
		"--service-account-signing-key-file=" + p.SAKeyFile,
		"--token-auth-file=" + p.TokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + ServiceClusterIPRange,
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
}

// FreePort returns a TCP port free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
