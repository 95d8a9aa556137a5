// Package kubetest runs real Kubernetes API servers for tests: per cluster
// one etcd and one kube-apiserver (v1.37.2, built once by test/kube/build.sh)
// on loopback ports, their data in the test's temporary directory, stopped
// when the test ends.
//
// A cluster has no kubelet, scheduler or controller manager: objects are
// stored, validated, defaulted and admitted, but nothing acts on them. The
// few controller effects a deploy waits for (rollouts done, load-balancer
// addresses, namespace deletion finishing) are played by Controllers and
// the single-shot methods MarkRolledOut, SetLoadBalancer and
// FinishNamespaceDeletion.
//
// The admin is authenticated by a static bearer token (user AdminUser, group
// system:masters); authorization is RBAC; the API server's garbage collector
// switch is off, so a foreground or orphan delete does not wait for a
// collector that is not there.
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/controlplane"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AdminUser is the user name the clusters' token authenticates as; it is in
// group system:masters.
const AdminUser = "kubetest-admin"

// ServiceClusterIPRange is the range ClusterIPs are allocated from.
const ServiceClusterIPRange = controlplane.ServiceClusterIPRange

const (
	module = "github.com/kubecdn/kubecdn"
	// startTimeout bounds one cluster's start; a cold start on a busy
	// 2-core machine takes far less.
	startTimeout = 90 * time.Second
	stopGrace    = 10 * time.Second
)

// Cluster is one running API server with its etcd.
type Cluster struct {
	// Name as given to Start.
	Name string
	// Context is the cluster's context name in every kubeconfig written
	// here: its Name.
	Context string
	// Kubeconfig is the path of a kubeconfig file holding this cluster
	// alone, its context current. WriteKubeconfig writes one holding several.
	Kubeconfig string
	// Server is the API server's URL, https://127.0.0.1:PORT.
	Server string
	// Token is the admin's bearer token.
	Token string
	// CAData is the PEM certificate of the CA that signed the serving
	// certificate.
	CAData []byte
	// Config authenticates as the admin; it is not rate limited on the
	// client side (QPS 1000).
	Config  *rest.Config
	Client  kubernetes.Interface
	Dynamic dynamic.Interface

	bin       string // directory of etcd, kube-apiserver, kubectl
	dir       string // the cluster's temporary directory
	etcd      *process
	apiserver *process
	// quiet is Dynamic without the API server's warnings on stderr (the
	// namespace controller's part lists deprecated kinds).
	quiet dynamic.Interface
}

// Binaries returns the directory holding etcd, kube-apiserver and kubectl,
// running test/kube/build.sh of this module (found by walking up from the
// working directory to its go.mod). The first run builds them, which takes
// minutes; later runs return at once. Concurrent first runs from several
// test binaries build once. It fails the test with the script's output if
// the script fails; it never skips.
func Binaries(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	unlock, err := controlplane.LockFile(filepath.Join(os.TempDir(), "kubecdn-kube-build.lock"))
	if err != nil {
		t.Fatalf("kubetest: locking the build: %v", err)
	}
	defer unlock()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "test", "kube", "build.sh"))
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubetest: test/kube/build.sh: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("kubetest: test/kube/build.sh printed %q, which holds no executable %s (%v)\nstderr:\n%s", dir, b, err, stderr.String())
		}
	}
	return dir
}

// moduleRoot walks up from the working directory to the go.mod of module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			found := sc.Scan() && strings.TrimSpace(sc.Text()) == "module "+module
			f.Close()
			if found {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", module)
		}
		dir = parent
	}
}

