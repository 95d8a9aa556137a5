package config

import (
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
)

// The state backends of spec.infra.backend.type.
const (
	BackendLocal   = "local"
	BackendS3      = "s3"
	BackendGCS     = "gcs"
	BackendAzureRM = "azurerm"
)

// Backends lists the valid spec.infra.backend.type values.
var Backends = []string{BackendLocal, BackendS3, BackendGCS, BackendAzureRM}

// Infra (spec.infra) is where `kubecdn infra` keeps one OpenTofu root module
// per region (DIR/REGION/main.tf.json), their state, and the kubeconfig it
// writes (DIR/kubeconfig, one context kubecdn-REGION per created cluster).
// Regions with a cluster: of their own are left alone (on-premises or
// created elsewhere).
type Infra struct {
	// Dir, relative to this file; if empty, "infra".
	Dir     string  `json:"dir,omitempty"`
	Backend Backend `json:"backend"`
}

// Backend is where the OpenTofu state lives; one state per region (the
// region's name is the last part of the key or prefix).
type Backend struct {
	// Type: local (the default; DIR/REGION/terraform.tfstate), s3, gcs or
	// azurerm.
	Type string `json:"type,omitempty"`
	// Bucket holds the state (s3, gcs).
	Bucket string `json:"bucket,omitempty"`
	// Region of the S3 bucket (s3).
	Region string `json:"region,omitempty"`
	// Prefix of the state keys (s3, gcs, azurerm); if empty, "kubecdn".
	Prefix string `json:"prefix,omitempty"`
	// ResourceGroup, StorageAccount and Container of the blob (azurerm).
	ResourceGroup  string `json:"resourceGroup,omitempty"`
	StorageAccount string `json:"storageAccount,omitempty"`
	Container      string `json:"container,omitempty"`
}

// RegionInfra (regions[].infra) is what a region's cluster is made of when
// kubecdn creates it. Zero fields take the provider's defaults (the table
// in internal/infra).
type RegionInfra struct {
	// Location is the cloud's own region (eu-west-1, europe-west1,
	// westeurope); if empty, the region's name.
	Location string `json:"location,omitempty"`
	// KubernetesVersion as the cloud spells it ("1.33"); if empty, the
	// provider's default.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// NodePools; if empty, one pool "edge" of the provider's default size.
	NodePools []NodePool `json:"nodePools,omitempty"`
	// Project is the GCP project ID (gcp, required).
	Project string `json:"project,omitempty"`
	// ResourceGroup the AKS cluster goes in, created by the module (azure);
	// if empty, kubecdn-REGION.
	ResourceGroup string `json:"resourceGroup,omitempty"`
	// StateStore is kops' state store, s3://bucket/path (kops, required).
	StateStore string `json:"stateStore,omitempty"`
	// NetworkCIDR of the VPC the cluster gets (aws, gcp, kops); if empty,
	// 10.0.0.0/16.
	NetworkCIDR string `json:"networkCIDR,omitempty"`
}

// NodePool is one group of worker nodes.
type NodePool struct {
	// Name: lowercase letters, digits and '-'.
	Name string `json:"name"`
	// InstanceType (m7i.large, e2-standard-4, Standard_D4s_v5); if empty,
	// the provider's default.
	InstanceType string `json:"instanceType,omitempty"`
	// Min, Max and Desired node counts; if all zero, 1, 3 and 2. Desired
	// zero means Min.
	Min     int `json:"min,omitempty"`
	Max     int `json:"max,omitempty"`
	Desired int `json:"desired,omitempty"`
	// Spot asks for spot (preemptible) capacity.
	Spot bool `json:"spot,omitempty"`
}

// InfraDir is the resolved directory of the generated modules, or "" when
// the file has no spec.infra.
func (c *CDN) InfraDir() string {
	if c.Spec.Infra == nil {
		return ""
	}
	d := c.Spec.Infra.Dir
	if d == "" {
		d = "infra"
	}
	return c.ResolvePath(d)
}

