package render

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
)

// The autoscaler's objects (kubecdn autoscale in a pod), in every always-on
// region of a file with autoscale regions.
const (
	// AutoscalerName names its Deployment, ServiceAccount, Role,
	// RoleBinding and the ConfigMap with its CDN file; its Lease and state
	// ConfigMap are autoscale/kube's LeaseName and StateName.
	AutoscalerName = "kubecdn-autoscaler"
	// AutoscalerKubeconfigSecret is the Secret the user creates (key
	// "kubeconfig"): one kubeconfig with a context for every region, named
	// as in the file, whose credentials may deploy there. The autoscaler
	// opens and closes regions in other clusters; no service account of
	// this one reaches them.
	AutoscalerKubeconfigSecret = "kubecdn-autoscaler-kubeconfig"
	// AutoscalerReplicas run; one leads (a Lease), the other takes over
	// within the Lease's duration.
	AutoscalerReplicas  = 2
	autoscalerStateName = "kubecdn-autoscaler" // ConfigMap and Lease (autoscale/kube)
	autoscalerPort      = 9100
	autoscalerDir       = "/etc/kubecdn-autoscaler"
)

// autoscalerObjects: in an always-on region of a file with autoscale
// regions, the autoscaler's ServiceAccount, Role and RoleBinding, its file
// and its Deployment. Not in cold mode: creating and destroying clusters
// needs tofu and the clouds' credentials, which the image and its
// ServiceAccount do not carry; there the user runs `kubecdn autoscale -f`
// where they are.
func (r regionRender) autoscalerObjects() ([]Object, error) {
	if r.region.Autoscale || len(r.cfg.Spec.Regions.Autoscale) == 0 || r.cfg.Spec.Autoscale.Mode == config.ModeCold {
		return nil, nil
	}
	af, err := autoscalerFile(r.cfg)
	if err != nil {
		return nil, err
	}
	m := func() metav1.ObjectMeta { return r.meta(AutoscalerName, AutoscalerName, "autoscaler") }
	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: m()}
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: m(), Data: af.data}
	return []Object{sa, r.autoscalerRole(m()), r.autoscalerRoleBinding(m()), cm, r.autoscalerDeployment(m(), af)}, nil
}

// maxAutoscalerFile bounds the autoscaler's ConfigMap (the API server
// refuses objects over 1 MiB; some room is left for the rest of it).
const maxAutoscalerFile = 900 << 10

// autoscalerFiles is what the autoscaler's pods read: its ConfigMap's data
// and where each key is mounted, below the file's directory.
type autoscalerFiles struct {
	data  map[string]string
	items []corev1.KeyToPath
	hash  string // of every key and value: a change restarts the pods
}

// autoscalerFile is the CDN file as the autoscaler reads it: without the
// addresses deploy fills in (the render deploy applies carries them), which
// deploy reads afresh from its state at every step; a stale copy would
// put back a closed region's edges. Every opening and closing is a deploy,
// which needs the apps of spec.apps (or it would prune them): each app's
// objects, as read (its overrides stay in the file and apply per region),
// travel in the same ConfigMap as apps/NAME/manifests.yaml beside the
// file, where its copy of spec.apps points (if they can be read here).
func autoscalerFile(cfg *config.CDN) (autoscalerFiles, error) {
	c := *cfg
	af := autoscalerFiles{data: map[string]string{}}
	c.Spec.Apps = slices.Clone(cfg.Spec.Apps)
	for i, spec := range cfg.Spec.Apps {
		a, err := apps.Load(cfg, spec)
		if err != nil {
			// Rendering alone needs no manifests (WithApps adds the
			// apps, from its caller's loading): the copy then names
			// the app's directory as the file does, and the autoscaler
			// says at start that it cannot act without it.
			continue
		}
		var b strings.Builder
		for _, u := range a.Objects() {
			y, err := yaml.Marshal(u.Object)
			if err != nil {
				return af, fmt.Errorf("the autoscaler's copy of spec.apps[%d]: %w", i, err)
			}
			b.WriteString("---\n")
			b.Write(y)
		}
		key := "app-" + spec.Name + ".yaml"
		af.data[key] = b.String()
		af.items = append(af.items, corev1.KeyToPath{Key: key, Path: "apps/" + spec.Name + "/manifests.yaml"})
		c.Spec.Apps[i].Manifests = "apps/" + spec.Name
	}
	strip := func(rs []config.Region) []config.Region {
		out := slices.Clone(rs)
		for i := range out {
			out[i].Edges, out[i].DNS, out[i].Endpoints = nil, "", nil
		}
		return out
	}
	c.Spec.Regions.AlwaysOn = strip(cfg.Spec.Regions.AlwaysOn)
	c.Spec.Regions.Autoscale = strip(cfg.Spec.Regions.Autoscale)
	file, err := cdnFile(&c)
	if err != nil {
		return af, err
	}
	af.data["kubecdn.yaml"] = file
	af.items = append([]corev1.KeyToPath{{Key: "kubecdn.yaml", Path: "kubecdn.yaml"}}, af.items...)
	keys := slices.Sorted(maps.Keys(af.data))
	var all strings.Builder
	size := 0
	for _, k := range keys {
		size += len(k) + len(af.data[k])
		all.WriteString(k + "\x00" + af.data[k] + "\x00")
	}
	if size > maxAutoscalerFile {
		return af, fmt.Errorf("spec.apps: the file and the apps' manifests come to %d bytes, more than the autoscaler's ConfigMap %s may hold (%d)",
			size, AutoscalerName, maxAutoscalerFile)
	}
	af.hash = hash(all.String())
	return af, nil
}

