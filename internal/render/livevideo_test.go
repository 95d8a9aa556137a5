package render_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/internal/render"
)

// TestLiveVideoExample renders examples/live-video (a MediaMTX live origin
// per region under spec.apps: RTMP ingest published by the dns, HLS pulled
// by the region's edges) and applies every object of every region to a real
// kube-apiserver by server-side apply in dry run, strict, as
// TestAPIServerAcceptsEveryObject does; and checks what makes it work: the
// RTMP Service is a TCP LoadBalancer on 1935 with a hostname in the dns's
// file, and the edges' origin is the region's own MediaMTX HLS Service,
// with the video rules in edge.yaml.
func TestLiveVideoExample(t *testing.T) {
	cfg, err := config.Load("../../examples/live-video/kubecdn.yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	out, err := render.Render(cfg, render.Options{})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if err := render.WithApps(cfg, loadApps(t, cfg), out); err != nil {
		t.Fatalf("apps: %v", err)
	}
	for _, region := range render.Regions(out) {
		var rtmp, hls *corev1.Service
		var edgeYAML string
		for _, o := range out[region] {
			u, err := render.Unstructured(o)
			if err != nil {
				t.Fatal(err)
			}
			switch u.GetKind() {
			case "Service":
				var v corev1.Service
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &v); err != nil {
					t.Fatal(err)
				}
				switch v.Name {
				case "mediamtx-rtmp":
					rtmp = &v
				case "mediamtx-hls":
					hls = &v
				}
			case "ConfigMap":
				if u.GetName() == render.ConfigName {
					edgeYAML, _, _ = unstructured.NestedString(u.Object, "data", "edge.yaml")
				}
			}
		}
		if rtmp == nil || rtmp.Spec.Type != corev1.ServiceTypeLoadBalancer || len(rtmp.Spec.Ports) != 1 ||
			rtmp.Spec.Ports[0].Port != 1935 || rtmp.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
			t.Errorf("%s: RTMP Service %+v, want a TCP LoadBalancer on 1935", region, rtmp)
		}
		if hls == nil || hls.Namespace != "live" || hls.Spec.Ports[0].Port != 8888 {
			t.Errorf("%s: HLS Service %+v, want live/mediamtx-hls on 8888", region, hls)
		}
		s, err := edge.ParseSettings([]byte(edgeYAML))
		if err != nil {
			t.Fatalf("%s: edge.yaml: %v", region, err)
		}
		if s.Origin != "http://mediamtx-hls.live.svc.cluster.local:8888" || s.Video != config.VideoDefaults() {
			t.Errorf("%s: edge origin %q video %+v", region, s.Origin, s.Video)
		}
		if !strings.Contains(edgeYAML, "playlistFraction: 0.5") {
			t.Errorf("%s: edge.yaml does not show the video rules:\n%s", region, edgeYAML)
		}
	}
	// The dns publishes the ingest hostname with TCP health checks.
	if b, _ := yaml.Marshal(cfg.Spec.Apps); !strings.Contains(string(b), "ingest.live.example.com") || !strings.Contains(string(b), "protocol: tcp") {
		t.Errorf("spec.apps: %s", b)
	}

	c := kubetest.Start(t, "livevideo")[0]
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	warnings := &warningRecorder{}
	rc := rest.CopyConfig(c.Config)
	rc.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	applyRendered(ctx, t, dyn, mapper, warnings, out)
}
