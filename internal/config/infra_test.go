package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const infraFile = `apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: demo}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {dir: ./public}
  infra: {backend: {type: s3, bucket: my-state, region: us-east-1}}
  regions:
    alwaysOn:
      - name: us-east-1
        provider: aws
        infra:
          kubernetesVersion: "1.33"
          nodePools: [{name: edge, instanceType: m7i.large, min: 1, max: 5, desired: 2, spot: true}]
      - {name: onprem, provider: kops, location: {lat: 48.9, lon: 2.4}, cluster: {context: paris}}
    autoscale:
      - {name: europe-west1, provider: gcp, infra: {project: my-project}}
`

func TestInfraDefaultsAndManaged(t *testing.T) {
	c, err := parse([]byte(infraFile), filepath.FromSlash("/srv/cdn"))
	if err != nil {
		t.Fatal(err)
	}
	regs := c.AllRegions()
	want := Cluster{Kubeconfig: "/srv/cdn/infra/kubeconfig", Context: "kubecdn-us-east-1"}
	if regs[0].Cluster != want || !c.InfraManaged(regs[0].Region) {
		t.Errorf("us-east-1 cluster = %+v managed=%v, want %+v", regs[0].Cluster, c.InfraManaged(regs[0].Region), want)
	}
	if regs[1].Cluster.Context != "paris" || c.InfraManaged(regs[1].Region) {
		t.Errorf("onprem must keep its own cluster and not be managed: %+v", regs[1].Cluster)
	}
	if regs[2].Cluster.Context != "kubecdn-europe-west1" || !c.InfraManaged(regs[2].Region) {
		t.Errorf("europe-west1 = %+v", regs[2].Cluster)
	}
	// without spec.infra an empty cluster keeps meaning the default kubeconfig
	c, err = Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.AllRegions()[0]; r.Cluster != (Cluster{}) || c.InfraManaged(r.Region) || c.InfraDir() != "" {
		t.Errorf("no spec.infra: cluster = %+v, dir %q", r.Cluster, c.InfraDir())
	}
}

func TestInfraValidation(t *testing.T) {
	tests := []struct {
		name string
		old  string
		new  string
		want []string
	}{
		{"backend type", "type: s3, bucket: my-state, region: us-east-1", "type: consul",
			[]string{`spec.infra.backend.type: unknown backend "consul" (want one of local, s3, gcs, azurerm)`}},
		{"s3 needs bucket and region", "type: s3, bucket: my-state, region: us-east-1", "type: s3",
			[]string{"spec.infra.backend.bucket: required for backend type s3", "spec.infra.backend.region: required for backend type s3"}},
		{"azurerm", "type: s3, bucket: my-state, region: us-east-1", "type: azurerm, storageAccount: st",
			[]string{"spec.infra.backend.resourceGroup: required", "spec.infra.backend.container: required"}},
		{"local takes no bucket", "type: s3, bucket: my-state, region: us-east-1", "bucket: x",
			[]string{"spec.infra.backend.bucket: not used by backend type local"}},
		{"pool sizes", "min: 1, max: 5, desired: 2", "min: 4, max: 3, desired: 9",
			[]string{"spec.regions.alwaysOn[0].infra.nodePools[0].min: 4 is above max 3", "nodePools[0].desired: 9 is outside min 4 and max 3"}},
		{"pool names", "{name: edge, instanceType: m7i.large", "{name: Edge, instanceType: m7i.large",
			[]string{`nodePools[0].name: "Edge" must be lowercase`}},
		{"duplicate pools", "spot: true}]", "spot: true}, {name: edge}]",
			[]string{`nodePools[1].name: duplicate node pool "edge" (also nodePools[0])`}},
		{"version", `"1.33"`, "latest", []string{`infra.kubernetesVersion: "latest" is not a Kubernetes version`}},
		{"gcp project", "infra: {project: my-project}", "infra: {}",
			[]string{"spec.regions.autoscale[0].infra.project: required for provider gcp"}},
		{"project on aws", `kubernetesVersion: "1.33"`, `project: my-project`,
			[]string{"spec.regions.alwaysOn[0].infra.project: used only by provider gcp"}},
		{"kops state store", "cluster: {context: paris}", "infra: {}",
			[]string{"spec.regions.alwaysOn[1].infra.stateStore: required for provider kops"}},
		{"infra beside cluster", "cluster: {context: paris}", "cluster: {context: paris}, infra: {stateStore: s3://b}",
			[]string{"spec.regions.alwaysOn[1].infra: the region has its own cluster:"}},
		{"region infra without spec.infra", "  infra: {backend: {type: s3, bucket: my-state, region: us-east-1}}\n", "",
			[]string{"spec.regions.alwaysOn[0].infra: is used only with spec.infra"}},
		{"cidr", `kubernetesVersion: "1.33"`, `networkCIDR: 10.0.0.0/24`,
			[]string{`infra.networkCIDR: "10.0.0.0/24" must be an IPv4 CIDR of /20 or wider`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(infraFile, tt.old) {
				t.Fatalf("test edit %q not in the file", tt.old)
			}
			_, err := Parse([]byte(strings.Replace(infraFile, tt.old, tt.new, 1)))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse error = %v, want Errors", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}
