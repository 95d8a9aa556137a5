// Package infra creates the Kubernetes cluster of every region that the
// file asks kubecdn to create (spec.infra set, the region's cluster:
// empty): one OpenTofu root module per region, generated as JSON
// (DIR/REGION/main.tf.json) on the community modules for EKS, GKE and AKS,
// or on kops' Terraform output, and driven with terraform-exec against a
// tofu (or terraform) binary found on PATH. The modules' outputs (endpoint,
// CA, name) become contexts kubecdn-REGION of the kubeconfig DIR/kubeconfig,
// which config.CDN.InfraCluster points those regions at.
//
// Generating is pure (Generate, golden-tested); running is Run.
package infra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Pin is one community module at one released version.
type Pin struct {
	Source  string
	Version string
	// Inputs is the file under testdata/inputs holding the names of the
	// module's input variables at Version (TestInputsExist).
	Inputs string
}

// Modules are the modules the generated roots use, pinned: the one place a
// version changes. Update Inputs with it (testdata/inputs/extract.py).
var Modules = map[string]Pin{
	"eks": {Source: "terraform-aws-modules/eks/aws", Version: "21.19.0", Inputs: "eks.txt"},
	"vpc": {Source: "terraform-aws-modules/vpc/aws", Version: "6.6.0", Inputs: "vpc.txt"},
	"gke": {Source: "terraform-google-modules/kubernetes-engine/google", Version: "44.2.0", Inputs: "gke.txt"},
	"aks": {Source: "Azure/avm-res-containerservice-managedcluster/azurerm", Version: "0.8.1", Inputs: "aks.txt"},
}

// Providers are the provider plugins the roots configure, with the
// constraint each root requires (what the modules above accept, narrowed to
// one major version); the exact version tofu picks is then recorded in the
// module's .terraform.lock.hcl on the first init.
var Providers = map[string]struct{ Source, Version string }{
	"aws":        {"hashicorp/aws", "~> 6.28"},
	"google":     {"hashicorp/google", "~> 7.17"},
	"kubernetes": {"hashicorp/kubernetes", "~> 2.38"},
	"azapi":      {"Azure/azapi", "~> 2.9"},
}

// RequiredVersion is the tofu/terraform version every root asks for.
const RequiredVersion = ">= 1.6.0"

// Defaults are a provider's choices for what regions[].infra leaves out.
type Defaults struct {
	KubernetesVersion string
	InstanceType      string
}

// ProviderDefaults, by region provider.
var ProviderDefaults = map[string]Defaults{
	"aws":   {KubernetesVersion: "1.33", InstanceType: "m7i.large"},
	"gcp":   {KubernetesVersion: "1.33", InstanceType: "e2-standard-4"},
	"azure": {KubernetesVersion: "1.33", InstanceType: "Standard_D4s_v5"},
	"kops":  {KubernetesVersion: "1.33.4", InstanceType: "m7i.large"},
}

// Root is one region's generated root module and what the driver needs
// besides it.
type Root struct {
	// JSON is the module (main.tf.json), keys sorted when written.
	JSON map[string]any
	// Files are other files the Before commands read, by name, written
	// beside main.tf.json; nil for most providers.
	Files map[string][]byte
	// Before are commands run in the module's directory before init, in
	// order (kops writes its Terraform there); nil for most providers.
	Before [][]string
	// Auth is the exec credential plugin the region's kubeconfig user
	// runs; nil when the module's kubeconfig_path output is used as is.
	Auth *clientcmdapi.ExecConfig
	// Export, when the outputs carry no CA (kops), is a command that
	// writes the cluster's kubeconfig to the file $KUBECONFIG names; its
	// server and CA are used with Auth.
	Export []string
}

// Generator makes a region's root module; dir is where it will be written.
type Generator func(cfg *config.CDN, r config.RegionRef, dir string) (Root, error)

// LocalModule makes the root module of a provider: local region (package
// internal/infra/local); nil when this binary has none.
type LocalModule func(region config.Region, dir string) (map[string]any, error)

// Generate returns the root module for a region kubecdn infra creates.
// local builds provider: local regions (nil: not available).
func Generate(cfg *config.CDN, r config.RegionRef, dir string, local LocalModule) (Root, error) {
	in := regionInfra(r)
	var root Root
	var err error
	switch r.Provider {
	case "aws":
		root = awsRoot(cfg, r, in)
	case "gcp":
		root = gcpRoot(cfg, r, in)
	case "azure":
		root = azureRoot(cfg, r, in)
	case "kops":
		root = kopsRoot(cfg, r, in)
	case "local":
		if local == nil {
			return Root{}, fmt.Errorf("region %s: provider local is not built into this kubecdn", r.Name)
		}
		lr := r.Region // with its infra's defaults: its node pools' sizes
		lr.Infra = &in
		root.JSON, err = local(lr, dir)
		if err != nil {
			return Root{}, fmt.Errorf("region %s: %w", r.Name, err)
		}
	default:
		return Root{}, fmt.Errorf("region %s: kubecdn infra cannot create clusters of provider %q", r.Name, r.Provider)
	}
	setBackend(root.JSON, cfg.Spec.Infra.Backend, r.Name)
	return root, nil
}

