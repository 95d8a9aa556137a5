// Package autoscale_test runs `kubecdn autoscale -f` as a user (or the
// rendered Deployment) does: the binary, real kube-apiservers, the file's
// regions reached through one kubeconfig given with --kubeconfig.
package autoscale_test

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/autoscale/kube"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

var bin string

func TestMain(m *testing.M) { e2e.Main(m, &bin) }

// TestTwoAutoscalersOneLeads starts two `kubecdn autoscale -f` processes:
// the file names a kubeconfig that does not exist, --kubeconfig the one
// that does (as in a pod, where the Secret is mounted); one takes the
// Lease and reports the stored region states, the other stands by; when
// the leader is killed, the other leads, from the same stored state.
func TestTwoAutoscalersOneLeads(t *testing.T) {
	cs := kubetest.Start(t, "us-east-1")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubetest.WriteKubeconfig(t, kubeconfig, cs...)
	absent := filepath.Join(dir, "absent-kubeconfig")
	c := configtest.Minimal()
	c.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.ClusterRegion("us-east-1", "aws", absent, "us-east-1")},
		Autoscale: []config.Region{configtest.ClusterRegion("eu-west-1", "gcp", absent, "us-east-1")},
	}
	c.Spec.Autoscale = config.Autoscale{ScaleUpAbove: 50, ScaleDownBelow: 2, Window: configtest.Duration(t, "90s"), Cooldown: configtest.Duration(t, "90s")}
	file := configtest.Write(t, dir, c)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := cs[0].Client
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubecdn"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A previous autoscaler opened eu-west-1 an hour ago.
	opened := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	store := autoscale.KubeStore{Client: client, Namespace: "kubecdn", Name: kube.StateName}
	if err := store.Save(ctx, autoscale.State{Regions: []autoscale.Region{
		{Name: "us-east-1", AlwaysOn: true, Phase: autoscale.Open},
		{Name: "eu-west-1", Phase: autoscale.Open, Since: opened, InDNS: true},
	}}); err != nil {
		t.Fatal(err)
	}

	type proc struct {
		cmd     *exec.Cmd
		metrics string
		out     *e2e.SyncBuffer
	}
	start := func(id string) *proc {
		addr := e2e.FreeAddr(t)
		p := &proc{metrics: "http://" + addr, out: &e2e.SyncBuffer{}}
		p.cmd = exec.Command(bin, "autoscale", "-f", file, "--kubeconfig", kubeconfig, "--identity", id,
			"--metrics", addr, "--every", "200ms")
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			t.Logf("kubecdn autoscale --identity %s:\n%s", id, p.out.String())
		})
		return p
	}
	scrape := func(p *proc) string {
		resp, err := http.Get(p.metrics + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	const leading = "kubecdn_autoscale_leader 1"
	const euOpen = `kubecdn_autoscale_region_phase{phase="open",region="eu-west-1"} 1`
	// waitLeader waits until exactly one of ps leads and reports the stored
	// state, and returns it.
	waitLeader := func(ps ...*proc) *proc {
		t.Helper()
		for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			var leaders []*proc
			for _, p := range ps {
				if m := scrape(p); strings.Contains(m, leading) && strings.Contains(m, euOpen) {
					leaders = append(leaders, p)
				}
			}
			if len(leaders) == 1 {
				return leaders[0]
			}
			if len(leaders) > 1 {
				t.Fatal("two autoscalers lead at once")
			}
		}
		t.Fatal("no autoscaler leads with the stored state")
		return nil
	}
	a, b := start("a"), start("b")
	first := waitLeader(a, b)
	other := map[*proc]*proc{a: b, b: a}[first]
	// The standby may still be starting its metrics listener: wait until
	// it answers before reading what it reports.
	m := scrape(other)
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(m, "kubecdn_autoscale_leader") && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		m = scrape(other)
	}
	if !strings.Contains(m, "kubecdn_autoscale_leader 0") || strings.Contains(m, "kubecdn_autoscale_region_phase") {
		t.Errorf("the standby's metrics (it decides nothing, and reports no phases):\n%s", m)
	}
	// Killed, the leader releases nothing: the other takes over once the
	// Lease expires.
	_ = first.cmd.Process.Kill()
	if next := waitLeader(other); next != other {
		t.Fatal("the standby did not take over")
	}
	st, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Regions) != 2 || st.Regions[1].Phase != autoscale.Open || !st.Regions[1].Since.Equal(opened) {
		t.Errorf("stored state after two leaders: %+v", st.Regions)
	}
}
