package render

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The user id of the distroless :nonroot image.
const nonRootUID = 65532

// edgeObjects: the StatefulSet and what serves, protects and scales it.
func (r regionRender) edgeObjects(edgeYAML string) []Object {
	return []Object{
		r.edgeHeadless(),
		r.edgeLoadBalancer(),
		r.edgeStatefulSet(edgeYAML),
		r.pdb(edgeName, "kubecdn-edge", "edge"),
		r.edgeHPA(),
		r.edgeNetworkPolicy(),
	}
}

// peers are the stable DNS names of the StatefulSet's first EdgeReplicas
// pods through the headless Service (short names: the pods' search path
// adds the namespace). Pods the HPA adds beyond them serve and fill from the
// listed owners but own no keys themselves.
func (r regionRender) peers() []string {
	out := make([]string, r.opts.EdgeReplicas)
	for i := range out {
		out[i] = fmt.Sprintf("http://%s-%d.%s:%d", edgeName, i, edgeName, edgePort)
	}
	return out
}

func (r regionRender) edgeHeadless() Object {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(edgeName, "kubecdn-edge", "edge"),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  r.selector("kubecdn-edge"),
			Ports: []corev1.ServicePort{
				tcpPort("http", edgePort, edgePort),
				tcpPort("admin", edgeAdminPort, edgeAdminPort),
			},
		},
	}
}

func (r regionRender) edgeLoadBalancer() Object {
	m := r.meta(edgePublic, "kubecdn-edge", "edge")
	m.Annotations = r.lbAnnotations()
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: m,
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: r.selector("kubecdn-edge"),
			// Local keeps the client's address: the edges measure its
			// round-trip time for the latency policy.
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports:                 r.edgePublicPorts(),
		},
	}
}

func (r regionRender) edgePublicPorts() []corev1.ServicePort {
	ports := []corev1.ServicePort{tcpPort("http", 80, edgePort)}
	if len(r.opts.TLSSecrets) > 0 {
		// HTTP/3 on UDP beside HTTPS on TCP, one port number: browsers
		// learn it from Alt-Svc (mixed-protocol LoadBalancers are GA
		// since Kubernetes 1.26).
		h3 := tcpPort("h3", 443, edgeTLSPort)
		h3.Protocol = corev1.ProtocolUDP
		ports = append(ports, tcpPort("https", 443, edgeTLSPort), h3)
	}
	return ports
}

// lbAnnotations picks a network load balancer where the provider's default
// one cannot carry UDP or the client's address.
func (r regionRender) lbAnnotations() map[string]string {
	switch r.region.Provider {
	case "aws":
		return map[string]string{"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
	}
	return nil
}

func (r regionRender) edgeStatefulSet(edgeYAML string) Object {
	mem := r.memoryTier() + memoryHeadroom
	memQ := *resource.NewQuantity(mem, resource.BinarySI)
	args := []string{
		"edge",
		"--config", configDir + "/edge.yaml",
		"--self", fmt.Sprintf("http://$(POD_NAME).%s:%d", edgeName, edgePort),
		"--peers", strings.Join(r.peers(), ","),
	}
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: configDir, ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
	}
	ports := []corev1.ContainerPort{
		{Name: "http", ContainerPort: edgePort, Protocol: corev1.ProtocolTCP},
		{Name: "admin", ContainerPort: edgeAdminPort, Protocol: corev1.ProtocolTCP},
	}
	var tlsVolumes []corev1.Volume
	if len(r.opts.TLSSecrets) > 0 {
		// Each Secret in a directory of its own: the edge reads tls.crt and
		// tls.key one level down and reloads them when the kubelet updates
		// the mount.
		args = append(args, "--tls-listen", fmt.Sprintf(":%d", edgeTLSPort), "--tls-cert-dir", tlsDir)
		ports = append(ports, corev1.ContainerPort{Name: "https", ContainerPort: edgeTLSPort, Protocol: corev1.ProtocolTCP},
			corev1.ContainerPort{Name: "h3", ContainerPort: edgeTLSPort, Protocol: corev1.ProtocolUDP})
		for i, name := range r.opts.TLSSecrets {
			vol := fmt.Sprintf("tls-%d", i)
			mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: tlsDir + "/" + name, ReadOnly: true})
			tlsVolumes = append(tlsVolumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: name},
			}})
		}
	}
	var claims []corev1.PersistentVolumeClaim
	if path, size, ok := r.diskTier(); ok {
		mounts = append(mounts, corev1.VolumeMount{Name: "cache", MountPath: path})
		// 10% over the tier's budget for the file system and files in flight.
		req := ceilGiB(size + size/10)
		pvc := corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: metav1.ObjectMeta{Name: "cache", Labels: r.labels("kubecdn-edge", "edge")},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(req, resource.BinarySI)},
				},
			},
		}
		if r.opts.StorageClass != "" {
			sc := r.opts.StorageClass
			pvc.Spec.StorageClassName = &sc
		}
		claims = append(claims, pvc)
	}
	container := corev1.Container{
		Name:  "edge",
		Image: r.opts.Image,
		Args:  args,
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			// Without the Secret the edges serve and refuse purges (and the
			// dns refuses their rtt reports).
			adminTokenEnv(r.opts.AdminSecret),
			{Name: "KUBECDN_HOP_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: r.opts.HopSecret},
				Key:                  "key",
				// Without the Secret the edges serve and treat each
				// other as clients.
				Optional: ptr(true),
			}}},
			// The Go runtime collects harder near 90% of the limit
			// instead of being killed at it.
			{Name: "GOMEMLIMIT", Value: strconv.FormatInt(mem*9/10>>20, 10) + "MiB"},
		},
		Ports:          ports,
		ReadinessProbe: httpProbe("/readyz", "admin", 1, 2),
		LivenessProbe:  httpProbe("/healthz", "admin", 10, 3),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: memQ},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: memQ},
		},
		VolumeMounts:    mounts,
		SecurityContext: containerSecurity(),
	}
	tmpl := r.podTemplate("kubecdn-edge", "edge", edgeAdminPort, container, "edge.yaml")
	tmpl.Annotations[AnnotationConfigHash] = hash(edgeYAML)
	tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, tlsVolumes...)
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: r.meta(edgeName, "kubecdn-edge", "edge"),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr(r.opts.EdgeReplicas),
			ServiceName: edgeName,
			Selector:    &metav1.LabelSelector{MatchLabels: r.selector("kubecdn-edge")},
			// Edges do not depend on each other to start.
			PodManagementPolicy:  appsv1.ParallelPodManagement,
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template:             tmpl,
			VolumeClaimTemplates: claims,
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				// Scaling in keeps the claims (the warm cache comes back with
				// the pod); deleting the StatefulSet deletes them.
				WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		},
	}
}