// Start starts one cluster per name, all at once, and returns them in the
// order of names once every API server is ready (/readyz, and the default
// namespace exists). They are stopped, and waited for, when the test ends.
// Names must be distinct; each is also the cluster's context name.
func Start(t testing.TB, names ...string) []*Cluster {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] || strings.ContainsAny(n, "/ \t\n") {
			t.Fatalf("kubetest: cluster name %q is empty, repeated or contains / or white space", n)
		}
		seen[n] = true
	}
	bin := Binaries(t)
	clusters := make([]*Cluster, len(names))
	for i, n := range names {
		clusters[i] = &Cluster{Name: n, Context: n, bin: bin, dir: t.TempDir()}
	}
	// Stop runs before the temporary directories are removed: Cleanup
	// functions run last registered first.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, c := range clusters {
			wg.Go(c.stop)
		}
		wg.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	errs := make([]error, len(clusters))
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Go(func() { errs[i] = c.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return clusters
}

// stop ends the API server, then etcd. The API server is killed: its
// graceful shutdown takes more than a second and keeps nothing worth
// keeping (its state is in etcd, which goes with the test).
func (c *Cluster) stop() {
	if c.apiserver != nil {
		c.apiserver.stop(0)
	}
	if c.etcd != nil {
		c.etcd.stop(stopGrace)
	}
}

// start brings up etcd, then the API server, and waits until it is ready.
func (c *Cluster) start(ctx context.Context) error {
	p, err := newPKI(c.dir)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	etcdURL, err := c.startEtcd(ctx)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	// The API server's port cannot be 0: probe a free one and start on it;
	// if another process took it in between, try another.
	for attempt := 1; ; attempt++ {
		port, err := controlplane.FreePort()
		if err != nil {
			return fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		err = c.startAPIServer(ctx, p, etcdURL, port)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPortTaken) && attempt < 5 {
			continue
		}
		return fmt.Errorf("cluster %s: %w\n  etcd log (%s):\n%s", c.Name, err, filepath.Join(c.dir, "etcd.log"), c.etcd.log.lastLines())
	}
}

var errPortTaken = errors.New("port taken")

// startEtcd starts etcd on ports it picks itself and returns its client URL,
// read from its log.
func (c *Cluster) startEtcd(ctx context.Context) (string, error) {
	addr := make(chan string, 1)
	onLine := func(line string) {
		var l struct{ Msg, Address string }
		if json.Unmarshal([]byte(line), &l) == nil && strings.HasPrefix(l.Msg, "serving client traffic") && l.Address != "" {
			select {
			case addr <- l.Address:
			default:
			}
		}
	}
	const anyPort = "http://127.0.0.1:0"
	args := controlplane.EtcdArgs(c.Name, filepath.Join(c.dir, "etcd"), anyPort, anyPort)
	p, err := startProcess("etcd", filepath.Join(c.bin, "etcd"), filepath.Join(c.dir, "etcd.log"), args, onLine)
	if err != nil {
		return "", err
	}
	c.etcd = p
	select {
	case a := <-addr:
		return "http://" + a, nil
	case <-p.done:
		return "", fmt.Errorf("etcd exited: %v\n  etcd log:\n%s", p.err, p.log.lastLines())
	case <-ctx.Done():
		return "", fmt.Errorf("etcd did not report its client address: %w\n  etcd log:\n%s", ctx.Err(), p.log.lastLines())
	}
}

// startAPIServer starts kube-apiserver on port and waits until it is ready.
func (c *Cluster) startAPIServer(ctx context.Context, p *controlplane.PKI, etcdURL string, port int) error {
	c.Server = "https://127.0.0.1:" + strconv.Itoa(port)
	c.Token = p.Tokens[AdminUser]
	c.CAData = p.CAPEM
	args := append(controlplane.APIServerArgs(p, etcdURL, port, filepath.Join(c.dir, "certs")),
		// No garbage collector runs: deletes must not wait for one.
		"--enable-garbage-collector=false")
	log := filepath.Join(c.dir, "kube-apiserver.log")
	proc, err := startProcess("kube-apiserver", filepath.Join(c.bin, "kube-apiserver"), log, args, nil)
	if err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		proc.stop(0)
		return err
	}
	c.apiserver = proc
	err = c.waitReady(ctx)
	if err == nil {
		return nil
	}
	proc.stop(0)
	if proc.log.contains("address already in use") {
		return fmt.Errorf("%w: %d", errPortTaken, port)
	}
	return fmt.Errorf("%w\n  kube-apiserver log (%s):\n%s", err, log, proc.log.lastLines())
}

// connect builds the clients and writes the cluster's own kubeconfig.
func (c *Cluster) connect() error {
	c.Config = &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData},
		QPS:             1000,
		Burst:           2000,
	}
	var err error
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.Config); err != nil {
		return err
	}
	quiet := rest.CopyConfig(c.Config)
	quiet.WarningHandler = rest.NoWarnings{}
	if c.quiet, err = dynamic.NewForConfig(quiet); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	return writeKubeconfig(c.Kubeconfig, []*Cluster{c})
}

// waitReady polls /readyz, then the default namespace, until both answer.
func (c *Cluster) waitReady(ctx context.Context) error {
	var last error
	ready := false
	for {
		if msg, gone := c.apiserver.exited(); gone {
			return errors.New(msg)
		}
		try, cancel := context.WithTimeout(ctx, 2*time.Second)
		if !ready {
			_, last = c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(try)
			ready = last == nil
		}
		if ready {
			_, last = c.Client.CoreV1().Namespaces().Get(try, metav1.NamespaceDefault, metav1.GetOptions{})
			if last == nil {
				cancel()
				return nil
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready: %w (last: %v)", ctx.Err(), last)
		case <-c.apiserver.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WriteKubeconfig writes one kubeconfig file at path holding every cluster,
// each as its own cluster, user and context named by its Name; the first is
// the current context.
func WriteKubeconfig(t testing.TB, path string, clusters ...*Cluster) {
	t.Helper()
	if err := writeKubeconfig(path, clusters); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
}

func writeKubeconfig(path string, clusters []*Cluster) error {
	cfg := clientcmdapi.NewConfig()
	for i, c := range clusters {
		cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData}
		cfg.AuthInfos[c.Name] = &clientcmdapi.AuthInfo{Token: c.Token}
		cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name}
		if i == 0 {
			cfg.CurrentContext = c.Name
		}
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

// Kubectl runs the built kubectl against the cluster (its own kubeconfig
// and context; args may override both) and returns its standard output.
// The error carries the standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	full := append([]string{
		"--kubeconfig=" + c.Kubeconfig,
		"--context=" + c.Context,
		"--cache-dir=" + filepath.Join(c.dir, "kubectl-cache"),
	}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "kubectl"), full...)
	// No ~/.kube/kuberc preferences: the output must not depend on the
	// machine.
	cmd.Env = append(os.Environ(), "KUBERC=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
