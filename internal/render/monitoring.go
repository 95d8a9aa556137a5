package render

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Monitoring is what Options.Monitoring adds to each region.
type Monitoring string

const (
	// MonitoringNone adds nothing (ServiceMonitor may still add the
	// ServiceMonitors alone).
	MonitoringNone Monitoring = ""
	// MonitoringPrometheus adds a Prometheus per region (a StatefulSet of
	// the upstream image, its RBAC, configuration and Service) that
	// scrapes the region's edges and dns and evaluates the alert rules.
	MonitoringPrometheus Monitoring = "prometheus"
	// MonitoringOperator adds, for a cluster that runs the Prometheus
	// Operator, ServiceMonitors and a PrometheusRule with the same rules.
	MonitoringOperator Monitoring = "operator"
)

// DefaultPrometheusImage is the Prometheus that MonitoringPrometheus runs:
// the release whose rule parser the tests validate the rules with.
const DefaultPrometheusImage = "prom/prometheus:v3.16.0"

const (
	promName    = "kubecdn-prometheus" // every object of the rendered Prometheus
	promPort    = 9090
	promDataDir = "/prometheus"
	promConfDir = "/etc/prometheus"
	// promStorage is the data volume; retention by size stays under it.
	promStorage   = 10 << 30
	promRetention = "8GB"
	rulesName     = "kubecdn" // the PrometheusRule
)

// monitoringObjects are the objects of opts.Monitoring and
// opts.ServiceMonitor.
func (r regionRender) monitoringObjects() ([]Object, error) {
	var objs []Object
	if r.opts.ServiceMonitor || r.opts.Monitoring == MonitoringOperator {
		objs = append(objs, r.serviceMonitor("kubecdn-edge", "edge", "admin"), r.serviceMonitor("kubecdn-dns", "dns", "admin"))
	}
	switch r.opts.Monitoring {
	case MonitoringOperator:
		groups, err := ruleGroupsAny()
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "monitoring.coreos.com/v1",
			"kind":       "PrometheusRule",
			"spec":       map[string]any{"groups": groups},
		}}
		u.SetName(rulesName)
		u.SetNamespace(r.opts.Namespace)
		u.SetLabels(r.labels("kubecdn", "monitoring"))
		objs = append(objs, u)
	case MonitoringPrometheus:
		promYAML, err := r.prometheusConfig()
		if err != nil {
			return nil, err
		}
		rules, err := rulesFile()
		if err != nil {
			return nil, err
		}
		objs = append(objs, r.prometheusObjects(promYAML, rules)...)
	}
	return objs, nil
}

// prometheusConfig is the rendered Prometheus's prometheus.yml: one job per
// component, pods found through the Kubernetes API in the CDN's namespace
// only (which the Role allows, and no more), each pod scraped once on its
// admin port, with its region, cdn and name as labels.
func (r regionRender) prometheusConfig() (string, error) {
	job := func(appName string) map[string]any {
		return map[string]any{
			"job_name":        appName,
			"scrape_interval": "15s",
			"metrics_path":    "/metrics",
			"kubernetes_sd_configs": []any{map[string]any{
				"role":       "pod",
				"namespaces": map[string]any{"names": []any{r.opts.Namespace}},
				"selectors": []any{map[string]any{
					"role":  "pod",
					"label": fmt.Sprintf("app.kubernetes.io/name=%s,%s=%s", appName, labelCDN, r.cfg.Metadata.Name),
				}},
			}},
			"relabel_configs": []any{
				map[string]any{"action": "keep", "source_labels": []any{"__meta_kubernetes_pod_container_port_name"}, "regex": "admin"},
				map[string]any{"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(kubecdn_io_region|kubecdn_io_cdn)"},
				map[string]any{"action": "replace", "source_labels": []any{"__meta_kubernetes_pod_name"}, "target_label": "pod"},
				map[string]any{"action": "replace", "source_labels": []any{"__meta_kubernetes_namespace"}, "target_label": "namespace"},
			},
		}
	}
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     "15s",
			"evaluation_interval": "15s",
			// On alerts and anything federated or written remotely: which
			// region's Prometheus it came from.
			"external_labels": map[string]any{regionLabel: r.region.Name, "kubecdn_io_cdn": r.cfg.Metadata.Name},
		},
		"rule_files":     []any{promConfDir + "/kubecdn-rules.yml"},
		"scrape_configs": []any{job("kubecdn-edge"), job("kubecdn-dns")},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("prometheus config: %w", err)
	}
	return string(b), nil
}

