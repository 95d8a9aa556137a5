package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// cdnLoop returns the Cdn-Loop entries (ids) an origin request carried.
func cdnLoop(r originReq) []string {
	var ids []string
	for _, v := range r.header.Values("Cdn-Loop") {
		for _, p := range strings.Split(v, ",") {
			id, _, _ := strings.Cut(p, ";")
			ids = append(ids, strings.TrimSpace(id))
		}
	}
	return ids
}

func namedOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "content of %s", r.URL.Path)
	})
}

// TestPeers runs three edges as peers of one another: every key is fetched
// from the origin once whichever edge is asked, and when the owner of a key
// dies the others fall back to the origin.
func TestPeers(t *testing.T) {
	const host = "www.example.com"
	o := namedOrigin(t)
	addrs := []string{e2e.FreeAddr(t), e2e.FreeAddr(t), e2e.FreeAddr(t)}
	var urls []string
	for _, a := range addrs {
		urls = append(urls, "http://"+a)
	}
	var edges []*edgetest.Edge
	for i, a := range addrs {
		edges = append(edges, kubecdn.Launch(t, edgetest.Options{Origin: o.URL, Listen: a,
			Args: []string{"--peers", strings.Join(urls, ","), "--self", urls[i]}}))
	}
	for _, e := range edges {
		if err := e.WaitReady(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient()
	owners := map[string][]string{} // edge id -> keys it fetched from the origin
	for k := range 9 {
		path := fmt.Sprintf("/peer/%d", k)
		for i, e := range edges {
			r := get(t, c, e.URL(), path, host)
			if r.status != 200 || string(r.body) != "content of "+path {
				t.Fatalf("%s from edge %d: %d %q", path, i, r.status, r.body)
			}
		}
		reqs := o.requests(path)
		if len(reqs) != 1 {
			t.Errorf("%s: origin saw %d requests across three edges, want 1", path, len(reqs))
			continue
		}
		loop := cdnLoop(reqs[0])
		if len(loop) == 0 {
			t.Fatalf("%s: no Cdn-Loop header at the origin", path)
		}
		owner := loop[len(loop)-1]
		owners[owner] = append(owners[owner], path)
	}
	t.Logf("owners: %v", owners)
	if len(owners) < 2 {
		t.Errorf("9 keys all owned by %d edge(s): rendezvous hashing does not spread", len(owners))
	}

	// Kill an edge that owns keys; the survivors still serve everything.
	victim := -1
	for i, a := range addrs {
		if len(owners[a]) > 0 {
			victim = i
			break
		}
	}
	if victim < 0 {
		t.Fatalf("no owner among %v (Cdn-Loop ids: %v)", addrs, owners)
	}
	edges[victim].Kill()
	for k := range 15 {
		path := fmt.Sprintf("/after-kill/%d", k)
		for i, e := range edges {
			if i == victim {
				continue
			}
			r := get(t, c, e.URL(), path, host)
			if r.status != 200 || string(r.body) != "content of "+path {
				t.Errorf("%s from edge %d with edge %d dead: %d %q", path, i, victim, r.status, r.body)
			}
		}
		if n := o.count(path); n < 1 || n > 2 {
			t.Errorf("%s: origin saw %d requests, want 1 or 2", path, n)
		}
	}
	// The keys the dead edge owned are served too.
	for _, path := range owners[addrs[victim]] {
		for i, e := range edges {
			if i == victim {
				continue
			}
			if r := get(t, c, e.URL(), path, host); r.status != 200 || string(r.body) != "content of "+path {
				t.Errorf("%s (owned by the dead edge) from edge %d: %d %q", path, i, r.status, r.body)
			}
		}
	}
}

// TestParent puts a child edge in front of a parent edge: misses go through
// the parent, and a parent loop ends (508) instead of looping forever.
func TestParent(t *testing.T) {
	const host = "www.example.com"
	o := namedOrigin(t)
	parent := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
	child := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--parent", parent.URL()}})
	c := newClient()

	r := get(t, c, child.URL(), "/shielded", host)
	if r.status != 200 || string(r.body) != "content of /shielded" {
		t.Fatalf("through the parent: %d %q", r.status, r.body)
	}
	reqs := o.requests("/shielded")
	if len(reqs) != 1 {
		t.Fatalf("origin saw %d requests, want 1", len(reqs))
	}
	if loop := cdnLoop(reqs[0]); len(loop) != 2 || loop[0] != child.Listen || loop[1] != parent.Listen {
		t.Errorf("origin request's Cdn-Loop %v, want [child parent] = [%s %s]", loop, child.Listen, parent.Listen)
	}
	// The parent cached it on the way.
	if r := get(t, c, parent.URL(), "/shielded", host); !r.hit() {
		t.Errorf("parent did not cache what it fetched for the child: %q", r.cacheStatus())
	}
	// A second child miss is served by the parent's cache.
	child2 := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--parent", parent.URL()}})
	if r := get(t, c, child2.URL(), "/shielded", host); r.status != 200 || o.count("/shielded") != 1 {
		t.Errorf("second child: %d, origin count %d", r.status, o.count("/shielded"))
	}
	// Parent down: the child goes to the origin.
	parent.Kill()
	if r := get(t, c, child.URL(), "/parent-down", host); r.status != 200 || string(r.body) != "content of /parent-down" {
		t.Errorf("parent down: %d %q", r.status, r.body)
	}

	t.Run("loop", func(t *testing.T) {
		aAddr, bAddr := e2e.FreeAddr(t), e2e.FreeAddr(t)
		a := kubecdn.Launch(t, edgetest.Options{Origin: o.URL, Listen: aAddr, Args: []string{"--parent", "http://" + bAddr}})
		b := kubecdn.Launch(t, edgetest.Options{Origin: o.URL, Listen: bAddr, Args: []string{"--parent", "http://" + aAddr}})
		for _, e := range []*edgetest.Edge{a, b} {
			if err := e.WaitReady(10 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		// A request that already passed through A is refused by A.
		req, _ := http.NewRequest(http.MethodGet, a.URL()+"/looped", nil)
		req.Header.Set("Cdn-Loop", "other, "+aAddr)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusLoopDetected {
			t.Errorf("request carrying our own Cdn-Loop id: %d, want 508", resp.StatusCode)
		}
		// A -> B -> A: the loop is cut; the client gets 508, or the body
		// when the edge that saw the 508 fell back to the origin, but never
		// an endless chain of requests.
		c2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
		start := time.Now()
		resp, err = c2.Get(a.URL() + "/loop")
		if err != nil {
			t.Fatalf("A->B->A: %v (after %v)", err, time.Since(start))
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("A->B->A: %d %q, Cache-Status %q", resp.StatusCode, body, resp.Header.Values("Cache-Status"))
		switch {
		case resp.StatusCode == http.StatusLoopDetected:
		case resp.StatusCode == 200 && string(body) == "content of /loop":
		default:
			t.Errorf("A->B->A: %d %q, want 508 (or the origin's body)", resp.StatusCode, body)
		}
		if n := o.count("/loop"); n > 2 {
			t.Errorf("origin saw %d requests for one looping request", n)
		}
		time.Sleep(200 * time.Millisecond)
		for _, e := range []*edgetest.Edge{a, b} {
			e.MustBeHealthy(t)
		}
	})
}
