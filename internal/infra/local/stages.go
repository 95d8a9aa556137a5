package local

import (
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The address of a local region's load balancers.
//
// A cloud gives each LoadBalancer Service an address that reaches the
// Service's pods. Here the pods are played by kwok and run nothing, so the
// address is one the caller can put a real process behind: a loopback
// address of the region's own (Linux routes all of 127.0.0.0/8 to lo), the
// same for every LoadBalancer Service of the region, told apart by port.
// `kubecdn up` already gives each region such an address for its edges
// (region.edges, e.g. 127.0.0.2:8080), so a region whose first edge is on a
// loopback address gets that one: the edge `kubecdn up` (or a test) runs
// there is what the region's Service reaches. Any other region gets
// 127.77.X.Y from a hash of its name, stable across runs.

// DefaultLoadBalancerIP is the load-balancer address of region name whose
// configured edges (ip:port) are edges: the first edge's IP if it is a
// loopback address, else 127.77.X.Y (X, Y in 1..254) from the FNV-1a hash
// of name.
func DefaultLoadBalancerIP(name string, edges []string) string {
	if len(edges) > 0 {
		host := edges[0]
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.IsLoopback() {
			return ip.String()
		}
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	return fmt.Sprintf("127.77.%d.%d", 1+v%254, 1+(v>>8)%254)
}

// serviceStage gives every Service of type LoadBalancer that has no address
// yet the address ip, as a cloud's service controller would.
const serviceStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: service-load-balancer
spec:
  resourceRef:
    apiGroup: v1
    kind: Service
  selector:
    matchExpressions:
    - key: '.spec.type'
      operator: 'In'
      values:
      - 'LoadBalancer'
    - key: '.status.loadBalancer.ingress'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      loadBalancer:
        ingress:
        - ip: %s
          ipMode: VIP
`

// writeStages writes the kwok configuration of a region into dir: kwok's
// default node and pod stages (bin/kwok-stages/*.yaml, from the kwok module
// the binary was built from) and the Service stage. Passing any stage
// replaces kwok's defaults, hence both.
func writeStages(dir, bin, ip string) (string, error) {
	defaults, err := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
	if err != nil {
		return "", err
	}
	if len(defaults) == 0 {
		return "", fmt.Errorf("no kwok stages in %s (test/infra/build-local.sh puts them there)", filepath.Join(bin, "kwok-stages"))
	}
	sort.Strings(defaults)
	var docs []string
	for _, f := range defaults {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		docs = append(docs, strings.TrimSpace(string(b)))
	}
	docs = append(docs, strings.TrimSpace(fmt.Sprintf(serviceStage, ip)))
	path := filepath.Join(dir, "kwok.yaml")
	return path, os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")+"\n"), 0o644)
}
