package local_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecdn/kubecdn/internal/infra/local"
)

// TestInfraApplyNewAddress: a local region whose address changes in the
// file (its first edge moves to another loopback address) is replaced by
// `kubecdn infra apply`: the new control plane serves on the new address
// with a certificate that names it, signed by the CA the module's
// ca_certificate output and the managed kubeconfig both carry; kubectl
// reaches it through the managed context; the old processes are gone and
// the old address's port is free; a further apply changes nothing and the
// outputs still name the CA that signs the serving certificate. A bigger
// node pool in the file replaces the region with that many nodes; a
// Kubernetes version a local region does not run is refused.
func TestInfraApplyNewAddress(t *testing.T) {
	tofu, bin, kubectl := tools(t)
	const region = "lkaddr"
	oldIP, newIP := "127.0.0.81", "127.0.0.82"

	dir := t.TempDir()
	file := filepath.Join(dir, "kubecdn.yaml")
	writeFile := func(ip, infra string) {
		t.Helper()
		writeCDN(t, file, fmt.Sprintf(`{name: %s, provider: local, edges: ["%s:8080"]%s}`, region, ip, infra))
	}
	modDir := filepath.Join(dir, "infra", region)
	t.Cleanup(func() {
		if out, err := run(t, time.Minute, "", nil, kubecdn, "infra", "local", "stop", "--dir", modDir, "--name", region, "--delete"); err != nil {
			t.Logf("cleanup: %v %s", err, out)
		}
	})
	env := []string{"KUBECDN_LOCAL_BIN=" + bin, "KUBECDN_TOFU=" + tofu, "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=/dev/null"}
	apply := func(want string) {
		t.Helper()
		start := time.Now()
		out, err := run(t, 5*time.Minute, dir, env, kubecdn, "infra", "apply", "-f", file)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kubecdn infra apply took %v:\n%s", time.Since(start).Round(time.Millisecond), out)
		if !strings.Contains(out, want) {
			t.Fatalf("apply did not say %q:\n%s", want, out)
		}
	}

	writeFile(oldIP, "")
	apply("infra apply: 1 regions ready, 1 to add, 0 to change, 0 to destroy")
	before, err := local.Load(modDir, region)
	if err != nil || before == nil || !before.Running() || before.LoadBalancerIP != oldIP {
		t.Fatalf("after the first apply: state %+v, %v", before, err)
	}

	writeFile(newIP, "")
	apply("infra apply: 1 regions ready, 1 to add, 0 to change, 1 to destroy")
	after, err := local.Load(modDir, region)
	if err != nil || after == nil || !after.Running() {
		t.Fatalf("after the address changed: no running region: %v", err)
	}
	if want := "https://" + net.JoinHostPort(newIP, strconv.Itoa(local.APIPort)); after.Endpoint != want || after.LoadBalancerIP != newIP {
		t.Fatalf("after the address changed: endpoint %s, load balancer %s; want %s, %s", after.Endpoint, after.LoadBalancerIP, want, newIP)
	}
	checkServes(t, tofu, modDir, env, filepath.Join(dir, "infra", "kubeconfig"), region, after.Endpoint)
	out, err := run(t, time.Minute, "", []string{"KUBERC=off"}, kubectl, "--kubeconfig="+filepath.Join(dir, "infra", "kubeconfig"), "--context=kubecdn-"+region,
		"get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		t.Fatalf("kubectl through the managed context: %v", err)
	}
	if want := region + "-0 " + region + "-1"; out != want {
		t.Errorf("nodes %q, want %q", out, want)
	}

	// The old control plane is gone: its processes, the API server's port
	// on the old address, and its etcd ports (unless the new one took
	// them again).
	var newPorts []int
	for _, p := range after.Processes {
		newPorts = append(newPorts, p.Ports...)
	}
	for _, p := range before.Processes {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(p.PID) + "/exe"); exe == p.Exe {
			t.Errorf("old %s (pid %d) still runs", p.Name, p.PID)
		}
		host := "127.0.0.1"
		if p.Name == "kube-apiserver" {
			host = oldIP
		}
		for _, port := range p.Ports {
			if host == "127.0.0.1" && slices.Contains(newPorts, port) {
				continue
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second); err == nil {
				c.Close()
				t.Errorf("old %s's port %s:%d still answers", p.Name, host, port)
			}
		}
	}

	// A further apply changes nothing, and what it leaves in the outputs
	// and the kubeconfig still reaches the region.
	apply("infra apply: 1 regions ready, no changes")
	checkServes(t, tofu, modDir, env, filepath.Join(dir, "infra", "kubeconfig"), region, after.Endpoint)

	// Three nodes in the file's node pool: the region is replaced with
	// three nodes, on the same address and CA.
	writeFile(newIP, `, infra: {nodePools: [{name: edge, min: 1, max: 3, desired: 3}]}`)
	apply("infra apply: 1 regions ready, 1 to add, 0 to change, 1 to destroy")
	checkServes(t, tofu, modDir, env, filepath.Join(dir, "infra", "kubeconfig"), region, after.Endpoint)
	out, err = run(t, time.Minute, "", []string{"KUBERC=off"}, kubectl, "--kubeconfig="+filepath.Join(dir, "infra", "kubeconfig"), "--context=kubecdn-"+region,
		"get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
	if want := region + "-0 " + region + "-1 " + region + "-2"; err != nil || out != want {
		t.Errorf("nodes after the node pool grew: %q (%v), want %q", out, err, want)
	}

	// A Kubernetes version a local region does not run is refused, naming
	// the field, and the region is left as it is.
	writeFile(newIP, `, infra: {kubernetesVersion: "1.33"}`)
	out, err = run(t, time.Minute, dir, env, kubecdn, "infra", "apply", "-f", file)
	if err == nil || !strings.Contains(err.Error(), `infra.kubernetesVersion: "1.33", but a local region runs Kubernetes `+local.KubernetesVersion) {
		t.Errorf("apply with kubernetesVersion 1.33: %v\n%s", err, out)
	}
	if st, _ := local.Load(modDir, region); st == nil || !st.Running() {
		t.Error("the refused apply stopped the region")
	}
}

