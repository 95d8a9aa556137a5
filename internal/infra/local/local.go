// Package local runs the Kubernetes control plane of a `provider: local`
// region on this machine: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, and kwok playing the kubelets of a few fake nodes, so
// workloads are really rolled out by the real controllers, pods are really
// scheduled and become Ready, and Services of type LoadBalancer get an
// address (a kwok Stage; see stages.go for which address and why).
//
// The processes are detached from the command that starts them (tofu's
// local-exec runs `kubecdn infra local start` and returns); their pids and
// ports are kept in the region's state directory, DIR/REGION/state.json,
// which Stop reads to end them all. Start is idempotent: a region already
// running is left alone, one found half running (a reboot, a killed process)
// is restarted on its old data.
//
// Module writes the OpenTofu root module that starts and stops a region
// through those commands (module.go).
package local

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/controlplane"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// DefaultNodes is how many fake nodes a region gets when Options.Nodes is 0.
const DefaultNodes = 2

// KubernetesVersion is what a local region runs: the binaries
// test/infra/build-local.sh builds.
const KubernetesVersion = "1.37.2"

const (
	// AdminUser is the user of the admin kubeconfig; it is in group
	// system:masters.
	AdminUser = "kubecdn-admin"
	// APIPort is the API server's port, on the region's own loopback
	// address (its load-balancer IP): fixed, so the module's endpoint output
	// is known when tofu plans.
	APIPort = 6443
	// NodeAnnotation marks the nodes kwok plays (and only those: kwok runs
	// with --manage-nodes-with-annotation-selector).
	NodeAnnotation = "kwok.x-k8s.io/node"

	// readyTimeout bounds a start: far more than an idle 2-core machine
	// needs, enough for one busy with builds.
	readyTimeout   = 170 * time.Second
	stopGrace      = 10 * time.Second
	certValidity   = 5 * 365 * 24 * time.Hour
	portAttempts   = 5
	probeTimeout   = 2 * time.Second
	stateFile      = "state.json"
	outputsFile    = "outputs.json"
	kubeconfigFile = "kubeconfig"
)

// Options name one local region.
type Options struct {
	// Dir is the state root; the region lives in Dir/Name. Required.
	Dir string
	// Name of the region: a DNS label (lower-case letters, digits, '-').
	Name string
	// Bin is the directory holding etcd, kube-apiserver,
	// kube-controller-manager, kube-scheduler, kwok and kwok-stages/
	// (test/infra/build-local.sh builds them). If "", DefaultBin().
	Bin string
	// Nodes is the number of fake nodes; if 0, the region's own when it
	// was started before, else DefaultNodes.
	Nodes int
	// LoadBalancerIP is the address every Service of type LoadBalancer
	// gets. If "", the region's own when it was started before (its
	// certificate names it), else DefaultLoadBalancerIP(Name, nil).
	LoadBalancerIP string
}

var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (o *Options) validate() error {
	if o.Dir == "" {
		return errors.New("dir: empty; name the state directory")
	}
	if !labelRE.MatchString(o.Name) {
		return fmt.Errorf("name: %q is not a DNS label (lower-case letters, digits and '-', at most 63)", o.Name)
	}
	if o.Nodes < 0 || o.Nodes > 100 {
		return fmt.Errorf("nodes: %d is out of range 1..100", o.Nodes)
	}
	if o.LoadBalancerIP != "" {
		if ip := net.ParseIP(o.LoadBalancerIP); ip == nil || ip.To4() == nil {
			return fmt.Errorf("load balancer ip: %q is not an IPv4 address", o.LoadBalancerIP)
		}
	}
	return nil
}

// withDefaults fills what o leaves out: from prev, the region's last
// state (nil: none), then from the defaults.
func (o Options) withDefaults(prev *State) Options {
	if o.Bin == "" {
		o.Bin = DefaultBin()
	}
	if prev != nil && o.Nodes == 0 {
		o.Nodes = prev.Nodes
	}
	if prev != nil && o.LoadBalancerIP == "" {
		o.LoadBalancerIP = prev.LoadBalancerIP
	}
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.LoadBalancerIP == "" {
		o.LoadBalancerIP = DefaultLoadBalancerIP(o.Name, nil)
	}
	return o
}

