// Package local_test runs a `provider: local` region end to end with real
// everything: the kubecdn binary, OpenTofu built from the module proxy,
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok,
// and kubectl.
package local_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/infra/local"
	"github.com/kubecdn/kubecdn/test/e2e"
)

var kubecdn string

func TestMain(m *testing.M) { e2e.Main(m, &kubecdn) }

// script runs one of the build scripts and returns the directory it
// printed last.
func script(t *testing.T, path string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", path, err, lastLines(stderr.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// tofuDir is where test/infra/build-tofu.sh put OpenTofu. Where it cannot
// be built the test is skipped, except under CI=true, where test/all.sh
// has built it.
func tofuDir(t *testing.T) string {
	t.Helper()
	dir, err := script(t, "../build-tofu.sh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenTofu could not be built and CI=true: %v", err)
		}
		t.Skipf("OpenTofu could not be built, so the module cannot be applied here: %v", err)
	}
	return dir
}

// writeCDN writes a CDN file with spec.infra and one always-on region,
// given as a YAML flow mapping, whose origin is nowhere (these tests make
// clusters, not traffic).
func writeCDN(t *testing.T, file, region string) {
	t.Helper()
	cdn := `apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: lk}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {url: "http://127.0.0.1:9"}
  routing: {policy: failover}
  infra: {}
  regions:
    alwaysOn:
    - ` + region + "\n"
	if err := os.WriteFile(file, []byte(cdn), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tofuOutputs returns `tofu output -json` of the module in modDir and a
// function giving one string output.
func tofuOutputs(t *testing.T, tofu, modDir string, env []string) (string, func(string) string) {
	t.Helper()
	out, err := run(t, time.Minute, modDir, env, tofu, "output", "-json", "-no-color")
	if err != nil {
		t.Fatal(err)
	}
	var outputs map[string]struct{ Value any }
	if err := json.Unmarshal([]byte(out), &outputs); err != nil {
		t.Fatalf("tofu output: %v\n%s", err, out)
	}
	return out, func(k string) string { s, _ := outputs[k].Value.(string); return s }
}

// tools returns OpenTofu, the directory of a local region's binaries and
// kubectl, building them where they are not yet built.
func tools(t *testing.T) (tofu, bin, kubectl string) {
	t.Helper()
	tofu = filepath.Join(tofuDir(t), "tofu")
	bin, err := script(t, "../build-local.sh")
	if err != nil {
		t.Fatal(err)
	}
	return tofu, bin, filepath.Join(bin, "kubectl")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// run runs a command with a deadline and returns its standard output; the
// error carries both outputs.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, lastLines(stdout.String(), 40), lastLines(stderr.String(), 40))
	}
	return stdout.String(), nil
}

// TestApplyLocalRegion: tofu apply of a local region's module starts a
// control plane whose real controllers roll out a StatefulSet onto kwok's
// nodes and whose LoadBalancer Service gets the region's address, which
// reaches a real process; a second plan changes nothing; destroy stops
// every process and frees every port.
func TestApplyLocalRegion(t *testing.T) {
	tofu, bin, kubectl := tools(t)

	const lbIP = "127.0.0.51"
	region := config.Region{Name: "lk-east", Provider: "local", Edges: []string{lbIP + ":8080"}}
	tmp := t.TempDir()
	stateDir := filepath.Join(tmp, "state")
	modDir := filepath.Join(tmp, "infra", region.Name)
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The module names the running executable; here that is the test
	// binary, so point it at the built kubecdn as `kubecdn infra` would
	// be.
	m, err := local.Module(region, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	res := m["resource"].(map[string]any)["terraform_data"].(map[string]any)["cluster"].(map[string]any)
	res["input"].(map[string]any)["kubecdn"] = kubecdn
	var mod bytes.Buffer
	enc := json.NewEncoder(&mod)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(modDir, "main.tf.json"), mod.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Whatever happens, no process of the region outlives the test.
	t.Cleanup(func() {
		if out, err := run(t, time.Minute, "", nil, kubecdn, "infra", "local", "stop", "--dir", stateDir, "--name", region.Name, "--delete"); err != nil {
			t.Logf("cleanup: %v %s", err, out)
		}
	})
	env := []string{"KUBECDN_LOCAL_BIN=" + bin, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=/dev/null", "TF_DATA_DIR=" + filepath.Join(tmp, "tfdata")}
	if _, err := run(t, 2*time.Minute, modDir, env, tofu, "init", "-input=false", "-no-color"); err != nil {
		t.Fatal(err)
	}
	applyStart := time.Now()
	out, err := run(t, 5*time.Minute, modDir, env, tofu, "apply", "-auto-approve", "-input=false", "-no-color")
	if err != nil {
		t.Fatal(err)
	}
	applied := time.Since(applyStart)
	st, err := local.Load(stateDir, region.Name)
	if err != nil || st == nil {
		t.Fatalf("no state after apply: %v\n%s", err, out)
	}
	t.Logf("apply: %v in all; apply start to kube-apiserver ready %v; to nodes Ready %v",
		applied.Round(time.Millisecond), st.APIReadyAt.Sub(applyStart).Round(time.Millisecond), st.ReadyAt.Sub(applyStart).Round(time.Millisecond))

	// The outputs.
	out, str := tofuOutputs(t, tofu, modDir, env)
	if str("endpoint") != st.Endpoint || str("cluster_name") != region.Name || str("kubeconfig_path") != st.Kubeconfig || str("load_balancer_ip") != lbIP {
		t.Fatalf("outputs %s do not match the state (endpoint %s, kubeconfig %s)", out, st.Endpoint, st.Kubeconfig)
	}
	ca, err := base64.StdEncoding.DecodeString(str("ca_certificate"))
	if b, _ := pem.Decode(ca); err != nil || b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("ca_certificate is not base64 of a PEM certificate: %v %q", err, str("ca_certificate"))
	}

	// A StatefulSet and a LoadBalancer Service, through kubectl with the
	// kubeconfig the module gave.
	svcPort := e2e.FreePort(t, lbIP)
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  serviceName: web
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: registry.example/web:1, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: %d, targetPort: 8080}]
`, svcPort)
	kc := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig=" + str("kubeconfig_path"), "--context=" + region.Name}, args...)...)
		cmd.Env = append(os.Environ(), "KUBERC=off")
		cmd.Stdin = strings.NewReader(manifest)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return string(b), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, b)
		}
		return string(b), nil
	}
	if _, err := kc(time.Minute, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if out, err := kc(2*time.Minute, "rollout", "status", "statefulset/web", "--timeout=100s"); err != nil {
		t.Fatalf("%v\n%s", err, diagnose(kc))
	} else {
		t.Logf("%s", strings.TrimSpace(out))
	}
	out, err = kc(time.Minute, "get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}")
	if err != nil {
		t.Fatal(err)
	}
	pods := strings.Split(strings.TrimSpace(out), "\n")
	if len(pods) != 2 {
		t.Fatalf("pods: %q", out)
	}
	for _, p := range pods {
		f := strings.Fields(p)
		if len(f) != 3 || !strings.HasPrefix(f[1], region.Name+"-") || f[2] != "True" {
			t.Errorf("pod %q is not Ready on a kwok node", p)
		}
	}
	var addr string
	deadline := time.Now().Add(time.Minute)
	for addr == "" {
		out, err := kc(30*time.Second, "get", "service", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if err != nil {
			t.Fatal(err)
		}
		addr = strings.TrimSpace(out)
		if addr == "" {
			if time.Now().After(deadline) {
				t.Fatalf("service web got no load balancer address in a minute\n%s", diagnose(kc))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if addr != lbIP {
		t.Fatalf("service web got %s, want the region's %s", addr, lbIP)
	}
	// The address reaches a real process put behind it.
	ln, err := net.Listen("tcp", net.JoinHostPort(lbIP, strconv.Itoa(svcPort)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "edge of lk-east") }), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + net.JoinHostPort(addr, strconv.Itoa(svcPort)) + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	rss, err := memory(st)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("memory of the region (RSS of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok): %d MiB", rss>>20)

	// A second plan changes nothing.
	if out, err := run(t, 2*time.Minute, modDir, env, tofu, "plan", "-detailed-exitcode", "-input=false", "-no-color"); err != nil {
		t.Fatalf("second plan is not empty: %v\n%s", err, out)
	}
	// start again (as after a crash, by hand) leaves a running region alone.
	if out, err := run(t, time.Minute, "", env, kubecdn, "infra", "local", "start", "--dir", stateDir, "--name", region.Name, "--lb-ip", lbIP); err != nil {
		t.Fatal(err)
	} else if again, _ := local.Load(stateDir, region.Name); again == nil || again.Endpoint != st.Endpoint || again.Processes[0].PID != st.Processes[0].PID {
		t.Fatalf("a second start restarted the region: %s", out)
	}

	// Destroy: every process ends, every port is free, the state is gone.
	if _, err := run(t, 2*time.Minute, modDir, env, tofu, "destroy", "-auto-approve", "-input=false", "-no-color"); err != nil {
		t.Fatal(err)
	}
	checkGone(t, st, stateDir)
}

// checkGone fails t if a process of region st still runs, one of its
// ports (the API server's on the region's address, the others on
// 127.0.0.1) still answers, or its directory under stateDir is still there.
func checkGone(t *testing.T, st *local.State, stateDir string) {
	t.Helper()
	for _, p := range st.Processes {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(p.PID) + "/exe"); exe == p.Exe {
			t.Errorf("%s: %s (pid %d) still runs after destroy", st.Name, p.Name, p.PID)
		}
		host := "127.0.0.1"
		if p.Name == "kube-apiserver" {
			host = st.LoadBalancerIP
		}
		for _, port := range p.Ports {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second); err == nil {
				c.Close()
				t.Errorf("%s: port %d of %s still answers after destroy", st.Name, port, p.Name)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(stateDir, st.Name)); !os.IsNotExist(err) {
		t.Errorf("%s: the region's directory is still there after destroy: %v", st.Name, err)
	}
}

// diagnose returns what explains a rollout that did not finish.
func diagnose(kc func(time.Duration, ...string) (string, error)) string {
	out, _ := kc(30*time.Second, "get", "nodes,pods,statefulsets,services,events", "-A", "-o", "wide")
	return out
}

// memory sums the resident memory of the region's processes.
func memory(st *local.State) (int64, error) {
	var sum int64
	for _, p := range st.Processes {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/status")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.Name, err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return 0, err
				}
				sum += kb << 10
			}
		}
	}
	return sum, nil
}