// autoscalerRole grants, in this region's namespace only, what the
// autoscaler does here with its service account: elect a leader (Lease),
// keep its state (ConfigMap), find the edge and dns pods and reach their
// admin listeners through the API server (pods, pods/proxy), and read the
// admin token they require (that one Secret). Deploying into every region,
// this one included, goes with the credentials of
// AutoscalerKubeconfigSecret.
func (r regionRender) autoscalerRole(m metav1.ObjectMeta) Object {
	rw := []string{"get", "create", "update"}
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: m,
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: rw},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: rw},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/proxy"}, Verbs: []string{"get", "create"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{r.opts.AdminSecret}},
		},
	}
}

func (r regionRender) autoscalerRoleBinding(m metav1.ObjectMeta) Object {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: m,
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: AutoscalerName},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: AutoscalerName, Namespace: r.opts.Namespace}},
	}
}

// autoscalerArgs are `kubecdn autoscale` with the render options this
// render ran with: every deploy the autoscaler makes renders every region
// again, and must render it as the user's deploy does.
func (r regionRender) autoscalerArgs() []string {
	o := r.opts
	args := []string{
		"autoscale",
		"-f", autoscalerDir + "/file/kubecdn.yaml",
		"--kubeconfig", autoscalerDir + "/kubeconfig/kubeconfig",
		"--in-cluster", r.region.Name,
		"--metrics", fmt.Sprintf(":%d", autoscalerPort),
		"--image", o.Image,
		"--namespace", o.Namespace,
		"--edge-replicas", strconv.Itoa(int(o.EdgeReplicas)),
		"--max-edge-replicas", strconv.Itoa(int(o.MaxEdgeReplicas)),
		"--dns-replicas", strconv.Itoa(int(o.DNSReplicas)),
		"--parent-url", o.ParentURL,
		"--admin-secret", o.AdminSecret,
		"--hop-secret", o.HopSecret,
	}
	for _, s := range o.TLSSecrets {
		args = append(args, "--tls-secret", s)
	}
	if o.StorageClass != "" {
		args = append(args, "--storage-class", o.StorageClass)
	}
	if o.ServiceMonitor {
		args = append(args, "--service-monitor")
	}
	if o.Monitoring != MonitoringNone {
		args = append(args, "--monitoring="+string(o.Monitoring), "--prometheus-image", o.PrometheusImage)
	}
	return args
}

func (r regionRender) autoscalerDeployment(m metav1.ObjectMeta, af autoscalerFiles) Object {
	container := corev1.Container{
		Name:  "autoscaler",
		Image: r.opts.Image,
		Args:  r.autoscalerArgs(),
		// Its admin listener, as the edges' and the dns's: /metrics,
		// /healthz, /readyz.
		Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: autoscalerPort, Protocol: corev1.ProtocolTCP}},
		// Ready as soon as it runs, leader or not: the standby is what
		// makes a dead leader's replacement immediate.
		ReadinessProbe: httpProbe("/readyz", "admin", 5, 3),
		LivenessProbe:  httpProbe("/healthz", "admin", 10, 3),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "file", MountPath: autoscalerDir + "/file", ReadOnly: true},
			{Name: "kubeconfig", MountPath: autoscalerDir + "/kubeconfig", ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"},
		},
		SecurityContext: containerSecurity(),
	}
	tmpl := r.podTemplate(AutoscalerName, "autoscaler", autoscalerPort, container, "kubecdn.yaml")
	// It talks to its API server with the service account (the Role).
	tmpl.Spec.AutomountServiceAccountToken = ptr(true)
	tmpl.Spec.ServiceAccountName = AutoscalerName
	// The file changes only with the file (addresses stripped) and the
	// apps: a new one restarts the autoscaler, which reads it at start.
	tmpl.Annotations[AnnotationConfigHash] = af.hash
	tmpl.Spec.Volumes = []corev1.Volume{
		{Name: "file", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: AutoscalerName}, Items: af.items}}},
		// Optional: without it the pods run, lead, and report every other
		// region unreachable (and decide nothing), rather than holding
		// every `kubecdn deploy` on a rollout that cannot finish.
		{Name: "kubeconfig", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: AutoscalerKubeconfigSecret, Optional: ptr(true)}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: m,
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(AutoscalerReplicas)),
			Selector: &metav1.LabelSelector{MatchLabels: r.selector(AutoscalerName)},
			Template: tmpl,
		},
	}
}