// DefaultBin is $KUBECDN_LOCAL_BIN if set, else kube-v1.37.2 under
// ${KUBECDN_CACHE:-$HOME/.cache/kubecdn}, where test/infra/build-local.sh
// puts the binaries.
func DefaultBin() string {
	if b := os.Getenv("KUBECDN_LOCAL_BIN"); b != "" {
		return b
	}
	cache := os.Getenv("KUBECDN_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "kubecdn")
	}
	return filepath.Join(cache, "kube-v"+KubernetesVersion)
}

// Process is one running component of a region.
type Process struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// Exe is the binary's resolved path: a pid now running something
	// else is not ours to kill.
	Exe   string `json:"exe"`
	Ports []int  `json:"ports,omitempty"`
}

// State is what a region's state.json holds.
type State struct {
	Name           string            `json:"name"`
	Endpoint       string            `json:"endpoint"`
	Kubeconfig     string            `json:"kubeconfig"`
	LoadBalancerIP string            `json:"loadBalancerIP"`
	Nodes          int               `json:"nodes"`
	EtcdPorts      [2]int            `json:"etcdPorts"` // client, peer
	APIPort        int               `json:"apiPort"`
	PKI            *controlplane.PKI `json:"pki"`
	Processes      []Process         `json:"processes"`
	// StartedAt is when the last start began, APIReadyAt when its API
	// server first answered /readyz, ReadyAt when nodes were Ready and the
	// default service account existed.
	StartedAt  time.Time `json:"startedAt"`
	APIReadyAt time.Time `json:"apiReadyAt"`
	ReadyAt    time.Time `json:"readyAt"`
}

// Outputs are what the OpenTofu module reads back as its outputs
// (outputs.json beside state.json).
type Outputs struct {
	Endpoint string `json:"endpoint"`
	// CACertificate is the base64 of the CA's PEM, as the cloud modules
	// give it.
	CACertificate  string `json:"ca_certificate"`
	ClusterName    string `json:"cluster_name"`
	KubeconfigPath string `json:"kubeconfig_path"`
}

// Load reads the state of region name under dir; nil if there is none.
func Load(dir, name string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, name, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name, stateFile), err)
	}
	return &st, nil
}

func (st *State) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, stateFile), b)
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Running reports whether every component recorded in st is alive.
func (st *State) Running() bool {
	if len(st.Processes) == 0 {
		return false
	}
	for _, p := range st.Processes {
		if !alive(p.PID, p.Exe) {
			return false
		}
	}
	return true
}

