package local

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.tf.json from the current output")

// TestModuleGolden: the module of a local region is exactly the golden
// file, and generating it twice gives the same bytes.
func TestModuleGolden(t *testing.T) {
	r := config.Region{Name: "us-east-1", Provider: "local", Edges: []string{"127.0.0.2:8080"}}
	var outs [2][]byte
	for i := range outs {
		m, err := module(r, "/var/lib/kubecdn/local", "/usr/local/bin/kubecdn", []byte("-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n"))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		outs[i] = b.Bytes()
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("two generations differ")
	}
	golden := filepath.Join("testdata", "us-east-1.tf.json")
	if *update {
		if err := os.WriteFile(golden, outs[0], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(outs[0], want) {
		t.Errorf("module differs from %s (go test -update rewrites it):\n%s", golden, outs[0])
	}
}

func TestModuleRefuses(t *testing.T) {
	for _, tc := range []struct {
		r    config.Region
		want string
	}{
		{config.Region{Name: "us-east-1", Provider: "aws"}, `provider is "aws", not local`},
		{config.Region{Name: "Bad_Name", Provider: "local"}, "not a DNS label"},
	} {
		_, err := module(tc.r, "/tmp", "/bin/kubecdn", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error with %q", tc.r, err, tc.want)
		}
	}
}

func TestDefaultLoadBalancerIP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edges []string
		want  string
	}{
		{"us-east-1", []string{"127.0.0.2:8080"}, "127.0.0.2"},
		{"us-east-1", []string{"127.0.0.9"}, "127.0.0.9"},
		// Not loopback: the hash address, which is the same every time.
		{"eu-west-1", []string{"192.0.2.1:80"}, DefaultLoadBalancerIP("eu-west-1", nil)},
	} {
		if got := DefaultLoadBalancerIP(tc.name, tc.edges); got != tc.want {
			t.Errorf("%s %v: got %s, want %s", tc.name, tc.edges, got, tc.want)
		}
	}
	// Hash addresses: loopback, stable, and distinct for a few names.
	seen := map[string]string{}
	for _, n := range []string{"us-east-1", "us-west-2", "eu-west-1", "ap-south-1", "sa-east-1"} {
		ip := DefaultLoadBalancerIP(n, nil)
		if !strings.HasPrefix(ip, "127.77.") || ip != DefaultLoadBalancerIP(n, nil) {
			t.Errorf("%s: %s is not a stable 127.77 address", n, ip)
		}
		if seen[ip] != "" {
			t.Errorf("%s and %s share %s", n, seen[ip], ip)
		}
		seen[ip] = n
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Name: "a"}, "dir: empty"},
		{Options{Dir: "/tmp", Name: "A"}, `name: "A" is not a DNS label`},
		{Options{Dir: "/tmp", Name: "a", Nodes: 101}, "nodes: 101 is out of range"},
		{Options{Dir: "/tmp", Name: "a", LoadBalancerIP: "::1"}, `load balancer ip: "::1" is not an IPv4`},
	} {
		if err := tc.o.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestRegionNodes: a local region plays as many nodes as its node pools
// want, and refuses a Kubernetes version it does not run, naming the field.
func TestRegionNodes(t *testing.T) {
	pools := func(ps ...config.NodePool) *config.RegionInfra { return &config.RegionInfra{NodePools: ps} }
	for _, tc := range []struct {
		infra *config.RegionInfra
		want  int
		err   string
	}{
		{nil, DefaultNodes, ""},
		{pools(), DefaultNodes, ""},
		{pools(config.NodePool{Name: "edge", Min: 1, Max: 3, Desired: 2}), 2, ""},
		{pools(config.NodePool{Name: "edge", Min: 3, Max: 5}), 3, ""}, // desired zero means min
		{pools(config.NodePool{Name: "a", Desired: 2, Max: 2}, config.NodePool{Name: "b", Desired: 3, Max: 3}), 5, ""},
		{pools(config.NodePool{Name: "edge", Desired: 101, Max: 200}), 0, "infra.nodePools: 101 nodes"},
		{&config.RegionInfra{KubernetesVersion: "1.37"}, DefaultNodes, ""},
		{&config.RegionInfra{KubernetesVersion: KubernetesVersion}, DefaultNodes, ""},
		{&config.RegionInfra{KubernetesVersion: "1.33"}, 0, `infra.kubernetesVersion: "1.33", but a local region runs Kubernetes ` + KubernetesVersion},
		{&config.RegionInfra{KubernetesVersion: "1.3"}, 0, "infra.kubernetesVersion"},
	} {
		n, err := regionNodes(config.Region{Name: "r", Provider: "local", Infra: tc.infra})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: got %d, %v; want an error with %q", tc.infra, n, err, tc.err)
			}
			continue
		}
		if err != nil || n != tc.want {
			t.Errorf("%+v: got %d, %v; want %d", tc.infra, n, err, tc.want)
		}
	}
}
