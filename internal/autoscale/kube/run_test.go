package kube

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/kubetest"
)

// replica is one Run, as one pod of the rendered Deployment.
type replica struct {
	id      string
	metrics string
	stop    context.CancelFunc
	done    chan error
}

func (r *replica) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(r.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRunLeadsAndResumes runs two autoscalers of one file against a real
// kube-apiserver: one leads, the other stands by (both serve /metrics and
// /healthz); the leader resumes the region states stored in the first
// always-on region's namespace; when it stops, the other takes over with
// the same state.
func TestRunLeadsAndResumes(t *testing.T) {
	cs := kubetest.Start(t, "us-east-1")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubetest.WriteKubeconfig(t, kubeconfig, cs...)
	c := configtest.Minimal()
	c.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.ClusterRegion("us-east-1", "aws", kubeconfig, "us-east-1")},
		Autoscale: []config.Region{configtest.ClusterRegion("eu-west-1", "gcp", kubeconfig, "us-east-1")},
	}
	c.Spec.Autoscale = config.Autoscale{ScaleUpAbove: 50, ScaleDownBelow: 2, Window: configtest.Duration(t, "90s"), Cooldown: configtest.Duration(t, "90s")}
	cfg := configtest.Load(t, dir, c)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := cs[0].Client
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubecdn"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A previous autoscaler opened eu-west-1 an hour ago.
	opened := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	store := autoscale.KubeStore{Client: client, Namespace: "kubecdn", Name: StateName}
	if err := store.Save(ctx, autoscale.State{Regions: []autoscale.Region{
		{Name: "us-east-1", AlwaysOn: true, Phase: autoscale.Open},
		{Name: "eu-west-1", Phase: autoscale.Open, Since: opened, InDNS: true},
	}}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	leading := map[string]bool{}
	start := func(id string) *replica {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		r := &replica{id: id, metrics: "http://" + l.Addr().String(), stop: stop, done: make(chan error, 1)}
		o := Options{Every: 200 * time.Millisecond, Identity: id, Metrics: l,
			Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			Leading: func(on bool) { mu.Lock(); leading[id] = on; mu.Unlock() }}
		go func() { r.done <- Run(rctx, cfg, o) }()
		t.Cleanup(func() {
			stop()
			select {
			case <-r.done:
			case <-time.After(20 * time.Second):
				t.Errorf("autoscaler %s did not stop", id)
			}
		})
		return r
	}
	leaders := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for id, on := range leading {
			if on {
				out = append(out, id)
			}
		}
		return out
	}
	waitLeader := func(not string) string {
		t.Helper()
		for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if l := leaders(); len(l) == 1 && l[0] != not {
				return l[0]
			}
		}
		t.Fatalf("no single new leader: %v", leaders())
		return ""
	}
	reps := map[string]*replica{"a": start("a"), "b": start("b")}
	first := waitLeader("")
	time.Sleep(time.Second) // a second would-be leader would show by now
	if l := leaders(); len(l) != 1 {
		t.Fatalf("leaders: %v", l)
	}
	standby := map[string]string{"a": "b", "b": "a"}[first]
	const euOpen = `kubecdn_autoscale_region_phase{phase="open",region="eu-west-1"} 1`
	waitMetric := func(r *replica, line string) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = r.scrape(t); strings.Contains(got, line) {
				return
			}
		}
		t.Errorf("%s's metrics lack %q:\n%s", r.id, line, got)
	}
	waitMetric(reps[first], euOpen)
	waitMetric(reps[first], "kubecdn_autoscale_leader 1")
	waitMetric(reps[standby], "kubecdn_autoscale_leader 0")
	if got := reps[standby].scrape(t); strings.Contains(got, "kubecdn_autoscale_region_phase") {
		t.Errorf("the standby reports region phases:\n%s", got)
	}

	// The leader stops: the standby takes over, from the stored state.
	reps[first].stop()
	if next := waitLeader(first); next != standby {
		t.Fatalf("leader after %s stopped: %s", first, next)
	}
	waitMetric(reps[standby], euOpen)
	st, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Regions) != 2 || st.Regions[1].Phase != autoscale.Open || !st.Regions[1].Since.Equal(opened) {
		t.Errorf("stored state after two leaders: %+v", st.Regions)
	}
}