// regionInfra is r's infra: with the provider's defaults filled in.
func regionInfra(r config.RegionRef) config.RegionInfra {
	var in config.RegionInfra
	if r.Infra != nil {
		in = *r.Infra
		in.NodePools = append([]config.NodePool(nil), r.Infra.NodePools...)
	}
	d := ProviderDefaults[r.Provider]
	if in.Location == "" {
		in.Location = r.Name
	}
	if in.KubernetesVersion == "" {
		in.KubernetesVersion = d.KubernetesVersion
	}
	if in.NetworkCIDR == "" {
		in.NetworkCIDR = "10.0.0.0/16"
	}
	if len(in.NodePools) == 0 {
		in.NodePools = []config.NodePool{{Name: "edge"}}
	}
	for i := range in.NodePools {
		p := &in.NodePools[i]
		if p.InstanceType == "" {
			p.InstanceType = d.InstanceType
		}
		if p.Min == 0 && p.Max == 0 && p.Desired == 0 {
			p.Min, p.Max, p.Desired = 1, 3, 2
		}
		if p.Desired == 0 {
			p.Desired = p.Min
		}
	}
	return in
}

// clusterName is the cloud's name of a region's cluster: unique per CDN
// and region.
func clusterName(cfg *config.CDN, region string) string {
	return cfg.Metadata.Name + "-" + region
}

// Marshal writes a root module as indented JSON with sorted keys: the same
// input always gives the same bytes.
func Marshal(m map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write puts main.tf.json into dir (created if missing), rewriting it only
// when it changed.
func Write(dir string, m map[string]any) error {
	b, err := Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s/main.tf.json: %w", dir, err)
	}
	return writeFile(dir, "main.tf.json", b)
}

// writeFile puts b into dir/name (dir created if missing), rewriting it
// only when it changed, so tools that look at times see no change.
func writeFile(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, name)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return os.WriteFile(p, b, 0o644)
}

// module is a module block on a pinned module.
func module(key string, inputs map[string]any) map[string]any {
	p := Modules[key]
	out := map[string]any{"source": p.Source, "version": p.Version}
	for k, v := range inputs {
		out[k] = v
	}
	return out
}

// terraformBlock requires the named providers (keys of Providers).
func terraformBlock(providers ...string) map[string]any {
	req := map[string]any{}
	for _, p := range providers {
		req[p] = map[string]any{"source": Providers[p].Source, "version": Providers[p].Version}
	}
	return map[string]any{"required_version": RequiredVersion, "required_providers": req}
}

// outputs are the three outputs every root has; sensitive ones (the CA of
// GKE) are marked so.
func outputs(endpoint, ca, name string, sensitive bool) map[string]any {
	o := func(v string) map[string]any {
		m := map[string]any{"value": v}
		if sensitive {
			m["sensitive"] = true
		}
		return m
	}
	return map[string]any{
		"endpoint":       o(endpoint),
		"ca_certificate": o(ca),
		"cluster_name":   map[string]any{"value": name},
	}
}

func setBackend(root map[string]any, b config.Backend, region string) {
	tf, _ := root["terraform"].(map[string]any)
	if tf == nil {
		tf = map[string]any{}
		root["terraform"] = tf
	}
	prefix := b.Prefix
	if prefix == "" {
		prefix = "kubecdn"
	}
	switch b.Type {
	case config.BackendS3:
		tf["backend"] = map[string]any{"s3": map[string]any{
			"bucket": b.Bucket, "region": b.Region, "key": prefix + "/" + region + "/terraform.tfstate",
			"encrypt": true, "use_lockfile": true,
		}}
	case config.BackendGCS:
		tf["backend"] = map[string]any{"gcs": map[string]any{"bucket": b.Bucket, "prefix": prefix + "/" + region}}
	case config.BackendAzureRM:
		tf["backend"] = map[string]any{"azurerm": map[string]any{
			"resource_group_name": b.ResourceGroup, "storage_account_name": b.StorageAccount,
			"container_name": b.Container, "key": prefix + "/" + region + ".tfstate",
		}}
	default:
		tf["backend"] = map[string]any{"local": map[string]any{"path": "terraform.tfstate"}}
	}
}