// InfraContext is the kubeconfig context `kubecdn infra` writes for region.
func InfraContext(region string) string { return "kubecdn-" + region }

// InfraCluster is how a region created by `kubecdn infra` is reached: its
// context in the kubeconfig kubecdn infra manages.
func (c *CDN) InfraCluster(region string) Cluster {
	return Cluster{Kubeconfig: filepath.Join(c.InfraDir(), "kubeconfig"), Context: InfraContext(region)}
}

// InfraManaged tells whether `kubecdn infra` creates r's cluster: the file
// has spec.infra and r's cluster: was left empty (SetDefaults then points
// it at InfraCluster).
func (c *CDN) InfraManaged(r Region) bool {
	return c.Spec.Infra != nil && r.Cluster == c.InfraCluster(r.Name)
}

// setInfraDefaults points every region without a cluster at the context
// `kubecdn infra` writes for it, so `kubecdn deploy` right after an
// `infra apply` needs no edit.
func (c *CDN) setInfraDefaults() {
	if c.Spec.Infra == nil {
		return
	}
	if c.Spec.Infra.Backend.Type == "" {
		c.Spec.Infra.Backend.Type = BackendLocal
	}
	for _, list := range [][]Region{c.Spec.Regions.AlwaysOn, c.Spec.Regions.Autoscale} {
		for i := range list {
			if list[i].Cluster == (Cluster{}) {
				list[i].Cluster = c.InfraCluster(list[i].Name)
			}
		}
	}
}

