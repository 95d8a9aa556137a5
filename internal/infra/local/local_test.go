package local

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/controlplane"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// binaries runs test/infra/build-local.sh (found above the working
// directory) and returns the directory it prints.
func binaries(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	for !fileExists(filepath.Join(dir, "test", "infra", "build-local.sh")) {
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no test/infra/build-local.sh above the working directory")
		}
		dir = parent
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(dir, "test", "infra", "build-local.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build-local.sh: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1]
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestStartStop: start brings a region up; start again leaves it alone; a
// component that died is brought back by start on the same data; stop
// ends every process and frees every port.
func TestStartStop(t *testing.T) {
	o := Options{Dir: t.TempDir(), Name: "t1", Bin: binaries(t), Nodes: 3, LoadBalancerIP: "127.0.0.61"}
	t.Cleanup(func() { _ = Stop(context.Background(), o.Dir, o.Name, false) })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver ready after %v, nodes after %v", st.APIReadyAt.Sub(st.StartedAt), st.ReadyAt.Sub(st.StartedAt))
	client, err := kubernetes.NewForConfig(restConfig(st))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 3 {
		t.Fatalf("nodes: %v %v", err, nodes)
	}

	again, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Processes[0].PID != st.Processes[0].PID || !again.StartedAt.Equal(st.StartedAt) {
		t.Fatal("a second start restarted a running region")
	}

	// The scheduler dies: start brings the region back, keeping its data
	// (the nodes) and its API server's port, which is free again. It is
	// started as by hand (`kubecdn infra local start --dir --name`), with
	// neither address nor node count: the region keeps its own, which its
	// certificate names, rather than the defaults.
	for _, p := range st.Processes {
		if p.Name == "kube-scheduler" {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			waitGone(p.PID, p.Exe, 5*time.Second)
		}
	}
	byHand := o
	byHand.LoadBalancerIP, byHand.Nodes = "", 0
	back, err := Start(ctx, byHand)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Running() || back.Endpoint != st.Endpoint || back.Nodes != 3 {
		t.Fatalf("restart: running %v, endpoint %s (was %s), %d nodes", back.Running(), back.Endpoint, st.Endpoint, back.Nodes)
	}
	client, err = kubernetes.NewForConfig(restConfig(back))
	if err != nil {
		t.Fatal(err)
	}
	if nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil || len(nodes.Items) != 3 {
		t.Fatalf("nodes after restart: %v %v", err, nodes)
	}

	// Started by hand on another address: the same data and CA, a serving
	// certificate for the new address, nothing left on the old one.
	moved := o
	moved.LoadBalancerIP = "127.0.0.62"
	back2, err := Start(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://127.0.0.62:" + strconv.Itoa(APIPort); back2.Endpoint != want || !bytes.Equal(back2.PKI.CAPEM, st.PKI.CAPEM) {
		t.Fatalf("moved: endpoint %s, want %s; CA kept %v", back2.Endpoint, want, bytes.Equal(back2.PKI.CAPEM, st.PKI.CAPEM))
	}
	client, err = kubernetes.NewForConfig(restConfig(back2))
	if err != nil {
		t.Fatal(err)
	}
	if nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil || len(nodes.Items) != 3 {
		t.Fatalf("nodes after the move: %v %v", err, nodes)
	}
	if !addrFree(o.LoadBalancerIP, APIPort) {
		t.Errorf("%s:%d still answers after the move", o.LoadBalancerIP, APIPort)
	}
	o.LoadBalancerIP = moved.LoadBalancerIP
	back = back2

	if err := Stop(ctx, o.Dir, o.Name, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range back.Processes {
		if alive(p.PID, p.Exe) {
			t.Errorf("%s still runs", p.Name)
		}
		host := "127.0.0.1"
		if p.Name == "kube-apiserver" {
			host = o.LoadBalancerIP
		}
		for _, port := range p.Ports {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second); err == nil {
				c.Close()
				t.Errorf("port %d of %s still answers", port, p.Name)
			}
		}
	}
	if err := Stop(ctx, o.Dir, o.Name, true); err != nil || fileExists(filepath.Join(o.Dir, o.Name)) {
		t.Fatalf("stop --delete: %v, directory there: %v", err, fileExists(filepath.Join(o.Dir, o.Name)))
	}
}

// TestStartNamesMissingBinary: a missing binary is an error naming it and
// how to build it.
func TestStartNamesMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), Name: "x", Bin: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "etcd not found") || !strings.Contains(err.Error(), "build-local.sh") {
		t.Fatalf("got %v", err)
	}
}

// TestPKIOutlivesRegionDirectory: the CA the module names when tofu plans
// outlives the region's directory (a replacement deletes it before the new
// control plane starts), and a new address gets a serving certificate
// that names it, from the same CA.
func TestPKIOutlivesRegionDirectory(t *testing.T) {
	root := t.TempDir()
	ca, err := EnsureCA(root, "r1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := EnsurePKI(root, "r1", "127.0.0.71")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.CAPEM, ca) || p.VerifyServing("127.0.0.71", time.Now()) != nil {
		t.Fatalf("first PKI: CA is the module's %v, serves 127.0.0.71: %v", bytes.Equal(p.CAPEM, ca), p.VerifyServing("127.0.0.71", time.Now()))
	}
	// The address changes with the region running (by hand): the same
	// keys and tokens, a certificate for the new address.
	q, err := EnsurePKI(root, "r1", "127.0.0.72")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.VerifyServing("127.0.0.72", time.Now()); err != nil || !bytes.Equal(q.CAPEM, ca) || q.Tokens[AdminUser] != p.Tokens[AdminUser] {
		t.Fatalf("after the move: serves 127.0.0.72: %v; same CA %v; same tokens %v", err, bytes.Equal(q.CAPEM, ca), q.Tokens[AdminUser] == p.Tokens[AdminUser])
	}
	if q.VerifyServing("127.0.0.71", time.Now()) == nil {
		t.Error("the new certificate still names the old address")
	}
	// A replacement: the region's directory goes (stop --delete), the
	// module was generated before with the CA, the new region starts.
	if err := os.RemoveAll(filepath.Join(root, "r1")); err != nil {
		t.Fatal(err)
	}
	r, err := EnsurePKI(root, "r1", "127.0.0.73")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyServing("127.0.0.73", time.Now()); err != nil || !bytes.Equal(r.CAPEM, ca) {
		t.Fatalf("after a replacement: serves 127.0.0.73: %v; the module's CA %v", err, bytes.Equal(r.CAPEM, ca))
	}
	// A region made when the CA lived in its directory keeps that CA.
	old := filepath.Join(root, "r0", "pki")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := controlplane.NewCA(filepath.Join(old, "ca.crt"), filepath.Join(old, "ca.key"), time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	was, _ := os.ReadFile(filepath.Join(old, "ca.crt"))
	if got, err := EnsureCA(root, "r0"); err != nil || !bytes.Equal(got, was) {
		t.Fatalf("r0's CA: %v, the one in its directory %v", err, bytes.Equal(got, was))
	}
	if p, err := EnsurePKI(root, "r0", "127.0.0.74"); err != nil || p.VerifyServing("127.0.0.74", time.Now()) != nil || !bytes.Equal(p.CAPEM, was) {
		t.Fatalf("r0's PKI: %v", err)
	}
	// Another region's CA is its own.
	if other, err := EnsureCA(root, "r2"); err != nil || bytes.Equal(other, ca) {
		t.Fatalf("r2's CA: %v, same as r1's %v", err, bytes.Equal(other, ca))
	}
}