// components, in start order; Stop goes the other way.
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// Start brings region o.Name up and returns its state once its API server
// is ready, its nodes are Ready and its default service account exists. A
// region already running is returned as it is.
func Start(ctx context.Context, given Options) (*State, error) {
	if err := given.validate(); err != nil {
		return nil, err
	}
	o := given.withDefaults(nil) // Bin; the rest once the state is read
	bins := map[string]string{}
	for _, c := range components {
		b, err := filepath.EvalSymlinks(filepath.Join(o.Bin, c))
		if err != nil {
			return nil, fmt.Errorf("%s not found in %s (build it with test/infra/build-local.sh, or set KUBECDN_LOCAL_BIN): %w", c, o.Bin, err)
		}
		bins[c] = b
	}
	dir := filepath.Join(o.Dir, o.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := controlplane.LockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	prev, err := Load(o.Dir, o.Name)
	if err != nil {
		return nil, err
	}
	o = given.withDefaults(prev)
	if prev != nil && prev.Running() && prev.Nodes == o.Nodes && prev.LoadBalancerIP == o.LoadBalancerIP {
		if err := apiReady(ctx, prev); err == nil {
			return prev, nil
		}
	}
	st := &State{Name: o.Name, Kubeconfig: filepath.Join(dir, kubeconfigFile), LoadBalancerIP: o.LoadBalancerIP, Nodes: o.Nodes, StartedAt: time.Now()}
	if prev != nil {
		// Half running, or its settings changed: end what is left, then
		// start again on the same data, keys and (if free) ports.
		if err := stopProcesses(prev); err != nil {
			return nil, err
		}
		st.EtcdPorts, st.APIPort = prev.EtcdPorts, prev.APIPort
	}
	// The same keys, and a serving certificate for the address now.
	if st.PKI, err = EnsurePKI(o.Dir, o.Name, o.LoadBalancerIP); err != nil {
		return nil, fmt.Errorf("region %s: pki: %w", o.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := startAll(ctx, o, dir, bins, st); err != nil {
		_ = stopProcesses(st)
		_ = st.save(dir)
		return nil, fmt.Errorf("region %s: %w", o.Name, err)
	}
	return st, nil
}

func filesExist(paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// startAll starts every component in order, saving the state after each so
// a Stop after a failure finds every process.
func startAll(ctx context.Context, o Options, dir string, bins map[string]string, st *State) error {
	run := func(name string, args []string, ports ...int) error {
		// HOME is the region's directory: kwok reads ~/.kwok/kwok.yaml
		// besides the stages it is given, and nothing of the user's may
		// change a region.
		pid, err := spawn(bins[name], args, filepath.Join(dir, name+".log"), "HOME="+dir)
		if err != nil {
			return err
		}
		st.Processes = append(st.Processes, Process{Name: name, PID: pid, Exe: bins[name], Ports: ports})
		return st.save(dir)
	}
	// etcd, on its old ports if they are free.
	var err error
	for attempt := 1; ; attempt++ {
		if attempt > 1 || !portsFree(st.EtcdPorts[:]...) {
			if st.EtcdPorts, err = freePorts2(); err != nil {
				return err
			}
		}
		client, peer := "http://127.0.0.1:"+strconv.Itoa(st.EtcdPorts[0]), "http://127.0.0.1:"+strconv.Itoa(st.EtcdPorts[1])
		if err := run("etcd", controlplane.EtcdArgs(o.Name, filepath.Join(dir, "etcd"), client, peer), st.EtcdPorts[:]...); err != nil {
			return err
		}
		err = waitFor(ctx, st.Processes[len(st.Processes)-1], filepath.Join(dir, "etcd.log"), func(ctx context.Context) error { return etcdHealthy(ctx, client) })
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			return err
		}
		st.Processes = st.Processes[:len(st.Processes)-1]
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(st.EtcdPorts[0])
	// kube-apiserver, with the garbage collector a real cluster has, on the
	// region's own address.
	st.APIPort = APIPort
	st.Endpoint = "https://" + net.JoinHostPort(o.LoadBalancerIP, strconv.Itoa(APIPort))
	if !addrFree(o.LoadBalancerIP, APIPort) {
		return fmt.Errorf("%s:%d is taken (another region with the same load-balancer address?)", o.LoadBalancerIP, APIPort)
	}
	args := append(controlplane.APIServerArgs(st.PKI, etcdURL, st.APIPort, filepath.Join(dir, "certs")),
		"--bind-address="+o.LoadBalancerIP)
	if err := run("kube-apiserver", args, st.APIPort); err != nil {
		return err
	}
	if err := waitFor(ctx, st.Processes[len(st.Processes)-1], filepath.Join(dir, "kube-apiserver.log"), func(ctx context.Context) error { return apiReady(ctx, st) }); err != nil {
		return err
	}
	st.APIReadyAt = time.Now()
	// Kubeconfigs: the admin's (the region's output) and one per component.
	kc := map[string]string{AdminUser: st.Kubeconfig}
	for _, u := range []string{"system:kube-controller-manager", "system:kube-scheduler", "kwok"} {
		kc[u] = filepath.Join(dir, strings.TrimPrefix(u, "system:")+".kubeconfig")
	}
	for user, path := range kc {
		if err := writeKubeconfig(path, o.Name, st.Endpoint, st.PKI.CAPEM, st.PKI.Tokens[user]); err != nil {
			return err
		}
	}
	stages, err := writeStages(dir, o.Bin, o.LoadBalancerIP)
	if err != nil {
		return err
	}
	steps := []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", []string{
			"--kubeconfig=" + kc["system:kube-controller-manager"],
			// Serves no health port: nothing here reads it, and one port
			// fewer to free.
			"--secure-port=0",
			"--leader-elect=false",
			"--controllers=*",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + st.PKI.SAKeyFile,
			"--root-ca-file=" + st.PKI.CAFile,
			"--cluster-signing-cert-file=" + st.PKI.CAFile,
			"--cluster-signing-key-file=" + st.PKI.CAKeyFile,
			"--cluster-name=" + o.Name,
		}},
		{"kube-scheduler", []string{
			"--kubeconfig=" + kc["system:kube-scheduler"],
			"--secure-port=0",
			"--leader-elect=false",
		}},
		{"kwok", []string{
			"--kubeconfig=" + kc["kwok"],
			"--config=" + stages,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + NodeAnnotation + "=fake",
			"--node-lease-duration-seconds=40",
		}},
	}
	for _, s := range steps {
		if err := run(s.name, s.args); err != nil {
			return err
		}
	}
	client, err := kubernetes.NewForConfig(restConfig(st))
	if err != nil {
		return err
	}
	if err := createNodes(ctx, client, o); err != nil {
		return err
	}
	// Ready: nodes Ready (kwok plays them), the default service account
	// exists (the controller manager works: pods can be admitted).
	err = poll(ctx, func(ctx context.Context) error {
		for _, p := range st.Processes {
			if !alive(p.PID, p.Exe) {
				return fmt.Errorf("%w: %s exited\n  %s log:\n%s", errExited, p.Name, p.Name, tail(filepath.Join(dir, p.Name+".log")))
			}
		}
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < o.Nodes {
			return fmt.Errorf("%d of %d nodes Ready", ready, o.Nodes)
		}
		_, err = client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("waiting for nodes and the default service account: %w", err)
	}
	st.ReadyAt = time.Now()
	if err := st.save(dir); err != nil {
		return err
	}
	out, err := json.MarshalIndent(Outputs{
		Endpoint:       st.Endpoint,
		CACertificate:  base64.StdEncoding.EncodeToString(st.PKI.CAPEM),
		ClusterName:    o.Name,
		KubeconfigPath: st.Kubeconfig,
	}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, outputsFile), out)
}

// createNodes creates the fake nodes kwok plays, name REGION-N, with room
// for many pods. Nodes that exist are left as they are.
func createNodes(ctx context.Context, client kubernetes.Interface, o Options) error {
	for i := range o.Nodes {
		name := o.Name + "-" + strconv.Itoa(i)
		res := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("32"),
			corev1.ResourceMemory: resource.MustParse("256Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{NodeAnnotation: "fake"},
				Labels: map[string]string{
					"type":                          "kwok",
					"kubernetes.io/hostname":        name,
					"kubernetes.io/os":              "linux",
					"kubernetes.io/arch":            "amd64",
					"topology.kubernetes.io/region": o.Name,
				},
			},
			Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
		}
		try, cancel := context.WithTimeout(ctx, probeTimeout*5)
		_, err := client.CoreV1().Nodes().Create(try, n, metav1.CreateOptions{})
		cancel()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %s: %w", name, err)
		}
	}
	return nil
}