// checkServes fails t unless the module's outputs name endpoint and a CA
// that verifies the certificate the API server serves there for its IP,
// and the managed kubeconfig's context for region names the same server
// and CA.
func checkServes(t *testing.T, tofu, modDir string, env []string, kubeconfig, region, endpoint string) {
	t.Helper()
	_, str := tofuOutputs(t, tofu, modDir, env)
	if str("endpoint") != endpoint {
		t.Errorf("output endpoint %q, want %q", str("endpoint"), endpoint)
	}
	ca, err := base64.StdEncoding.DecodeString(str("ca_certificate"))
	if err != nil {
		t.Fatalf("output ca_certificate: %v", err)
	}
	host := strings.TrimPrefix(endpoint, "https://")
	if err := verifyServing(host, ca); err != nil {
		t.Errorf("the output ca_certificate does not verify the API server at %s: %v", host, err)
	}
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := kc.Contexts["kubecdn-"+region]
	if ctx == nil || kc.Clusters[ctx.Cluster] == nil {
		t.Fatalf("the managed kubeconfig has no context kubecdn-%s", region)
	}
	c := kc.Clusters[ctx.Cluster]
	if c.Server != endpoint {
		t.Errorf("the managed kubeconfig's server is %s, want %s", c.Server, endpoint)
	}
	if err := verifyServing(host, c.CertificateAuthorityData); err != nil {
		t.Errorf("the managed kubeconfig's CA does not verify the API server at %s: %v", host, err)
	}
}

// verifyServing dials the TLS server at host:port and verifies its
// certificate for its IP against caPEM.
func verifyServing(hostport string, caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %q", caPEM)
	}
	ip, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", hostport, &tls.Config{RootCAs: pool, ServerName: ip})
	if err != nil {
		return err
	}
	return c.Close()
}
