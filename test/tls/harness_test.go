// Package tls_test runs the kubecdn edge binary end to end over HTTPS: the
// test builds `kubecdn` once, makes a test CA and certificates
// (crypto/x509), starts real origins on loopback and the edge as a child
// process, and talks to it with Go's TLS client, curl and openssl.
//
// Run with `go test ./test/tls/`. Set CI=true to make a missing curl or
// openssl a failure instead of a skip, and KUBECDN_BIN=/path/to/kubecdn to
// test a binary built elsewhere.
package tls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/kubecdn/kubecdn/test/e2e"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/certs/certstest"
)

// binPath is the kubecdn binary built by TestMain (set once, read only).
var binPath string

func TestMain(m *testing.M) { e2e.Main(m, &binPath) }

// needTool skips when a command-line tool is missing, unless CI=true.
func needTool(t *testing.T, name string) string { return e2e.NeedTool(t, name, name) }

// pki is a test CA with a certificate per hostname, written to dir.
type pki struct {
	ca     *certstest.CA
	dir    string
	caFile string
	files  map[string][2]string // hostname -> cert, key files
}

func newPKI(t *testing.T, hosts ...string) *pki {
	t.Helper()
	p := &pki{ca: certstest.NewCA(t, "kubecdn e2e ca"), dir: t.TempDir(), files: map[string][2]string{}}
	p.caFile = p.ca.WriteCA(t, p.dir, "ca.pem")
	for _, h := range hosts {
		c, k := p.ca.Issue(t, []string{h}, time.Time{}, time.Time{}).Write(t, p.dir, h)
		p.files[h] = [2]string{c, k}
	}
	return p
}

// certArgs are the --tls-cert/--tls-key flags for hosts, in order.
func (p *pki) certArgs(hosts ...string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, "--tls-cert", p.files[h][0], "--tls-key", p.files[h][1])
	}
	return out
}

// edgeProc is a running `kubecdn edge` with an HTTPS listener.
type edgeProc struct {
	t                  *testing.T
	cmd                *exec.Cmd
	listen, tls, admin string
	out                *e2e.SyncBuffer
	exited             chan struct{}
	err                error
}

func launchEdge(t *testing.T, origin string, args ...string) *edgeProc {
	t.Helper()
	e := &edgeProc{t: t, listen: e2e.FreeAddr(t), tls: e2e.FreeAddr(t), admin: e2e.FreeAddr(t), out: &e2e.SyncBuffer{}, exited: make(chan struct{})}
	all := append([]string{"edge", "--listen", e.listen, "--admin", e.admin, "--tls-listen", e.tls, "--origin", origin}, args...)
	e.cmd = exec.Command(binPath, all...)
	e.cmd.Env = append(os.Environ(), "KUBECDN_ADMIN_TOKEN=e2e")
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("starting edge: %v", err)
	}
	go func() {
		e.err = e.cmd.Wait()
		close(e.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-e.exited:
		default:
			_ = e.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.exited:
			case <-time.After(10 * time.Second):
				_ = e.cmd.Process.Kill()
				<-e.exited
			}
		}
		if t.Failed() {
			t.Logf("edge output:\n%s", e.out.String())
		}
	})
	return e
}

// startEdge launches an edge and waits until its HTTPS listener accepts.
func startEdge(t *testing.T, origin string, args ...string) *edgeProc {
	t.Helper()
	e := launchEdge(t, origin, args...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-e.exited:
			t.Fatalf("edge exited: %v\n%s", e.err, e.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", e.tls, time.Second)
		if err == nil {
			c.Close()
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge HTTPS listener not up: %v\n%s", err, e.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits for the edge to exit by itself and returns its exit code.
func (e *edgeProc) waitExit(limit time.Duration) (int, error) {
	select {
	case <-e.exited:
	case <-time.After(limit):
		return 0, errors.New("edge still running")
	}
	var ee *exec.ExitError
	if errors.As(e.err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, e.err
}

func (e *edgeProc) signal(sig os.Signal) {
	e.t.Helper()
	if err := e.cmd.Process.Signal(sig); err != nil {
		e.t.Fatalf("signal: %v", err)
	}
}

// client is an HTTPS client trusting p's CA, with SNI sni, that connects to
// the edge whatever the URL's host.
func (p *pki) client(e *edgeProc, sni string, h2 bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.ca.Pool(), ServerName: sni},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, e.tls)
		},
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