// Revive starts region name under dir again if it was started once and
// is not running now (a reboot, a killed process), on its data, address
// and nodes, and reports whether it did. A region never started, or
// deleted, is left to the module's create. It is what `kubecdn infra
// apply` runs first: tofu's state still holds such a region, so its plan
// has no changes and would leave it down.
func Revive(ctx context.Context, dir, name string) (bool, error) {
	st, err := Load(dir, name)
	if err != nil || st == nil || st.ReadyAt.IsZero() || st.Running() {
		return false, err
	}
	if _, err := Start(ctx, Options{Dir: dir, Name: name}); err != nil {
		return false, err
	}
	return true, nil
}

// Stop ends every process of region name under dir and waits until every
// port it held is free. With remove, the region's directory (data, keys,
// logs) goes too; its CA, which the module names (caDir), stays. A region
// that is not there is not an error.
func Stop(ctx context.Context, dir, name string, remove bool) error {
	if !labelRE.MatchString(name) {
		return fmt.Errorf("name: %q is not a DNS label", name)
	}
	rdir := filepath.Join(dir, name)
	if _, err := os.Stat(rdir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := controlplane.LockFile(filepath.Join(rdir, ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := Load(dir, name)
	if err != nil {
		return err
	}
	if st != nil {
		if err := stopProcesses(st); err != nil {
			return err
		}
		if err := waitPortsFree(ctx, st); err != nil {
			return err
		}
		if err := st.save(rdir); err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(rdir, outputsFile))
	}
	if remove {
		return os.RemoveAll(rdir)
	}
	return nil
}

// stopProcesses ends st's processes, last started first, and forgets them.
func stopProcesses(st *State) error {
	var errs []error
	for i := len(st.Processes) - 1; i >= 0; i-- {
		p := st.Processes[i]
		if err := kill(p.PID, p.Exe, stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	st.Processes = nil
	return nil
}

func waitPortsFree(ctx context.Context, st *State) error {
	ctx, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	return poll(ctx, func(context.Context) error {
		for _, p := range st.EtcdPorts {
			if p != 0 && !portsFree(p) {
				return fmt.Errorf("port %d still taken", p)
			}
		}
		if st.APIPort != 0 && !addrFree(st.LoadBalancerIP, st.APIPort) {
			return fmt.Errorf("%s:%d still taken", st.LoadBalancerIP, st.APIPort)
		}
		return nil
	})
}

var (
	errPortTaken = errors.New("port taken")
	errExited    = errors.New("exited")
)

// waitFor polls ready until it succeeds, p exits (errPortTaken if its log
// says the port was taken) or ctx ends.
func waitFor(ctx context.Context, p Process, log string, ready func(context.Context) error) error {
	err := poll(ctx, func(ctx context.Context) error {
		if !alive(p.PID, p.Exe) {
			return errExited
		}
		return ready(ctx)
	})
	if err == nil {
		return nil
	}
	t := tail(log)
	if strings.Contains(t, "address already in use") {
		_ = kill(p.PID, p.Exe, stopGrace)
		return errPortTaken
	}
	_ = kill(p.PID, p.Exe, stopGrace)
	return fmt.Errorf("%s not ready: %w\n  log (%s):\n%s", p.Name, err, log, t)
}

// poll calls f every 100ms until it returns nil or ctx ends; errExited
// ends it at once.
func poll(ctx context.Context, f func(context.Context) error) error {
	for {
		try, cancel := context.WithTimeout(ctx, probeTimeout)
		err := f(try)
		cancel()
		if err == nil || errors.Is(err, errExited) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the last lines of a log file, each cut to 300 bytes.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "    (" + err.Error() + ")\n"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	var sb strings.Builder
	for _, l := range lines {
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		sb.WriteString("    " + l + "\n")
	}
	return sb.String()
}

func etcdHealthy(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd /health: %s: %s", resp.Status, b)
	}
	return nil
}

// apiReady asks the API server's /readyz as the admin.
func apiReady(ctx context.Context, st *State) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(st.PKI.CAPEM) {
		return errors.New("no CA certificate in the state")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.Endpoint+"/readyz", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+st.PKI.Tokens[AdminUser])
	c := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s: %s", resp.Status, b)
	}
	return nil
}

func restConfig(st *State) *rest.Config {
	return &rest.Config{
		Host:            st.Endpoint,
		BearerToken:     st.PKI.Tokens[AdminUser],
		TLSClientConfig: rest.TLSClientConfig{CAData: st.PKI.CAPEM},
		Timeout:         30 * time.Second,
	}
}

// writeKubeconfig writes a kubeconfig with one cluster, user and context,
// all named name.
func writeKubeconfig(path, name, server string, ca []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

func freePorts2() ([2]int, error) {
	a, err := controlplane.FreePort()
	if err != nil {
		return [2]int{}, err
	}
	for {
		b, err := controlplane.FreePort()
		if err != nil {
			return [2]int{}, err
		}
		if b != a {
			return [2]int{a, b}, nil
		}
	}
}

// addrFree reports whether nothing listens on ip:port.
func addrFree(ip string, port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), 200*time.Millisecond)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

// portsFree reports whether every port is non-zero and nothing listens on
// it on 127.0.0.1.
func portsFree(ports ...int) bool {
	for _, p := range ports {
		if p == 0 {
			return false
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return false
		}
	}
	return true
}

// users are the identities of a region's token file.
var users = []controlplane.User{
	{Name: AdminUser, Groups: []string{"system:masters"}},
	// The users the bootstrap RBAC policy grants these components.
	{Name: "system:kube-controller-manager"},
	{Name: "system:kube-scheduler"},
	// kwok writes the status of nodes, pods and services and the nodes'
	// leases.
	{Name: "kwok", Groups: []string{"system:masters"}},
}

// caDir is where region name under root keeps its CA: beside the
// region's directory, not in it, because the CA is the module's (its
// ca_certificate output names it when tofu plans) and must outlive the
// region's directory, which a replacement deletes (`stop --delete`) before
// it starts the new control plane. ".ca" is no DNS label, so no region's
// own directory.
func caDir(root, name string) string { return filepath.Join(root, name+".ca") }

// EnsureCA returns the PEM of region name's CA under root, made on first
// use. Module calls it, so the CA is known when tofu plans; EnsurePKI signs
// the region's serving certificate with it.
func EnsureCA(root, name string) ([]byte, error) {
	d := caDir(root, name)
	crt, key := filepath.Join(d, "ca.crt"), filepath.Join(d, "ca.key")
	if filesExist(crt, key) {
		return os.ReadFile(crt)
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	// A region made before the CA moved here keeps its own: its API
	// server's certificate and the outputs tofu holds name it.
	oldCrt, oldKey := filepath.Join(root, name, "pki", "ca.crt"), filepath.Join(root, name, "pki", "ca.key")
	if filesExist(oldCrt, oldKey) {
		for _, f := range [][2]string{{oldKey, key}, {oldCrt, crt}} {
			b, err := os.ReadFile(f[0])
			if err != nil {
				return nil, err
			}
			if err := writeAtomic(f[1], b); err != nil {
				return nil, err
			}
		}
		return os.ReadFile(crt)
	}
	if err := controlplane.NewCA(crt, key, time.Now(), certValidity); err != nil {
		return nil, err
	}
	return os.ReadFile(crt)
}

// EnsurePKI returns the PKI of region name under root: its CA (EnsureCA),
// and in the region's directory a serving certificate that names ip, a
// service-account key and tokens, made on first use. A serving certificate
// that does not name ip, or that another CA signed, is issued again: the
// region's address changed.
func EnsurePKI(root, name, ip string) (*controlplane.PKI, error) {
	if _, err := EnsureCA(root, name); err != nil {
		return nil, err
	}
	caFile, caKeyFile := filepath.Join(caDir(root, name), "ca.crt"), filepath.Join(caDir(root, name), "ca.key")
	pdir := filepath.Join(root, name, "pki")
	p := &controlplane.PKI{
		CAFile: caFile, CAKeyFile: caKeyFile,
		CertFile: filepath.Join(pdir, "apiserver.crt"), KeyFile: filepath.Join(pdir, "apiserver.key"),
		SAKeyFile: filepath.Join(pdir, "sa.key"), TokenFile: filepath.Join(pdir, "tokens.csv"),
	}
	if !filesExist(p.CertFile, p.KeyFile, p.SAKeyFile, p.TokenFile) {
		return controlplane.IssuePKI(pdir, caFile, caKeyFile, time.Now(), certValidity, users, net.ParseIP(ip))
	}
	var err error
	if p.CAPEM, err = os.ReadFile(p.CAFile); err != nil {
		return nil, err
	}
	if p.VerifyServing(ip, time.Now()) != nil {
		if err := p.IssueServing(time.Now(), certValidity, net.ParseIP(ip)); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(p.TokenFile)
	if err != nil {
		return nil, err
	}
	p.Tokens = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// token,user,uid,"groups"
		f := strings.SplitN(line, ",", 3)
		if len(f) < 2 {
			return nil, fmt.Errorf("%s: bad line %q", p.TokenFile, line)
		}
		p.Tokens[f[1]] = f[0]
	}
	return p, nil
}
