package infra

import (
	"fmt"
	"slices"
	"strings"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/config"
)

// execAuth is a kubeconfig exec credential plugin (client.authentication.k8s.io/v1beta1).
func execAuth(hint, command string, args ...string) *clientcmdapi.ExecConfig {
	return &clientcmdapi.ExecConfig{
		APIVersion:      "client.authentication.k8s.io/v1beta1",
		Command:         command,
		Args:            args,
		InstallHint:     hint,
		InteractiveMode: clientcmdapi.IfAvailableExecInteractiveMode,
	}
}

// tags are put on every cloud resource that takes them.
func tags(cfg *config.CDN, region string) map[string]any {
	return map[string]any{"kubecdn.io/cdn": cfg.Metadata.Name, "kubecdn.io/region": region}
}

// awsRoot: a VPC (three zones, public subnets for the load balancers,
// private ones with one NAT gateway for the nodes) and an EKS cluster with
// one managed node group per pool.
func awsRoot(cfg *config.CDN, r config.RegionRef, in config.RegionInfra) Root {
	name := clusterName(cfg, r.Name)
	groups := map[string]any{}
	for _, p := range in.NodePools {
		capacity := "ON_DEMAND"
		if p.Spot {
			capacity = "SPOT"
		}
		groups[p.Name] = map[string]any{
			"ami_type":       "AL2023_x86_64_STANDARD",
			"instance_types": []string{p.InstanceType},
			"capacity_type":  capacity,
			"min_size":       p.Min,
			"max_size":       p.Max,
			"desired_size":   p.Desired,
			"labels":         map[string]any{"kubecdn.io/pool": p.Name},
		}
	}
	cidr := in.NetworkCIDR
	return Root{
		JSON: map[string]any{
			"terraform": terraformBlock("aws"),
			"provider":  map[string]any{"aws": map[string]any{"region": in.Location, "default_tags": map[string]any{"tags": tags(cfg, r.Name)}}},
			"data": map[string]any{"aws_availability_zones": map[string]any{"available": map[string]any{
				"state":  "available",
				"filter": map[string]any{"name": "opt-in-status", "values": []string{"opt-in-not-required"}},
			}}},
			"module": map[string]any{
				"vpc": module("vpc", map[string]any{
					"name":                fmt.Sprintf("kubecdn-%s", name),
					"cidr":                cidr,
					"azs":                 "${slice(data.aws_availability_zones.available.names, 0, 3)}",
					"private_subnets":     fmt.Sprintf("${[for i in range(3) : cidrsubnet(%q, 4, i)]}", cidr),
					"public_subnets":      fmt.Sprintf("${[for i in range(3) : cidrsubnet(%q, 8, 48 + i)]}", cidr),
					"enable_nat_gateway":  true,
					"single_nat_gateway":  true,
					"public_subnet_tags":  map[string]any{"kubernetes.io/role/elb": "1"},
					"private_subnet_tags": map[string]any{"kubernetes.io/role/internal-elb": "1"},
				}),
				"eks": module("eks", map[string]any{
					"name":                   name,
					"kubernetes_version":     in.KubernetesVersion,
					"endpoint_public_access": true,
					"enable_cluster_creator_admin_permissions": true,
					"vpc_id":     "${module.vpc.vpc_id}",
					"subnet_ids": "${module.vpc.private_subnets}",
					"addons": map[string]any{
						"vpc-cni":                map[string]any{"before_compute": true},
						"kube-proxy":             map[string]any{},
						"coredns":                map[string]any{},
						"eks-pod-identity-agent": map[string]any{"before_compute": true},
					},
					"eks_managed_node_groups": groups,
				}),
			},
			"output": outputs("${module.eks.cluster_endpoint}", "${module.eks.cluster_certificate_authority_data}", "${module.eks.cluster_name}", false),
		},
		Auth: execAuth("install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
			"aws", "--region", in.Location, "eks", "get-token", "--cluster-name", name, "--output", "json"),
	}
}

