package up_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/loadgen"
	"github.com/kubecdn/kubecdn/test/e2e"
)

// secondDNS runs `kubecdn dns` of c's file as another replica beside up's,
// on dns and admin, with up's admin token; stop kills it.
func secondDNS(t *testing.T, c *autoscaleCDN, dnsAddr, admin string) (stop func()) {
	t.Helper()
	cmd := exec.Command(binPath, "dns", "-f", c.file, "--listen", dnsAddr, "--admin", admin, "--admin-token-file", c.token)
	out := &e2e.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("second dns output (tail):\n%s", tail(out.String(), 20))
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestUpAutoscaleStoppedDNSReplicaFreezesDecisions: up's autoscaler samples
// a second dns replica (`kubecdn dns` of the same file). With it stopped,
// demand from Dublin above scaleUpAbove for longer than the window opens
// nothing, and the autoscaler says the decisions are frozen on that
// replica; started again, the decisions resume and eu-west-1 opens.
func TestUpAutoscaleStoppedDNSReplicaFreezesDecisions(t *testing.T) {
	dns2, dns2Admin := freeDNSAddr(t), fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c := newAutoscaleCDN(t, true, func(c *autoscaleCDN) { c.eastIP, c.euIP = "127.0.0.132", "127.0.0.134" })
	p := startUp(t, append(c.args, "--autoscale-dns", "http://"+dns2Admin)...)
	p.WaitBanner(t, c.control)
	if !edgesCountDemand(t, c) {
		t.Skip("the edges do not count demand by nearest region; the thresholds here are users' requests per second")
	}
	stop := secondDNS(t, c, dns2, dns2Admin)
	waitFrozen := func(want bool, why string) string {
		t.Helper()
		frozen := ""
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if frozen = autoscaleView(t, c.control).Frozen; (frozen != "") == want {
				return frozen
			}
		}
		t.Fatalf("%s: frozen %q, want frozen %v", why, frozen, want)
		return ""
	}
	waitFrozen(false, "both dns replicas answer")

	stop()
	frozen := waitFrozen(true, "second dns replica stopped")
	if !strings.Contains(frozen, dns2Admin) {
		t.Errorf("frozen %q does not name the stopped replica %s", frozen, dns2Admin)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan loadgen.Summary, 1)
	twin, _ := loadgen.LoopbackTwin(netip.MustParsePrefix(dublin))
	go func() {
		sum, _ := loadgen.Run(ctx, loadgen.Options{URL: fmt.Sprintf("http://%s:%s/", hostname, c.port), DNS: c.dns,
			From: netip.MustParsePrefix(dublin), Source: twin, Rate: 1.5 * c.up, Duration: 2 * time.Minute, Timeout: 5 * time.Second, Seed: 4}, discard{})
		loadDone <- sum
	}()
	time.Sleep(c.window + 5*time.Second)
	v := autoscaleView(t, c.control)
	if d := decisionsOf(v, "eu-west-1"); len(d) > 0 || phaseOf(v, "eu-west-1") != "closed" {
		t.Fatalf("a dns replica stopped, yet eu-west-1 moved: phase %s, decisions %+v", phaseOf(v, "eu-west-1"), d)
	}
	if !strings.Contains(v.Frozen, dns2Admin) {
		t.Errorf("under load with the replica stopped, frozen %q does not name it", v.Frozen)
	}
	t.Logf("frozen with the replica stopped: %s", v.Frozen)

	// Started again: the decisions resume, and the load opens eu-west-1.
	restarted := time.Now()
	secondDNS(t, c, dns2, dns2Admin)
	waitFrozen(false, "second dns replica started again")
	for time.Since(restarted) < c.window+15*time.Second && phaseOf(autoscaleView(t, c.control), "eu-west-1") != "open" {
		time.Sleep(200 * time.Millisecond)
	}
	v = autoscaleView(t, c.control)
	if phaseOf(v, "eu-west-1") != "open" {
		t.Fatalf("replica back, eu-west-1 not open %s later: phase %s, frozen %q, decisions %+v",
			time.Since(restarted).Round(time.Second), phaseOf(v, "eu-west-1"), v.Frozen, decisionsOf(v, "eu-west-1"))
	}
	t.Logf("replica back: eu-west-1 open %.1fs later", time.Since(restarted).Seconds())
	cancel()
	if sum := <-loadDone; sum.Failed > 0 {
		t.Errorf("%d of %d requests failed: %v", sum.Failed, sum.Requests, sum.Errors)
	}
	p.Stop(t)
}
