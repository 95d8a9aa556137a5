package infra

import (
	"fmt"
	"strings"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

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
// cluster spec is created in the state store the first time, then updated),
// and the root wraps that directory as module "kops". Only the first pool
// becomes kops' node group (kops' own instance groups take the rest:
// `kops create instancegroup`). kops' Terraform outputs carry no CA, so the
// kubeconfig of a kops region comes from `kops export kubeconfig` (Export).
func kopsRoot(cfg *config.CDN, r config.RegionRef, in config.RegionInfra) Root {
	name := clusterName(cfg, r.Name) + ".k8s.local" // gossip DNS: no hosted zone needed
	p := in.NodePools[0]
	zones := in.Location + "a"
	create := []string{"kops", "create", "cluster", "--name", name, "--state", in.StateStore,
		"--cloud", "aws", "--zones", zones, "--network-cidr", in.NetworkCIDR,
		"--kubernetes-version", in.KubernetesVersion, "--networking", "cilium",
		"--node-size", p.InstanceType, "--node-count", fmt.Sprint(p.Desired),
		"--control-plane-size", ProviderDefaults["kops"].InstanceType, "--control-plane-count", "1",
		"--target", "terraform", "--out", "kops"}
	return Root{
		JSON: map[string]any{
			"terraform": map[string]any{"required_version": RequiredVersion},
			"module":    map[string]any{"kops": map[string]any{"source": "./kops"}},
			"output": map[string]any{
				"cluster_name": map[string]any{"value": "${module.kops.cluster_name}"},
				"endpoint":     map[string]any{"value": "https://api." + name},
			},
		},
		Before: [][]string{
			{"sh", "-c", fmt.Sprintf("kops get cluster --name %s --state %s >/dev/null 2>&1 || %s", name, in.StateStore, strings.Join(create, " "))},
			{"kops", "update", "cluster", "--name", name, "--state", in.StateStore, "--target", "terraform", "--out", "kops", "--yes"},
		},
		Auth: execAuth("install kops: https://kops.sigs.k8s.io/getting_started/install/",
			"kops", "helpers", "kubectl-auth", "--cluster", name, "--state", in.StateStore),
		Export: []string{"kops", "export", "kubeconfig", "--name", name, "--state", in.StateStore},
	}
}