// adminTokenEnv is KUBECDN_ADMIN_TOKEN from key "token" of secret, for
// the edges and the dns: the edges' purge token, which their rtt reports
// carry to the dns. Optional, so the pods start without the Secret.
func adminTokenEnv(secret string) corev1.EnvVar {
	return corev1.EnvVar{Name: "KUBECDN_ADMIN_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret},
		Key:                  "token",
		Optional:             ptr(true),
	}}}
}

// podTemplate is the pod of a component: scrape annotations, the config
// volume with only key mounted, a /tmp, and the pod security context.
func (r regionRender) podTemplate(appName, component string, adminPort int32, c corev1.Container, key string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: r.labels(appName, component),
			Annotations: map[string]string{
				"prometheus.io/scrape": "true",
				"prometheus.io/port":   strconv.Itoa(int(adminPort)),
				"prometheus.io/path":   "/metrics",
			},
		},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr(false),
			EnableServiceLinks:           ptr(false),
			Containers:                   []corev1.Container{c},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:        ptr(true),
				RunAsUser:           ptr(int64(nonRootUID)),
				RunAsGroup:          ptr(int64(nonRootUID)),
				FSGroup:             ptr(int64(nonRootUID)),
				FSGroupChangePolicy: ptr(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			// Replicas on different nodes where the cluster has them.
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew:           1,
				TopologyKey:       "kubernetes.io/hostname",
				WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector:     &metav1.LabelSelector{MatchLabels: r.selector(appName)},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: ConfigName},
					Items:                []corev1.KeyToPath{{Key: key, Path: key}},
				}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
					SizeLimit: ptr(resource.MustParse("64Mi")),
				}}},
			},
		},
	}
}

func containerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr(true),
		ReadOnlyRootFilesystem:   ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func httpProbe(path, port string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(port), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   1,
		FailureThreshold: failures,
	}
}

func tcpPort(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}
}

func (r regionRender) pdb(name, appName, component string) Object {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: r.meta(name, appName, component),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: r.selector(appName)},
		},
	}
}

func (r regionRender) edgeHPA() Object {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: r.meta(edgeName, "kubecdn-edge", "edge"),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: edgeName},
			MinReplicas:    ptr(r.opts.EdgeReplicas),
			MaxReplicas:    r.opts.MaxEdgeReplicas,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(70))},
				},
			}},
		},
	}
}

// adminPeers may reach an admin port: pods of namespaces labelled
// LabelMonitoring=true (Prometheus) and pods of the CDN's namespace
// labelled LabelAdminAccess=true.
func adminPeers() []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelMonitoring: "true"}}},
		{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelAdminAccess: "true"}}},
	}
}

func npPort(proto corev1.Protocol, port int32) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(port)
	return networkingv1.NetworkPolicyPort{Protocol: ptr(proto), Port: &p}
}

// edgeNetworkPolicy: the public port from anywhere (users, the load balancer,
// the dns's health probes, peers), the admin port only from adminPeers.
func (r regionRender) edgeNetworkPolicy() Object {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: r.meta(edgeName, "kubecdn-edge", "edge"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: r.selector("kubecdn-edge")},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: r.edgePublicNPPorts()},
				{
					Ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolTCP, edgeAdminPort)},
					From:  adminPeers(),
				},
			},
		},
	}
}

func (r regionRender) edgePublicNPPorts() []networkingv1.NetworkPolicyPort {
	ports := []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolTCP, edgePort)}
	if len(r.opts.TLSSecrets) > 0 {
		ports = append(ports, npPort(corev1.ProtocolTCP, edgeTLSPort), npPort(corev1.ProtocolUDP, edgeTLSPort))
	}
	return ports
}

func ceilGiB(n int64) int64 {
	const g = 1 << 30
	return (n + g - 1) / g * g
}

func ptr[T any](v T) *T { return &v }
