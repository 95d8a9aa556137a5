package local_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/infra/local"
	"github.com/kubecdn/kubecdn/test/e2e"
)

// TestInfraApplyDeploy is the end-to-end check, as a newcomer runs
// it: a CDN file with two `provider: local` regions and no clusters →
// `kubecdn infra apply` (real tofu, real control planes, kwok nodes) →
// contexts kubecdn-REGION in the managed kubeconfig → `kubecdn deploy` →
// edges and dns rolled out by the real controllers, pods Ready on kwok's
// nodes, LoadBalancer Services given each region's loopback address → the
// kubecdn dns (run by the test from the file deploy published, on the
// region's dns address) answers a user with the region whose edge (run by
// the test on that region's edge address) serves the origin's bytes; a
// second apply changes nothing; destroy ends every process and frees every
// port.
func TestInfraApplyDeploy(t *testing.T) {
	tofu, bin, kubectl := tools(t)
	dig := e2e.NeedTool(t, "dig", "bind9-dnsutils")
	regions := []string{"lke2e-a", "lke2e-b"}

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "origin bytes for %s", r.URL.Path)
	}))
	defer origin.Close()

	dir := t.TempDir()
	file := filepath.Join(dir, "kubecdn.yaml")
	cdn := fmt.Sprintf(`apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: lke2e}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {url: %s}
  routing: {policy: failover, ttl: 5s}
  infra: {}
  regions:
    alwaysOn:
    - {name: %s, provider: local}
    - {name: %s, provider: local}
`, origin.URL, regions[0], regions[1])
	if err := os.WriteFile(file, []byte(cdn), 0o644); err != nil {
		t.Fatal(err)
	}
	infraDir := filepath.Join(dir, "infra")
	// A region's control plane lives in infra/REGION/REGION (the module's
	// state directory is its own directory).
	stateDir := func(r string) string { return filepath.Join(infraDir, r) }
	// Whatever happens, no process of a region outlives the test.
	t.Cleanup(func() {
		for _, r := range regions {
			if out, err := run(t, time.Minute, "", nil, kubecdn, "infra", "local", "stop", "--dir", stateDir(r), "--name", r, "--delete"); err != nil {
				t.Logf("cleanup: %v %s", err, out)
			}
		}
	})
	env := []string{"KUBECDN_LOCAL_BIN=" + bin, "KUBECDN_TOFU=" + tofu, "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=/dev/null"}

	// infra apply: both regions, in parallel.
	start := time.Now()
	out, err := run(t, 6*time.Minute, dir, env, kubecdn, "infra", "apply", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	applied := time.Since(start)
	t.Logf("kubecdn infra apply (2 local regions) took %v:\n%s", applied.Round(time.Millisecond), out)
	if !strings.Contains(out, "infra apply: 2 regions ready, 2 to add, 0 to change, 0 to destroy") {
		t.Fatalf("apply did not say both regions were added:\n%s", out)
	}
	states := map[string]*local.State{}
	var total int64
	for _, r := range regions {
		st, err := local.Load(stateDir(r), r)
		if err != nil || st == nil || !st.Running() {
			t.Fatalf("%s: no running region after apply: %v", r, err)
		}
		states[r] = st
		rss, err := memory(st)
		if err != nil {
			t.Fatal(err)
		}
		total += rss
		t.Logf("%s: kube-apiserver ready %v after apply began, nodes Ready after %v; RSS of its five processes %d MiB",
			r, st.APIReadyAt.Sub(start).Round(time.Millisecond), st.ReadyAt.Sub(start).Round(time.Millisecond), rss>>20)
	}
	t.Logf("memory per region (mean RSS, idle, before deploy): %d MiB", total/int64(len(regions))>>20)
	if states[regions[0]].LoadBalancerIP == states[regions[1]].LoadBalancerIP {
		t.Fatalf("both regions got load-balancer address %s", states[regions[0]].LoadBalancerIP)
	}

	// The managed kubeconfig has a context per region that reaches it.
	kubeconfig := filepath.Join(infraDir, "kubeconfig")
	kc := func(region string, timeout time.Duration, args ...string) (string, error) {
		return run(t, timeout, "", []string{"KUBERC=off"}, kubectl, append([]string{"--kubeconfig=" + kubeconfig, "--context=kubecdn-" + region}, args...)...)
	}
	for _, r := range regions {
		out, err := kc(r, time.Minute, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
		if err != nil {
			t.Fatal(err)
		}
		if want := r + "-0 " + r + "-1"; out != want {
			t.Errorf("context kubecdn-%s: nodes %q, want %q", r, out, want)
		}
	}

	// deploy: as right after apply, no edits.
	start = time.Now()
	out, err = run(t, 4*time.Minute, dir, nil, kubecdn, "deploy", "-f", file, "--image", "example.com/kubecdn:test", "--timeout", "150s")
	if err != nil {
		for _, r := range regions {
			d, _ := kc(r, 30*time.Second, "get", "nodes,pods,statefulsets,deployments,services,events", "-A", "-o", "wide")
			t.Logf("%s:\n%s", r, d)
		}
		t.Fatal(err)
	}
	t.Logf("kubecdn deploy took %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	if !strings.Contains(out, "deploy: 2 regions in sync") {
		t.Fatalf("deploy did not bring both regions in sync:\n%s", out)
	}
	for _, r := range regions {
		lb := states[r].LoadBalancerIP
		// Every edge and dns pod Ready on one of the region's kwok nodes.
		out, err := kc(r, time.Minute, "-n", "kubecdn", "get", "pods", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			t.Fatal(err)
		}
		var edges, dnses int
		for _, p := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(p)
			if len(f) != 3 || !strings.HasPrefix(f[1], r+"-") || f[2] != "True" {
				t.Errorf("%s: pod %q is not Ready on a kwok node", r, p)
				continue
			}
			switch {
			case strings.HasPrefix(f[0], "kubecdn-edge-"):
				edges++
			case strings.HasPrefix(f[0], "kubecdn-dns-"):
				dnses++
			}
		}
		if edges == 0 || dnses == 0 {
			t.Errorf("%s: %d edge and %d dns pods Ready:\n%s", r, edges, dnses, out)
		}
		for _, svc := range []string{"kubecdn-edge-public", "kubecdn-dns"} {
			got, err := kc(r, time.Minute, "-n", "kubecdn", "get", "service", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
			if err != nil {
				t.Fatal(err)
			}
			if got != lb {
				t.Errorf("%s: service %s has address %q, want the region's %s", r, svc, got, lb)
			}
		}
	}

	// What deploy published: each region's dns file names both regions'
	// load-balancer addresses. The test runs the real dns of region a on
	// a's dns address and the real edge of region b on b's edge address,
	// each from the files deploy gave those regions.
	a, b := regions[0], regions[1]
	files := map[string]map[string]string{}
	for _, r := range regions {
		out, err := kc(r, time.Minute, "-n", "kubecdn", "get", "configmap", "kubecdn-config", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var cm struct{ Data map[string]string }
		if err := yaml.Unmarshal([]byte(out), &cm); err != nil {
			t.Fatal(err)
		}
		for _, peer := range regions {
			if want := states[peer].LoadBalancerIP + ":80"; !strings.Contains(cm.Data["kubecdn.yaml"], want) {
				t.Errorf("%s: the published kubecdn.yaml does not name %s's edges at %s:\n%s", r, peer, want, cm.Data["kubecdn.yaml"])
			}
		}
		files[r] = cm.Data
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edgeAddr := net.JoinHostPort(states[b].LoadBalancerIP, "80")
	dnsAddr := net.JoinHostPort(states[a].LoadBalancerIP, "53")
	edge := startProc(t, kubecdn, "edge", "--config", write("edge-"+b+".yaml", files[b]["edge.yaml"]),
		"--listen", edgeAddr, "--admin", e2e.FreeAddr(t))
	dnsProc := startProc(t, kubecdn, "dns", "-f", write("kubecdn-"+a+".yaml", files[a]["kubecdn.yaml"]),
		"--listen", dnsAddr, "--admin", "off", "--region", a)

	// A user asks a's dns; only b has a live edge, so once the dns's own
	// probes have seen that, b is the answer.
	var answer []string
	deadline := time.Now().Add(45 * time.Second)
	for {
		answer = lookupA(t, dig, states[a].LoadBalancerIP, "www.cdn.example.com")
		if slices.Equal(answer, []string{states[b].LoadBalancerIP}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dns at %s answers %v, want only %s (region %s, whose edge runs)\ndns:\n%s\nedge:\n%s",
				dnsAddr, answer, states[b].LoadBalancerIP, b, e2e.Tail(dnsProc.String(), 20), e2e.Tail(edge.String(), 20))
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The user fetches from the address the dns gave.
	req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(answer[0], "80")+"/hello.txt", nil)
	req.Host = "www.cdn.example.com"
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("fetch from %s: %v\nedge:\n%s", answer[0], err, e2e.Tail(edge.String(), 20))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "origin bytes for /hello.txt" {
		t.Fatalf("fetch from %s: %s %q\nedge:\n%s", answer[0], resp.Status, body, e2e.Tail(edge.String(), 20))
	}
	t.Logf("dns %s answered %s with %v (region %s); GET http://%s/hello.txt with Host %s: %s %q",
		dnsAddr, "www.cdn.example.com", answer, b, edgeAddr, req.Host, resp.Status, body)
	edge.stop(t)
	dnsProc.stop(t)
	total = 0
	for _, r := range regions {
		rss, err := memory(states[r])
		if err != nil {
			t.Fatal(err)
		}
		total += rss
	}
	t.Logf("memory per region (mean RSS of its five processes, after deploy): %d MiB", total/int64(len(regions))>>20)

	// A second apply changes nothing.
	out, err = run(t, 4*time.Minute, dir, env, kubecdn, "infra", "apply", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second kubecdn infra apply:\n%s", out)
	if !strings.Contains(out, "infra apply: 2 regions ready, no changes") {
		t.Errorf("second apply changed something:\n%s", out)
	}
	for _, r := range regions {
		if st, _ := local.Load(stateDir(r), r); st == nil || st.Processes[0].PID != states[r].Processes[0].PID {
			t.Errorf("%s: the second apply restarted the region", r)
		}
	}

	// Region a goes down (its API server and kwok killed, as by a reboot):
	// tofu's state still holds it, and apply brings it back on its data.
	for _, p := range states[a].Processes {
		if p.Name == "kube-apiserver" || p.Name == "kwok" {
			if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, err = run(t, 4*time.Minute, dir, env, kubecdn, "infra", "apply", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubecdn infra apply, region %s down:\n%s", a, out)
	revived := regexp.MustCompile(`(?m)^` + a + ` +was down: started again on its data$`)
	if !revived.MatchString(out) || strings.Contains(out, b+" was down") || !strings.Contains(out, "infra apply: 2 regions ready, no changes") {
		t.Errorf("apply with %s down did not say it brought it back:\n%s", a, out)
	}
	if out, err := kc(a, time.Minute, "-n", "kubecdn", "get", "statefulset", "kubecdn-edge", "-o", "jsonpath={.status.readyReplicas}"); err != nil || out != "2" {
		t.Errorf("%s after apply brought it back: readyReplicas %q (%v), want 2, from its old data", a, out, err)
	}
	if states[a], err = local.Load(stateDir(a), a); err != nil || states[a] == nil || !states[a].Running() {
		t.Fatalf("%s not running after apply brought it back: %v", a, err)
	}

	// destroy: refuses without --yes, then ends everything.
	if out, err := run(t, time.Minute, dir, env, kubecdn, "infra", "destroy", "-f", file); err == nil {
		t.Errorf("destroy without --yes succeeded:\n%s", out)
	}
	out, err = run(t, 4*time.Minute, dir, env, kubecdn, "infra", "destroy", "-f", file, "--yes")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubecdn infra destroy:\n%s", out)
	for _, r := range regions {
		checkGone(t, states[r], stateDir(r))
	}
	if b, err := os.ReadFile(kubeconfig); err == nil && strings.Contains(string(b), "kubecdn-"+a) {
		t.Errorf("the kubeconfig still names the destroyed regions:\n%s", b)
	}
}

// lookupA asks the dns at server (port 53) for name's A records with dig,
// as a user would; nil when dig gets no answer.
func lookupA(t *testing.T, dig, server, name string) []string {
	out, err := run(t, 10*time.Second, "", nil, dig, "+short", "+time=2", "+tries=1", "-p", "53", "@"+server, name, "A")
	if err != nil {
		return nil
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return nil
	}
	ips := strings.Fields(out)
	slices.Sort(ips)
	return ips
}

// proc is a kubecdn child of the test.
type proc struct {
	e2e.SyncBuffer
	cmd *exec.Cmd
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends the child and waits for it (at most 10 s).
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("%s did not end within 10s of SIGINT", p.cmd.Args[1])
	}
}
