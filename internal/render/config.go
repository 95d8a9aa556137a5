package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/units"
)

// Where the edge's disk tier is mounted when the file names no path, and
// the container memory beyond the memory tier.
const (
	defaultCacheDir = "/var/cache/kubecdn"
	memoryHeadroom  = 256 << 20
)

// memoryTier is the edge's memory tier size in bytes.
func (r regionRender) memoryTier() int64 {
	if m := int64(r.cfg.Spec.Cache.Memory); m > 0 {
		return m
	}
	return int64(edge.DefaultSettings().Memory)
}

// diskTier returns the disk tier's mount path and size; ok is false when the
// file sets neither (no disk tier, no volume claim).
func (r regionRender) diskTier() (path string, size int64, ok bool) {
	d := r.cfg.Spec.Cache.Disk
	if d.Path == "" && d.Size == 0 {
		return "", 0, false
	}
	path, size = d.Path, int64(d.Size)
	if path == "" {
		path = defaultCacheDir
	}
	if size == 0 {
		size = int64(edge.DefaultSettings().Disk)
	}
	return path, size, true
}

// parentURL is the public URL of the region's parent's edges, or "".
func (r regionRender) parentURL() string {
	if r.region.Parent == "" {
		return ""
	}
	return expand(r.opts.ParentURL, r.region.Parent, r.cfg.Spec.Zone, r.opts.Namespace)
}

// edgeSettings are the settings of this region's edges: the edge's
// defaults with what the file decides. Peers and self are flags of the
// StatefulSet: self differs per pod.
func (r regionRender) edgeSettings() edge.Settings {
	s := edge.DefaultSettings()
	s.Listen = fmt.Sprintf(":%d", edgePort)
	s.Admin = fmt.Sprintf(":%d", edgeAdminPort)
	s.Origin = r.cfg.Spec.Origin.URL
	s.Hostnames = r.cfg.Spec.Hostnames
	s.Parent = r.parentURL()
	s.Memory = units.Size(r.memoryTier())
	s.Region = r.region.Name
	s.Video = r.cfg.Spec.Cache.Video.WithDefaults()
	// The region's own dns replicas; they learn the round-trip times of
	// this region's clients for the latency policy.
	s.RTTReport = []string{fmt.Sprintf("http://%s:%d%s", dnsAdminName, dnsAdminPort, adminapi.RTTPath)}
	if path, size, ok := r.diskTier(); ok {
		s.CacheDir, s.Disk = path, units.Size(size)
	}
	// The file's regions and geo networks, so the edges count demand by
	// the client's nearest region as the dns does.
	s.SetDemandFrom(r.cfg)
	return s
}

// edgeConfig is edge.yaml, the edge's --config file for this region: its
// settings where they differ from the edge's defaults.
func (r regionRender) edgeConfig() (string, error) {
	b, err := r.edgeSettings().YAML()
	if err != nil {
		return "", fmt.Errorf("edge config: %w", err)
	}
	return string(b), nil
}

// cdnFile is the CDN file as the dns reads it: the loaded file written back,
// defaults filled in.
func cdnFile(cfg *config.CDN) (string, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("cdn file: %w", err)
	}
	return string(b), nil
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:16]
}

func (r regionRender) namespace() Object {
	return &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   r.opts.Namespace,
			Labels: r.labels("kubecdn", ""),
		},
	}
}

// configMap holds both configurations; each component mounts only its key.
func (r regionRender) configMap(edgeYAML string) Object {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: r.meta(ConfigName, "kubecdn", "config"),
		Data: map[string]string{
			"edge.yaml":    edgeYAML,
			"kubecdn.yaml": r.cdnYAML,
		},
	}
}
