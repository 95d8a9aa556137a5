package autoscale

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecdn/kubecdn/internal/kubetest"
)

// TestKubeStoreAndLease: the state survives a new autoscaler in a real
// kube-apiserver's ConfigMap, and of two autoscalers one leads, the other
// taking over as soon as the first stops.
func TestKubeStoreAndLease(t *testing.T) {
	c := kubetest.Start(t, "us-east-1")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubecdn"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := KubeStore{Client: c.Client, Namespace: "kubecdn", Name: "kubecdn-autoscaler"}
	if st, err := store.Load(ctx); err != nil || len(st.Regions) != 0 {
		t.Fatalf("fresh load = %+v, %v", st, err)
	}
	// A controller on the cluster's store opens eu; a second one on the
	// same store starts with eu open and the decision behind it.
	h := newHarness(t, t.TempDir()+"/unused")
	h.c.Store = store
	if err := h.c.Load(ctx, []Region{{Name: "us", AlwaysOn: true, Phase: Open}, {Name: "eu", Phase: Closed}}); err != nil {
		t.Fatal(err)
	}
	h.src.set(map[string]float64{"eu": 80}, nil)
	h.ticks(t, 80*time.Second)
	if p := h.phase("eu"); p != Open {
		t.Fatalf("eu is %s", p)
	}
	next := &Controller{Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	if err := next.Load(ctx, []Region{{Name: "us", AlwaysOn: true, Phase: Open}, {Name: "eu", Phase: Closed}, {Name: "ap", Phase: Closed}}); err != nil {
		t.Fatal(err)
	}
	st, _, _ := next.Snapshot()
	if len(st.Regions) != 3 || st.Regions[1].Phase != Open || !st.Regions[1].InDNS || st.Regions[2].Phase != Closed || len(st.Decisions) != 1 {
		t.Fatalf("resumed state = %+v", st)
	}

	// Two electors: one leads; stopping it hands over.
	var mu sync.Mutex
	leading := map[string]bool{}
	elect := func(id string) context.CancelFunc {
		ectx, stop := context.WithCancel(ctx)
		go Lead(ectx, c.Client, "kubecdn", "kubecdn-autoscaler", id, func(lctx context.Context) {
			mu.Lock()
			leading[id] = true
			mu.Unlock()
			<-lctx.Done()
			mu.Lock()
			leading[id] = false
			mu.Unlock()
		})
		return stop
	}
	leaders := func() (n int, who string) {
		mu.Lock()
		defer mu.Unlock()
		for id, on := range leading {
			if on {
				n, who = n+1, id
			}
		}
		return
	}
	stopA, stopB := elect("a"), elect("b")
	defer stopB()
	waitFor(t, 20*time.Second, "a leader", func() bool { n, _ := leaders(); return n == 1 })
	time.Sleep(3 * RetryPeriod)
	n, first := leaders()
	if n != 1 {
		t.Fatalf("%d leaders", n)
	}
	if first == "a" {
		stopA()
	} else {
		stopB()
		stopB = stopA
	}
	start := time.Now()
	waitFor(t, LeaseDuration, "the other to take over", func() bool { n, who := leaders(); return n == 1 && who != first })
	t.Logf("takeover after the leader stopped: %s", time.Since(start).Round(time.Millisecond))
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("no %s within %s", what, d)
}
