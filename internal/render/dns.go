package render

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// dnsObjects: the dns Deployment, its public and admin Services, PDB and
// NetworkPolicy.
func (r regionRender) dnsObjects() []Object {
	return []Object{
		r.dnsLoadBalancer(),
		r.dnsAdminService(),
		r.dnsDeployment(),
		r.pdb(dnsName, "kubecdn-dns", "dns"),
		r.dnsNetworkPolicy(),
	}
}

func (r regionRender) dnsLoadBalancer() Object {
	m := r.meta(dnsName, "kubecdn-dns", "dns")
	m.Annotations = r.lbAnnotations()
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: m,
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: r.selector("kubecdn-dns"),
			// Local keeps the resolver's address, which the geo and
			// latency policies route on (when there is no client subnet).
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{
				{Name: "dns-udp", Port: 53, TargetPort: intstr.FromString("dns-udp"), Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromString("dns-tcp"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// dnsAdminService gives the edges (round-trip time reports) and Prometheus
// a stable name for the dns admin port.
func (r regionRender) dnsAdminService() Object {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(dnsAdminName, "kubecdn-dns", "dns"),
		Spec: corev1.ServiceSpec{
			Selector: r.selector("kubecdn-dns"),
			Ports:    []corev1.ServicePort{tcpPort("admin", dnsAdminPort, dnsAdminPort)},
		},
	}
}

func (r regionRender) dnsDeployment() Object {
	container := corev1.Container{
		Name:  "dns",
		Image: r.opts.Image,
		Args: []string{
			"dns",
			"-f", configDir + "/kubecdn.yaml",
			"--listen", fmt.Sprintf(":%d", dnsPort),
			"--admin", fmt.Sprintf(":%d", dnsAdminPort),
			"--region", r.region.Name,
		},
		// The edges' rtt reports carry the edges' admin token: the same
		// Secret gives it to both (without it the dns serves and refuses
		// the reports).
		Env: []corev1.EnvVar{adminTokenEnv(r.opts.AdminSecret)},
		Ports: []corev1.ContainerPort{
			{Name: "dns-udp", ContainerPort: dnsPort, Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", ContainerPort: dnsPort, Protocol: corev1.ProtocolTCP},
			{Name: "admin", ContainerPort: dnsAdminPort, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: httpProbe("/readyz", "admin", 2, 2),
		LivenessProbe:  httpProbe("/healthz", "admin", 10, 3),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: configDir, ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"},
		},
		SecurityContext: containerSecurity(),
	}
	// No config hash on this template: the dns reloads its file when the
	// mounted ConfigMap changes, without a restart.
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: r.meta(dnsName, "kubecdn-dns", "dns"),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(r.opts.DNSReplicas),
			Selector: &metav1.LabelSelector{MatchLabels: r.selector("kubecdn-dns")},
			Template: r.podTemplate("kubecdn-dns", "dns", dnsAdminPort, container, "kubecdn.yaml"),
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr(intstr.FromInt32(0)),
					MaxSurge:       ptr(intstr.FromInt32(1)),
				},
			},
		},
	}
}

// dnsNetworkPolicy: DNS from anywhere; the admin port from the region's edges
// (round-trip time reports) and adminPeers.
func (r regionRender) dnsNetworkPolicy() Object {
	from := append([]networkingv1.NetworkPolicyPeer{
		{PodSelector: &metav1.LabelSelector{MatchLabels: r.selector("kubecdn-edge")}},
	}, adminPeers()...)
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: r.meta(dnsName, "kubecdn-dns", "dns"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: r.selector("kubecdn-dns")},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolUDP, dnsPort), npPort(corev1.ProtocolTCP, dnsPort)}},
				{Ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolTCP, dnsAdminPort)}, From: from},
			},
		},
	}
}

// serviceMonitor scrapes /metrics on the named port of the component's
// Services (only the admin Services have that port); a Prometheus Operator
// CRD, so unstructured. The pods' region and cdn labels become target labels.
func (r regionRender) serviceMonitor(appName, component, port string) Object {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "ServiceMonitor",
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": toAny(r.selector(appName))},
			"endpoints": []any{map[string]any{
				"port":     port,
				"path":     "/metrics",
				"interval": "15s",
			}},
			"podTargetLabels": []any{labelRegion, labelCDN},
			// job="kubecdn-edge" or "kubecdn-dns", as the rendered
			// Prometheus names its jobs: the alert rules select by it.
			"jobLabel": "app.kubernetes.io/name",
		},
	}}
	u.SetName(appName)
	u.SetNamespace(r.opts.Namespace)
	u.SetLabels(r.labels(appName, component))
	return u
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