// gcpRoot: a VPC network with one subnetwork (nodes, plus secondary ranges
// for pods and services, carved from networkCIDR) and a regional GKE
// cluster whose default pool is replaced by the file's pools. The network
// is two plain resources: the network module would add a module and a
// dozen inputs for what two resources say.
func gcpRoot(cfg *config.CDN, r config.RegionRef, in config.RegionInfra) Root {
	name := clusterName(cfg, r.Name)
	cidr := in.NetworkCIDR
	var pools []any
	for _, p := range in.NodePools {
		pools = append(pools, map[string]any{
			"name":               p.Name,
			"machine_type":       p.InstanceType,
			"min_count":          p.Min,
			"max_count":          p.Max,
			"initial_node_count": p.Desired,
			"autoscaling":        true,
			"spot":               p.Spot,
		})
	}
	return Root{
		JSON: map[string]any{
			"terraform": terraformBlock("google", "kubernetes"),
			"provider":  map[string]any{"google": map[string]any{"project": in.Project, "region": in.Location}},
			"resource": map[string]any{
				"google_compute_network": map[string]any{"this": map[string]any{
					"name": "kubecdn-" + name, "auto_create_subnetworks": false,
				}},
				"google_compute_subnetwork": map[string]any{"this": map[string]any{
					"name":          "kubecdn-" + name,
					"region":        in.Location,
					"network":       "${google_compute_network.this.id}",
					"ip_cidr_range": fmt.Sprintf("${cidrsubnet(%q, 4, 0)}", cidr),
					"secondary_ip_range": []any{
						map[string]any{"range_name": "pods", "ip_cidr_range": fmt.Sprintf("${cidrsubnet(%q, 1, 1)}", cidr)},
						map[string]any{"range_name": "services", "ip_cidr_range": fmt.Sprintf("${cidrsubnet(%q, 4, 1)}", cidr)},
					},
				}},
			},
			"module": map[string]any{
				"gke": module("gke", map[string]any{
					"project_id":               in.Project,
					"name":                     name,
					"region":                   in.Location,
					"regional":                 true,
					"kubernetes_version":       in.KubernetesVersion,
					"network":                  "${google_compute_network.this.name}",
					"subnetwork":               "${google_compute_subnetwork.this.name}",
					"ip_range_pods":            "pods",
					"ip_range_services":        "services",
					"remove_default_node_pool": true,
					"deletion_protection":      false,
					"node_pools":               pools,
					"node_pools_labels":        map[string]any{"all": map[string]any{"kubecdn-io-cdn": cfg.Metadata.Name}},
				}),
			},
			"output": outputs("https://${module.gke.endpoint}", "${module.gke.ca_certificate}", "${module.gke.name}", true),
		},
		Auth: func() *clientcmdapi.ExecConfig {
			e := execAuth("install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin", "gke-gcloud-auth-plugin")
			e.ProvideClusterInfo = true
			return e
		}(),
	}
}

// aksServerID is the application ID of the AKS AAD server every AKS
// cluster with Entra ID integration shares; kubelogin asks a token for it.
const aksServerID = "6dae42f8-4368-4678-94ff-3960e28e3630"

// azureRoot: a resource group and an AKS cluster (Azure's verified module)
// with a small system pool and one user pool per file pool (spot pools are
// user pools with priority Spot; AKS refuses a spot system pool).
func azureRoot(cfg *config.CDN, r config.RegionRef, in config.RegionInfra) Root {
	name := clusterName(cfg, r.Name)
	rg := in.ResourceGroup
	if rg == "" {
		rg = "kubecdn-" + name
	}
	pools := map[string]any{}
	for _, p := range in.NodePools {
		// AKS pool names: lowercase letters and digits, at most 12.
		pn := strings.ReplaceAll(p.Name, "-", "")
		if len(pn) > 12 {
			pn = pn[:12]
		}
		pool := map[string]any{
			"name":                pn,
			"vm_size":             p.InstanceType,
			"mode":                "User",
			"enable_auto_scaling": true,
			"min_count":           p.Min,
			"max_count":           p.Max,
			"count_of":            p.Desired,
			"node_labels":         map[string]any{"kubecdn.io/pool": p.Name},
		}
		if p.Spot {
			pool["scale_set_priority"] = "Spot"
			pool["scale_set_eviction_policy"] = "Delete"
			pool["spot_max_price"] = -1
		}
		pools[p.Name] = pool
	}
	return Root{
		JSON: map[string]any{
			"terraform": terraformBlock("azapi"),
			"provider":  map[string]any{"azapi": map[string]any{}},
			"resource": map[string]any{"azapi_resource": map[string]any{"group": map[string]any{
				"type":     "Microsoft.Resources/resourceGroups@2024-03-01",
				"name":     rg,
				"location": in.Location,
				"tags":     tags(cfg, r.Name),
			}}},
			"module": map[string]any{
				"aks": module("aks", map[string]any{
					"name":               name,
					"location":           in.Location,
					"parent_id":          "${azapi_resource.group.id}",
					"kubernetes_version": in.KubernetesVersion,
					"dns_prefix":         name,
					"managed_identities": map[string]any{"system_assigned": true},
					"default_agent_pool": map[string]any{
						"name": "system", "vm_size": ProviderDefaults["azure"].InstanceType, "mode": "System",
						"enable_auto_scaling": true, "min_count": 1, "max_count": 3, "count_of": 1,
					},
					"agent_pools": pools,
					"tags":        tags(cfg, r.Name),
				}),
			},
			"output": outputs("https://${module.aks.fqdn}:443", "${module.aks.cluster_ca_certificate}", "${module.aks.name}", false),
		},
		Auth: execAuth("install kubelogin: https://azure.github.io/kubelogin/install.html",
			"kubelogin", "get-token", "--login", "azurecli", "--server-id", aksServerID),
	}
}