func (r regionRender) prometheusObjects(promYAML, rules string) []Object {
	meta := func() metav1.ObjectMeta { return r.meta(promName, promName, "monitoring") }
	return []Object{
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: meta(),
		},
		// Pod discovery in the CDN's namespace: read-only, and nothing
		// else (a Role, not a ClusterRole).
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: meta(),
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""},
				Resources: []string{"pods"},
				Verbs:     []string{"get", "list", "watch"},
			}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: meta(),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: promName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: promName, Namespace: r.opts.Namespace}},
		},
		&corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta(),
			Data:       map[string]string{"prometheus.yml": promYAML, "kubecdn-rules.yml": rules},
		},
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(),
			Spec: corev1.ServiceSpec{
				Selector: r.selector(promName),
				Ports:    []corev1.ServicePort{tcpPort("web", promPort, promPort)},
			},
		},
		r.prometheusStatefulSet(promYAML + rules),
		// The web port (queries, no authentication) only from where the
		// admin ports may be reached: Grafana in a monitoring namespace,
		// admin pods of this one.
		&networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: meta(),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: r.selector(promName)},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					Ports: []networkingv1.NetworkPolicyPort{npPort(corev1.ProtocolTCP, promPort)},
					From:  adminPeers(),
				}},
			},
		},
	}
}

func (r regionRender) prometheusStatefulSet(config string) Object {
	probe := func(path string, period, failures int32) *corev1.Probe {
		return httpProbe(path, "web", period, failures)
	}
	container := corev1.Container{
		Name:  "prometheus",
		Image: r.opts.PrometheusImage,
		Args: []string{
			"--config.file=" + promConfDir + "/prometheus.yml",
			"--storage.tsdb.path=" + promDataDir,
			"--storage.tsdb.retention.time=15d",
			"--storage.tsdb.retention.size=" + promRetention,
			fmt.Sprintf("--web.listen-address=:%d", promPort),
		},
		Ports:          []corev1.ContainerPort{{Name: "web", ContainerPort: promPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: probe("/-/ready", 5, 3),
		LivenessProbe:  probe("/-/healthy", 15, 4),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: promConfDir, ReadOnly: true},
			{Name: "data", MountPath: promDataDir},
		},
		SecurityContext: containerSecurity(),
	}
	labels := r.labels(promName, "monitoring")
	// The edges' and the dns's NetworkPolicies let this pod reach their
	// admin ports.
	labels[LabelAdminAccess] = "true"
	claim := corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: r.labels(promName, "monitoring")},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(promStorage, resource.BinarySI)},
			},
		},
	}
	if r.opts.StorageClass != "" {
		claim.Spec.StorageClassName = ptr(r.opts.StorageClass)
	}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: r.meta(promName, promName, "monitoring"),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr(int32(1)),
			ServiceName: promName,
			Selector:    &metav1.LabelSelector{MatchLabels: r.selector(promName)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: labels,
					// Prometheus reads its files only at start (or on a
					// signal no kubelet sends): a new configuration rolls
					// the pod.
					Annotations: map[string]string{AnnotationConfigHash: hash(config)},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: promName,
					// Kubernetes service discovery authenticates with it.
					AutomountServiceAccountToken: ptr(true),
					EnableServiceLinks:           ptr(false),
					Containers:                   []corev1.Container{container},
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:        ptr(true),
						RunAsUser:           ptr(int64(nonRootUID)),
						RunAsGroup:          ptr(int64(nonRootUID)),
						FSGroup:             ptr(int64(nonRootUID)),
						FSGroupChangePolicy: ptr(corev1.FSGroupChangeOnRootMismatch),
						SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: promName},
					}}}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{claim},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		},
	}
}
