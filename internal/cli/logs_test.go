package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubecdn/kubecdn/internal/accesslog"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

// The pods/log subresource is served by the kubelet, which no test here
// runs: a real kube-apiserver answers it with an error. So the merge is
// tested as pure functions (internal/accesslog), and the client-go path
// against fakes named as such: client-go's fake clientset (it answers
// every log with "fake logs"), and fakeAPI, an httptest server that serves
// the two paths kubecdn logs uses, pods and pods/NAME/log, as an API server
// with kubelets would, so that the real client-go HTTP code is exercised.

func logsTestCDN(t *testing.T) *config.CDN {
	t.Helper()
	cfg, err := config.Load("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func edgePod(name, cdn string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: render.DefaultNamespace, Labels: render.EdgeSelector(cdn)},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// TestLogsFakeClientset: the edge pods are found by render's labels (a
// pod of another CDN is not read) and read with the container, since and
// follow options.
func TestLogsFakeClientset(t *testing.T) {
	cfg := logsTestCDN(t)
	cs := fake.NewClientset(edgePod("kubecdn-edge-0", "demo"), edgePod("kubecdn-edge-1", "demo"), edgePod("other-edge-0", "other"))
	var stdout, stderr bytes.Buffer
	o := logsOptions{region: "us-east-1", since: 90 * time.Second, namespace: render.DefaultNamespace, timeout: 5 * time.Second, window: time.Second,
		connect: func(config.Cluster) (kubernetes.Interface, error) { return cs, nil }}
	if err := streamLogs(context.Background(), cfg, o, &stdout, &stderr); err != nil {
		t.Fatalf("%v (stderr %s)", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("output %q: the fake's \"fake logs\" is no access log line", stdout.String())
	}
	var read []string
	for _, a := range cs.Actions() {
		switch {
		case a.GetVerb() == "list":
			if sel := a.(k8stesting.ListAction).GetListRestrictions().Labels.String(); sel != "app.kubernetes.io/name=kubecdn-edge,kubecdn.io/cdn=demo" {
				t.Errorf("listed with selector %q", sel)
			}
		case a.GetSubresource() == "log":
			read = append(read, a.(k8stesting.GenericAction).GetValue().(*corev1.PodLogOptions).Container+"/"+a.(k8stesting.GenericAction).GetValue().(*corev1.PodLogOptions).String())
		}
	}
	if len(read) != 2 {
		t.Fatalf("logs read %v, want the two demo edges'", read)
	}
	for _, r := range read {
		if !strings.HasPrefix(r, "edge/") || !strings.Contains(r, "SinceSeconds:*90") || !strings.Contains(r, "Follow:false") {
			t.Errorf("log options %s", r)
		}
	}
}

// fakeAPI serves the pod list and pod logs of one region. logs holds each
// pod's log; with follow, a pod's log stays open after it (until the
// client goes); stall makes every request wait until the client goes.
type fakeAPI struct {
	t      *testing.T
	logs   map[string]string
	follow bool
	stall  bool
	mu     sync.Mutex
	asked  []string // query strings of the log requests
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.stall {
		<-r.Context().Done()
		return
	}
	const prefix = "/api/v1/namespaces/kubecdn/pods"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if rest == "" {
		if r.URL.Query().Get("labelSelector") != "app.kubernetes.io/name=kubecdn-edge,kubecdn.io/cdn=demo" {
			f.t.Errorf("pods listed with %q", r.URL.RawQuery)
		}
		list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
		f.mu.Lock()
		for name := range f.logs {
			list.Items = append(list.Items, *edgePod(name, "demo"))
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(list)
		return
	}
	name, ok := strings.CutSuffix(strings.TrimPrefix(rest, "/"), "/log")
	if !ok {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.asked = append(f.asked, r.URL.RawQuery)
	log := f.logs[name]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	for _, l := range strings.SplitAfter(log, "\n") {
		fmt.Fprint(w, l)
		w.(http.Flusher).Flush()
	}
	if f.follow {
		<-r.Context().Done()
	}
}

func startFakeAPI(t *testing.T, f *fakeAPI) string {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// accessLine is an access log line at second sec of a fixed minute.
func accessLine(sec, ms int, edge string) string {
	r := accesslog.Record{Time: time.Date(2026, 12, 6, 1, 0, sec, ms*1e6, time.UTC), Method: "GET", URL: "/" + edge, Status: 200, Cache: accesslog.Hit}
	return string(r.AppendJSON(nil, accesslog.AppendString(nil, edge), []byte(`"r"`))) + "\n"
}

func connectByContext(t *testing.T, hosts map[string]string) func(config.Cluster) (kubernetes.Interface, error) {
	return func(c config.Cluster) (kubernetes.Interface, error) {
		h, ok := hosts[c.Context]
		if !ok {
			return nil, errors.New("no such context")
		}
		return kubernetes.NewForConfig(&rest.Config{Host: h})
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestLogsMergesRegions: two regions' three edges, read through client-go
// from fake API servers, come out as one stream in time order, without the
// edges' other lines; a region whose API server refuses connections and one
// that never answers are reported on stderr, within the timeout, while the
// others' lines are all written.
func TestLogsMergesRegions(t *testing.T) {
	cfg := logsTestCDN(t)
	east := startFakeAPI(t, &fakeAPI{logs: map[string]string{
		"kubecdn-edge-0": accessLine(1, 0, "e0") + "time=2026-12-06T01:00:02Z level=INFO msg=\"edge serving\"\n" + accessLine(4, 0, "e0") + accessLine(4, 500, "e0"),
		"kubecdn-edge-1": accessLine(2, 0, "e1") + accessLine(3, 0, "e1") + accessLine(9, 0, "e1"),
	}})
	west := startFakeAPI(t, &fakeAPI{logs: map[string]string{"kubecdn-edge-0": accessLine(0, 0, "w0") + accessLine(4, 250, "w0") + accessLine(5, 0, "w0")}})
	stalled := startFakeAPI(t, &fakeAPI{stall: true})
	var stdout, stderr bytes.Buffer
	o := logsOptions{since: 10 * time.Minute, namespace: render.DefaultNamespace, timeout: 500 * time.Millisecond, window: time.Second,
		connect: connectByContext(t, map[string]string{"eks-us-east-1": east, "eks-us-west-2": west, "gke-europe-west1": closedAddr(t), "": stalled})}
	start := time.Now()
	err := streamLogs(context.Background(), cfg, o, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "2 of 4 regions") {
		t.Errorf("error %v, want 2 of 4 regions unread", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a 500ms timeout", d)
	}
	for _, region := range []string{"eu-west-1", "onprem-paris"} {
		if !strings.Contains(stderr.String(), "region "+region+": ") {
			t.Errorf("stderr %q does not report region %s", stderr.String(), region)
		}
	}
	want := accessLine(0, 0, "w0") + accessLine(1, 0, "e0") + accessLine(2, 0, "e1") + accessLine(3, 0, "e1") +
		accessLine(4, 0, "e0") + accessLine(4, 250, "w0") + accessLine(4, 500, "e0") + accessLine(5, 0, "w0") + accessLine(9, 0, "e1")
	if stdout.String() != want {
		t.Errorf("merged:\n%s\nwant:\n%s", stdout.String(), want)
	}
}

// TestLogsFollow: with --follow, lines of open streams go out in time order
// once the window has passed, while the streams stay open; a pod that
// starts later is found when the pods are listed again; the command ends
// with its context.
func TestLogsFollow(t *testing.T) {
	cfg := logsTestCDN(t)
	f := &fakeAPI{follow: true, logs: map[string]string{"kubecdn-edge-0": accessLine(3, 0, "a"), "kubecdn-edge-1": accessLine(1, 0, "b") + accessLine(2, 0, "b")}}
	api := startFakeAPI(t, f)
	out := &lockedBuffer{}
	var stderr bytes.Buffer
	o := logsOptions{region: "us-east-1", follow: true, namespace: render.DefaultNamespace, timeout: 2 * time.Second, window: 200 * time.Millisecond, relist: 100 * time.Millisecond,
		connect: connectByContext(t, map[string]string{"eks-us-east-1": api})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- streamLogs(ctx, cfg, o, out, &stderr) }()
	waitOut := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); out.String() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("followed:\n%s\nwant:\n%s\nstderr: %s", out.String(), want, stderr.String())
			}
		}
	}
	want := accessLine(1, 0, "b") + accessLine(2, 0, "b") + accessLine(3, 0, "a")
	waitOut(want)
	f.mu.Lock()
	f.logs["kubecdn-edge-2"] = accessLine(7, 0, "c")
	f.mu.Unlock()
	waitOut(want + accessLine(7, 0, "c"))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still following 5s after its context ended")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.asked {
		if !strings.Contains(q, "follow=true") || !strings.Contains(q, "container=edge") || strings.Contains(q, "sinceSeconds") {
			t.Errorf("log asked with %q", q)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