// kopsRoot: kops writes the Terraform for its cluster itself (`kops update
// cluster --target=terraform --out=kops`, run as Before commands: the
// cluster spec is created in the state store the first time, then its
// instance groups are set from the file's node pools, then it is written
// out), and the root wraps that directory as module "kops". kops'
// Terraform outputs carry no CA, so the kubeconfig of a kops region comes
// from `kops export kubeconfig` (Export).
func kopsRoot(cfg *config.CDN, r config.RegionRef, in config.RegionInfra) Root {
	name := clusterName(cfg, r.Name) + ".k8s.local" // gossip DNS: no hosted zone needed
	p := in.NodePools[0]
	zone := in.Location + "a"
	state := []string{"--name", name, "--state", in.StateStore}
	create := append(append([]string{"kops", "create", "cluster"}, state...),
		"--cloud", "aws", "--zones", zone, "--network-cidr", in.NetworkCIDR,
		"--kubernetes-version", in.KubernetesVersion, "--networking", "cilium",
		"--node-size", p.InstanceType, "--node-count", fmt.Sprint(p.Desired),
		"--control-plane-size", ProviderDefaults["kops"].InstanceType, "--control-plane-count", "1",
		"--target", "terraform", "--out", "kops")
	before := [][]string{
		{"sh", "-c", fmt.Sprintf("kops get cluster %s >/dev/null 2>&1 || %s", strings.Join(state, " "), strings.Join(create, " "))},
		// The node pools as instance groups: created or replaced.
		{"kops", "replace", "-f", kopsGroupsFile, "--force", "--state", in.StateStore},
	}
	// kops create cluster made a node group of its own, nodes-ZONE; the
	// pools replace it unless one has its name.
	def := "nodes-" + zone
	if !slices.ContainsFunc(in.NodePools, func(p config.NodePool) bool { return p.Name == def }) {
		ig := append([]string{"instancegroup", def}, state...)
		before = append(before, []string{"sh", "-c", fmt.Sprintf("if kops get %s >/dev/null 2>&1; then kops delete %s --yes; fi",
			strings.Join(ig, " "), strings.Join(ig, " "))})
	}
	before = append(before, append(append([]string{"kops", "update", "cluster"}, state...), "--target", "terraform", "--out", "kops", "--yes"))
	return Root{
		JSON: map[string]any{
			"terraform": map[string]any{"required_version": RequiredVersion},
			"module":    map[string]any{"kops": map[string]any{"source": "./kops"}},
			"output": map[string]any{
				"cluster_name": map[string]any{"value": "${module.kops.cluster_name}"},
				"endpoint":     map[string]any{"value": "https://api." + name},
			},
		},
		Files:  map[string][]byte{kopsGroupsFile: kopsInstanceGroups(name, zone, in.NodePools)},
		Before: before,
		Auth: execAuth("install kops: https://kops.sigs.k8s.io/getting_started/install/",
			"kops", "helpers", "kubectl-auth", "--cluster", name, "--state", in.StateStore),
		Export: []string{"kops", "export", "kubeconfig", "--name", name, "--state", in.StateStore},
	}
}

// kopsGroupsFile holds a kops region's instance groups, beside its module.
const kopsGroupsFile = "kops-instancegroups.yaml"

// kopsInstanceGroups is one kops InstanceGroup (kops.k8s.io/v1alpha2) per
// node pool, in the cluster's zone: its instance type; minSize the pool's
// desired size (kops has no desired size: an autoscaling group starts at
// its minimum) and maxSize its max; a spot pool is all spot through a mixed
// instances policy. Its nodes carry the label kubecdn.io/pool.
func kopsInstanceGroups(cluster, zone string, pools []config.NodePool) []byte {
	var docs []string
	for _, p := range pools {
		spec := map[string]any{
			"role": "Node", "machineType": p.InstanceType, "subnets": []string{zone},
			"minSize": max(p.Desired, p.Min), "maxSize": max(p.Max, p.Desired, p.Min),
			"nodeLabels": map[string]string{"kubecdn.io/pool": p.Name},
		}
		if p.Spot {
			spec["mixedInstancesPolicy"] = map[string]any{"instances": []string{p.InstanceType},
				"onDemandBase": 0, "onDemandAboveBase": 0, "spotAllocationStrategy": "capacity-optimized"}
		}
		b, err := yaml.Marshal(map[string]any{
			"apiVersion": "kops.k8s.io/v1alpha2", "kind": "InstanceGroup",
			"metadata": map[string]any{"name": p.Name, "labels": map[string]string{"kops.k8s.io/cluster": cluster}},
			"spec":     spec,
		})
		if err != nil {
			panic(err) // maps of strings and numbers always marshal
		}
		docs = append(docs, string(b))
	}
	return []byte(strings.Join(docs, "---\n"))
}
