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
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"

	"github.com/kubecdn/kubecdn/internal/certs/certstest"
)

// kubecdn is the binary under test, built once by TestMain (set once, read
// only); kubecdn.Start runs an edge of it.
var kubecdn edgetest.Binary

func TestMain(m *testing.M) { edgetest.Main(m, &kubecdn) }

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

// client is an HTTPS client trusting p's CA, with SNI sni, that connects to
// the edge whatever the URL's host.
func (p *pki) client(e *edgetest.Edge, sni string, h2 bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.ca.Pool(), ServerName: sni},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, e.TLS)
		},
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
