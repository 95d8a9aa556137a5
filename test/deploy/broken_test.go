package deploy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

// cdnHead begins the CDN file of every test here, up to the routing.
const cdnHead = `apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: demo}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {url: https://origin.example.com}
  routing: {policy: latency, ttl: 30s}
`

// server is one region's API server as a kubeconfig names it.
type server struct {
	region, url, token string
	caData             []byte // nil: the server's certificate is not checked
}

// writeRegions writes a kubeconfig with a context per server and a CDN
// file with those regions, always on; it returns the file's path.
func writeRegions(t *testing.T, servers []server) string {
	t.Helper()
	dir := t.TempDir()
	kc := clientcmdapi.NewConfig()
	var regions strings.Builder
	for _, s := range servers {
		kc.Clusters[s.region] = &clientcmdapi.Cluster{Server: s.url, CertificateAuthorityData: s.caData, InsecureSkipTLSVerify: s.caData == nil && strings.HasPrefix(s.url, "https:")}
		kc.AuthInfos[s.region] = &clientcmdapi.AuthInfo{Token: s.token}
		kc.Contexts[s.region] = &clientcmdapi.Context{Cluster: s.region, AuthInfo: s.region}
		fmt.Fprintf(&regions, "      - {name: %s, provider: aws, cluster: {kubeconfig: %s, context: %s}}\n", s.region, filepath.Join(dir, "kubeconfig"), s.region)
	}
	if err := clientcmd.WriteToFile(*kc, filepath.Join(dir, "kubeconfig")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "kubecdn.yaml")
	cdn := cdnHead + "  regions:\n    alwaysOn:\n" + regions.String()
	if err := os.WriteFile(file, []byte(cdn), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// stalledTLSServer completes TLS handshakes and never answers a request:
// an API server whose HTTP layer hangs.
func stalledTLSServer(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets srv.Close return
	return srv.URL
}

// The regions whose API servers cannot serve fail alone, each on its own
// line, and the exit code says so; the healthy region is deployed all the
// same and within seconds of the request timeout, where a stalled server
// used to hang the whole deploy.
func TestDeployGoesOnWithoutBrokenRegions(t *testing.T) {
	healthy := kubetest.Start(t, "us-east-1")[0]
	healthy.StartControllers(t, kubetest.Controllers{LoadBalancer: func(ns, name string) string { return "192.0.2.10" }})
	silent := e2e.SilentListener(t)
	stalled := stalledTLSServer(t)
	file := writeRegions(t, []server{
		{region: "us-east-1", url: healthy.Server, token: healthy.Token, caData: healthy.CAData},
		{region: "eu-west-1", url: "http://" + silent, token: "t"},
		{region: "ap-south-1", url: stalled, token: "t"},
		{region: "us-west-2", url: healthy.Server, token: "not-the-token", caData: healthy.CAData},
	})

	start := time.Now()
	out, code := run(t, nil, "deploy", "-f", file, "--image", "example.com/kubecdn:test", "--timeout", "60s", "--request-timeout", "2s")
	took := time.Since(start)
	t.Logf("deploy in %s:\n%s", took.Round(time.Millisecond), out)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if took > 60*time.Second {
		t.Errorf("deploy took %s with a 2s request timeout", took)
	}
	wantLines := map[string]string{
		"eu-west-1":  "failed: http://" + silent + " did not answer within 2s",
		"ap-south-1": "failed: " + stalled + " did not answer within 2s",
		"us-west-2":  "failed: " + healthy.Server + " refused kubecdn: 401 Unauthorized: Unauthorized",
		"us-east-1":  "ready in ",
	}
	for region, want := range wantLines {
		if !hasLine(out, region, want) {
			t.Errorf("no line %q for %s", want, region)
		}
	}
	if !strings.Contains(out, "deploy: 3 of 4 regions failed") {
		t.Error("the summary does not count 3 failed regions of 4")
	}
	got, err := healthy.Kubectl(t.Context(), "-n", "kubecdn", "get", "statefulset", "kubecdn-edge", "-o", "name")
	if err != nil || strings.TrimSpace(got) != "statefulset.apps/kubecdn-edge" {
		t.Errorf("the healthy region was not deployed: %q %v", got, err)
	}
}

// A kubeconfig that points at a web server is one line per region naming
// the server and what answered, and nothing from client-go's own log.
func TestDeployNotKubernetes(t *testing.T) {
	page := func(code int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(code)
			fmt.Fprint(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	notFound := page(http.StatusNotFound, "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>")
	welcome := page(http.StatusOK, "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head></html>")
	file := writeRegions(t, []server{
		{region: "us-east-1", url: notFound, token: "t"},
		{region: "eu-west-1", url: welcome, token: "t"},
	})
	out, code := run(t, nil, "deploy", "-f", file, "--image", "example.com/kubecdn:test")
	t.Logf("deploy:\n%s", out)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for region, want := range map[string]string{
		"us-east-1": "failed: " + notFound + ` is not a Kubernetes API server: GET /version answered 404 Not Found, text/html "404 Not Found"`,
		"eu-west-1": "failed: " + welcome + ` is not a Kubernetes API server: GET /version answered 200 OK, text/html "Welcome to nginx!"`,
	} {
		if !hasLine(out, region, want) {
			t.Errorf("no line %q for %s", want, region)
		}
	}
	// Every line is deploy's own: a region's, the hop key's, DNS's, the
	// summary or an indented error under it; klog's start with a severity
	// letter and a date ("E1206 01:17:56.975742 ...").
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, "  ") {
			continue
		}
		switch f[0] {
		case "us-east-1", "eu-west-1", "hop", "dns", "deploy:":
		default:
			t.Errorf("a line that is not deploy's: %q", line)
		}
	}
}

// hasLine reports whether out has a line of the region holding want.
func hasLine(out, region, want string) bool {
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == region && strings.Contains(line, want) {
			return true
		}
	}
	return false
}