var (
	// s3 and gcs bucket names, loosely (the clouds check the rest).
	bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$`)
	// an AKS resource group, a GCP project, a kops state store.
	resourceGroupRe = regexp.MustCompile(`^[-\w._()]{1,90}$`)
	gcpProjectRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	k8sVersionRe    = regexp.MustCompile(`^1\.[0-9]{1,2}(\.[0-9]{1,2})?$`)
	stateStoreRe    = regexp.MustCompile(`^(s3|gs)://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/[A-Za-z0-9._-]+)*/?$`)
	instanceTypeRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

func (c *CDN) validateInfra(v *validator) {
	in := c.Spec.Infra
	if in == nil {
		for _, r := range c.AllRegions() {
			if r.Infra != nil {
				v.add(r.Path+".infra", "is used only with spec.infra (set spec.infra: {} to let kubecdn infra create clusters)")
			}
		}
		return
	}
	if strings.ContainsRune(in.Dir, 0) {
		v.add("spec.infra.dir", "must be a path")
	}
	b := in.Backend
	f := "spec.infra.backend"
	need := func(field, val string) {
		if val == "" {
			v.add(f+"."+field, "required for backend type %s", b.Type)
		}
	}
	switch b.Type {
	case BackendLocal:
		for field, val := range map[string]string{"bucket": b.Bucket, "region": b.Region, "prefix": b.Prefix, "resourceGroup": b.ResourceGroup, "storageAccount": b.StorageAccount, "container": b.Container} {
			if val != "" {
				v.add(f+"."+field, "not used by backend type local (state is kept in spec.infra.dir)")
			}
		}
	case BackendS3, BackendGCS:
		need("bucket", b.Bucket)
		if b.Bucket != "" && !bucketRe.MatchString(b.Bucket) {
			v.add(f+".bucket", "%q is not a bucket name", b.Bucket)
		}
		if b.Type == BackendS3 {
			need("region", b.Region)
		}
	case BackendAzureRM:
		need("resourceGroup", b.ResourceGroup)
		need("storageAccount", b.StorageAccount)
		need("container", b.Container)
	default:
		v.add(f+".type", "unknown backend %q (want one of %s)", b.Type, strings.Join(Backends, ", "))
	}
	if strings.Contains(b.Prefix, "..") || strings.HasPrefix(b.Prefix, "/") {
		v.add(f+".prefix", "%q must be a relative key prefix", b.Prefix)
	}
	for _, r := range c.AllRegions() {
		if !c.InfraManaged(r.Region) {
			if r.Infra != nil {
				v.add(r.Path+".infra", "the region has its own cluster:, so kubecdn infra does not create it; drop one of the two")
			}
			continue
		}
		validateRegionInfra(v, r)
	}
}

func validateRegionInfra(v *validator, r RegionRef) {
	ri := RegionInfra{}
	if r.Infra != nil {
		ri = *r.Infra
	}
	f := r.Path + ".infra"
	if ri.Location != "" && !regionNameRe.MatchString(ri.Location) {
		v.add(f+".location", "%q is not a cloud region name", ri.Location)
	}
	if ri.KubernetesVersion != "" && !k8sVersionRe.MatchString(ri.KubernetesVersion) {
		v.add(f+".kubernetesVersion", "%q is not a Kubernetes version such as 1.33", ri.KubernetesVersion)
	}
	if ri.NetworkCIDR != "" {
		if p, err := netip.ParsePrefix(ri.NetworkCIDR); err != nil || p.Bits() > 20 || !p.Addr().Is4() {
			v.add(f+".networkCIDR", "%q must be an IPv4 CIDR of /20 or wider", ri.NetworkCIDR)
		}
	}
	switch r.Provider {
	case "gcp":
		if ri.Project == "" {
			v.add(f+".project", "required for provider gcp (the GCP project ID)")
		} else if !gcpProjectRe.MatchString(ri.Project) {
			v.add(f+".project", "%q is not a GCP project ID", ri.Project)
		}
	case "kops":
		if ri.StateStore == "" {
			v.add(f+".stateStore", "required for provider kops: the kops state store, s3://BUCKET or gs://BUCKET")
		} else if !stateStoreRe.MatchString(ri.StateStore) {
			v.add(f+".stateStore", "%q is not a kops state store such as s3://my-bucket/kops", ri.StateStore)
		}
	}
	if ri.Project != "" && r.Provider != "gcp" {
		v.add(f+".project", "used only by provider gcp")
	}
	if ri.ResourceGroup != "" && r.Provider != "azure" {
		v.add(f+".resourceGroup", "used only by provider azure")
	} else if ri.ResourceGroup != "" && !resourceGroupRe.MatchString(ri.ResourceGroup) {
		v.add(f+".resourceGroup", "%q is not a resource group name", ri.ResourceGroup)
	}
	if ri.StateStore != "" && r.Provider != "kops" {
		v.add(f+".stateStore", "used only by provider kops")
	}
	seen := map[string]int{}
	for i, p := range ri.NodePools {
		pf := fieldIdx(f+".nodePools", i)
		switch {
		case p.Name == "":
			v.add(pf+".name", "required")
		case !regionNameRe.MatchString(p.Name) || len(p.Name) > 40:
			v.add(pf+".name", "%q must be lowercase letters, digits and '-' (at most 40)", p.Name)
		default:
			if j, dup := seen[p.Name]; dup {
				v.add(pf+".name", "duplicate node pool %q (also nodePools[%d])", p.Name, j)
			}
			seen[p.Name] = i
		}
		if p.InstanceType != "" && !instanceTypeRe.MatchString(p.InstanceType) {
			v.add(pf+".instanceType", "%q is not an instance type", p.InstanceType)
		}
		if p.Min < 0 || p.Max < 0 || p.Desired < 0 {
			v.add(pf, "min, max and desired must not be negative")
			continue
		}
		if p.Min == 0 && p.Max == 0 && p.Desired == 0 {
			continue // defaults
		}
		if p.Max < 1 {
			v.add(pf+".max", "must be at least 1")
		}
		if p.Min > p.Max {
			v.add(pf+".min", "%d is above max %d", p.Min, p.Max)
		}
		if p.Desired != 0 && (p.Desired < p.Min || p.Desired > p.Max) {
			v.add(pf+".desired", "%d is outside min %d and max %d", p.Desired, p.Min, p.Max)
		}
		if p.Max > 1000 {
			v.add(pf+".max", "%d is above 1000 nodes", p.Max)
		}
	}
}
