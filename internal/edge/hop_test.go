package edge

import (
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/httpcache"
)

func TestVerifyHop(t *testing.T) {
	key, other := []byte("0123456789abcdef-region-key"), []byte("fedcba9876543210-another-key")
	now := time.Unix(1767225600, 0)
	fwd := http.Header{"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"www.example.com"}}
	sign := func(k []byte, kind string, at time.Time) string {
		return signHop(k, kind, at, "GET", "www.example.com", "/a?b=1", fwd)
	}
	with := func(k, v string) http.Header {
		h := fwd.Clone()
		h.Set(k, v)
		return h
	}
	good := sign(key, "peer", now)
	for _, tc := range []struct {
		name           string
		keys           [][]byte
		value          string
		method, target string
		h              http.Header
		want           string
	}{
		{"valid peer", [][]byte{key}, good, "GET", "/a?b=1", fwd, "peer"},
		{"valid child", [][]byte{key}, sign(key, "child", now), "GET", "/a?b=1", fwd, "child"},
		{"second key verifies (rotation)", [][]byte{other, key}, good, "GET", "/a?b=1", fwd, "peer"},
		{"no keys: nobody is an edge", nil, good, "GET", "/a?b=1", fwd, ""},
		{"wrong key", [][]byte{other}, good, "GET", "/a?b=1", fwd, ""},
		{"bare kind, as a client would send", [][]byte{key}, "child", "GET", "/a?b=1", fwd, ""},
		{"empty", [][]byte{key}, "", "GET", "/a?b=1", fwd, ""},
		{"too old", [][]byte{key}, sign(key, "peer", now.Add(-61*time.Second)), "GET", "/a?b=1", fwd, ""},
		{"too far ahead", [][]byte{key}, sign(key, "peer", now.Add(61*time.Second)), "GET", "/a?b=1", fwd, ""},
		{"within the window", [][]byte{key}, sign(key, "peer", now.Add(-59*time.Second)), "GET", "/a?b=1", fwd, "peer"},
		{"other method", [][]byte{key}, good, "POST", "/a?b=1", fwd, ""},
		{"other target", [][]byte{key}, good, "GET", "/a?b=2", fwd, ""},
		{"X-Forwarded-Host replaced", [][]byte{key}, good, "GET", "/a?b=1", with("X-Forwarded-Host", "evil.example"), ""},
		{"X-Forwarded-Proto replaced", [][]byte{key}, good, "GET", "/a?b=1", with("X-Forwarded-Proto", "http"), ""},
		{"X-Forwarded-For replaced", [][]byte{key}, good, "GET", "/a?b=1", with("X-Forwarded-For", "10.0.0.1"), ""},
		{"kind changed", [][]byte{key}, strings.Replace(good, "peer;", "child;", 1), "GET", "/a?b=1", fwd, ""},
		{"unknown kind", [][]byte{key}, signHop(key, "admin", now, "GET", "www.example.com", "/a?b=1", fwd), "GET", "/a?b=1", fwd, ""},
		{"time not canonical", [][]byte{key}, strings.Replace(good, "t=", "t=+", 1), "GET", "/a?b=1", fwd, ""},
		{"short mac", [][]byte{key}, "peer; t=1767225600; mac=" + base64.RawURLEncoding.EncodeToString([]byte("short")), "GET", "/a?b=1", fwd, ""},
		{"extra part", [][]byte{key}, good + "; x=1", "GET", "/a?b=1", fwd, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := verifyHop(tc.keys, tc.value, now, tc.method, "www.example.com", tc.target, tc.h); got != tc.want {
				t.Errorf("verifyHop(%q) = %q, want %q", tc.value, got, tc.want)
			}
		})
	}
	// Another Host is another request.
	if got := verifyHop([][]byte{key}, good, now, "GET", "evil.example", "/a?b=1", fwd); got != "" {
		t.Errorf("verified for another Host: %q", got)
	}
}

func TestClientMayNotSend(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop bool
	}{
		{"Kubecdn-Hop", true}, {"X-Forwarded-Host", true}, {"X-Forwarded-Proto", true}, {"X-Forwarded-For", true},
		{"X-Forwarded-Port", true}, {"X-Forwarded-Prefix", true}, {"X-Forwarded-Server", true}, {"X-Forwarded-Anything", true},
		{"Forwarded", true}, {"X-Original-Url", true}, {"X-Rewrite-Url", true}, {"X-Http-Method-Override", true},
		{"X-Host", true}, {"X-Original-Host", true}, {"X-Real-Ip", true}, {"Surrogate-Capability", true},
		{"X_forwarded_host", true}, {"X_Forwarded_Host", true}, {"Kubecdn_hop", true}, {"My_header", true},
		{"Accept", false}, {"Cookie", false}, {"Cdn-Loop", false}, {"X-Request-Id", false}, {"X-Forwardedness", false},
		{"User-Agent", false}, {"If-None-Match", false},
	} {
		if got := clientMayNotSend(tc.name); got != tc.drop {
			t.Errorf("clientMayNotSend(%q) = %v, want %v", tc.name, got, tc.drop)
		}
	}
}

// headerPool is what the property test draws client fields from: every
// spelling an origin might read as a forwarding field, fields that must
// pass, the hop field, and two names the edge is told to pass.
var headerPool = []string{
	"X-Forwarded-Host", "x-forwarded-proto", "X-Forwarded-For", "X_Forwarded_Host", "x_forwarded_proto", "X-FORWARDED-PORT",
	"Forwarded", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override",
	"X-Host", "X-Original-Host", "X-Real-IP", "Kubecdn-Hop", "Kubecdn_Hop", "Surrogate-Capability",
	"Accept", "Accept-Language", "X-Custom", "X-Request-Id", "Cookie", "Cdn-Loop", "X-Forwardedness",
	"My_Header", "X-Pass-Me", "x-pass-me",
}

// passed are the Config.PassHeaders of the property test.
var passed = []string{"X-Pass-Me", "My_Header", "X-Forwarded-Prefix"}

// TestUpstreamHeaderProperty sends requests with random sets of fields
// through the edge and checks that what reaches the origin is exactly the
// allowed set: from a client, its fields minus the dropped ones (unless
// passed by name) plus the edge's own forwarding fields with the edge's
// values; from an edge with a valid hop MAC, its fields as they are.
func TestUpstreamHeaderProperty(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{}
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	})
	key := "property-test-hop-key-0123456789"
	e := startEdge(t, Config{Origin: origin.URL, HopKeys: []string{key}, PassHeaders: passed})
	host := strings.TrimPrefix(e.url, "http://")
	pass := canonicalPass(passed)
	client := &http.Transport{Proxy: nil, DisableCompression: true}
	t.Cleanup(client.CloseIdleConnections)
	rng := rand.New(rand.NewPCG(18, 2026))
	for i := range 200 {
		path := fmt.Sprintf("/p%d", i)
		req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = http.Header{"User-Agent": {"property"}}
		for _, n := range headerPool {
			if rng.IntN(3) == 0 {
				req.Header[n] = []string{fmt.Sprintf("v%d", rng.IntN(100))}
			}
		}
		trusted := rng.IntN(4) == 0
		if trusted {
			delete(req.Header, "Kubecdn_Hop")
			for k := range req.Header {
				if strings.EqualFold(k, "Kubecdn-Hop") {
					delete(req.Header, k)
				}
			}
			// The MAC covers the forwarding fields as the edge will read
			// them: canonical keys.
			canon := http.Header{}
			for k, v := range req.Header {
				canon[textproto.CanonicalMIMEHeaderKey(k)] = v
			}
			req.Header = canon
			req.Header.Set("Kubecdn-Hop", signHop([]byte(key), "child", time.Now(), http.MethodGet, host, path, canon))
		}
		sent := map[string]bool{}
		for k := range req.Header {
			sent[textproto.CanonicalMIMEHeaderKey(k)] = true
		}
		resp, err := client.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		mu.Lock()
		got := seen[path]
		mu.Unlock()
		want := map[string]bool{"Surrogate-Capability": true, "Cdn-Loop": true}
		for k := range sent {
			switch {
			case k == hopHeader:
			case trusted || pass[k] || !clientMayNotSend(k):
				want[k] = true
			}
		}
		if !trusted {
			want["X-Forwarded-For"], want["X-Forwarded-Proto"], want["X-Forwarded-Host"] = true, true, true
		}
		gotNames := slices.Sorted(maps.Keys(got))
		wantNames := slices.Sorted(maps.Keys(want))
		if !slices.Equal(gotNames, wantNames) {
			t.Fatalf("request %d (trusted %v) sent %v\norigin got  %v\nwant        %v", i, trusted, slices.Sorted(maps.Keys(sent)), gotNames, wantNames)
		}
		if !trusted {
			// The edge's values, not the client's.
			if got.Get("X-Forwarded-For") != "127.0.0.1" || got.Get("X-Forwarded-Proto") != "http" || got.Get("X-Forwarded-Host") != host {
				t.Fatalf("request %d: forwarding fields %q %q %q", i, got.Get("X-Forwarded-For"), got.Get("X-Forwarded-Proto"), got.Get("X-Forwarded-Host"))
			}
		} else if sent["X-Forwarded-Host"] && got.Get("X-Forwarded-Host") != req.Header.Get("X-Forwarded-Host") {
			t.Fatalf("request %d: a trusted edge's X-Forwarded-Host was changed", i)
		}
	}
}

// TestCacheKeyProperty checks that the primary key of a request depends
// only on what httpcache.Key documents: the scheme of the connection, the
// Host and the normalised target. No field a client sends (forwarding
// fields, a hop field without a valid MAC) changes it.
func TestCacheKeyProperty(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", Origin: "http://127.0.0.1:1", HopKeys: []string{"key-key-key-key-key"}}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	rt := s.rt.Load()
	targets := []string{"/", "/a", "/a/../b", "/%2e%2e/secret", "/x/./y?q=1", "/a%2eb", "/a/b/..", "/../../etc/passwd"}
	hosts := []string{"www.example.com", "WWW.Example.com:80", "img.example.com"}
	rng := rand.New(rand.NewPCG(9, 11))
	for i := range 500 {
		target, host := targets[rng.IntN(len(targets))], hosts[rng.IntN(len(hosts))]
		r := httptest.NewRequest(http.MethodGet, "http://"+host+target, nil)
		r.Host = host
		for _, n := range headerPool {
			if rng.IntN(2) == 0 {
				v := []string{"https", "evil.example", "peer", "child; t=1; mac=AAAA", "/admin"}[rng.IntN(5)]
				r.Header[textproto.CanonicalMIMEHeaderKey(n)] = []string{v}
			}
		}
		ri := s.reqInfo(r, rt)
		want := httpcache.Key("http", host, httpcache.NormalizeTarget(target))
		if ri.pk != want || ri.fromEdge {
			t.Fatalf("request %d %s %s %v: key %q fromEdge %v, want %q", i, host, target, r.Header, ri.pk, ri.fromEdge, want)
		}
	}
}
