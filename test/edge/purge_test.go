package edge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

// purgeOrigin serves cacheable objects; /t/... carry tags.
func purgeOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"v1"`)
		switch r.URL.Path {
		case "/t/1":
			w.Header().Set("Surrogate-Key", "t1 common")
		case "/t/2":
			w.Header().Set("Cache-Tag", "t2,common")
		case "/t/3":
			w.Header().Set("Surrogate-Key", "t3")
		}
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "body of %s", r.URL.Path)
	})
}

// warm fetches paths twice and checks the second answer is a hit.
func warm(t *testing.T, base, host string, paths ...string) {
	t.Helper()
	c := newClient()
	for _, p := range paths {
		get(t, c, base, p, host)
		if r := get(t, c, base, p, host); !r.hit() {
			t.Fatalf("%s: second request not a hit: %q", p, r.cacheStatus())
		}
	}
}

// purgeOK purges with the right token and returns the purged count.
func purgeOK(t *testing.T, e *edgetest.Edge, req string) int {
	t.Helper()
	code, body := purge(t, e, "Bearer "+edgetest.AdminToken, req)
	if code != http.StatusOK {
		t.Fatalf("purge: status %d: %s", code, body)
	}
	var pr struct {
		Purged *int `json:"purged"`
	}
	if err := json.Unmarshal([]byte(body), &pr); err != nil || pr.Purged == nil {
		t.Fatalf("purge answer %q: not {\"purged\":N}: %v", body, err)
	}
	return *pr.Purged
}

// TestPurge checks the admin purge API: bearer token, bad bodies, and purge
// by URL, prefix and tag, hard and soft.
func TestPurge(t *testing.T) {
	o := purgeOrigin(t)
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--hostname", "www.example.com"}})
	const host = "www.example.com"
	c := newClient()

	t.Run("token", func(t *testing.T) {
		warm(t, e.URL(), host, "/a")
		body := `{"urls":["http://www.example.com/a"]}`
		for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + edgetest.AdminToken + "x", "Basic " + edgetest.AdminToken, "bearer" + edgetest.AdminToken, edgetest.AdminToken} {
			code, resp := purge(t, e, auth, body)
			if code != http.StatusUnauthorized {
				t.Errorf("Authorization %q: status %d (%s), want 401", auth, code, resp)
			}
		}
		if r := get(t, c, e.URL(), "/a", host); !r.hit() {
			t.Fatalf("an unauthorized purge removed the object: %q", r.cacheStatus())
		}
		if n := purgeOK(t, e, body); n != 1 {
			t.Errorf("purged %d, want 1", n)
		}
		r := get(t, c, e.URL(), "/a", host)
		if r.hit() || r.fwd() == "" || string(r.body) != "body of /a" {
			t.Errorf("after purge: Cache-Status %q body %q, want a miss with fwd=", r.cacheStatus(), r.body)
		}
		if n := o.count("/a"); n != 2 {
			t.Errorf("origin saw /a %d times, want 2", n)
		}
		// Purging what is not cached is fine and touches nothing.
		if n := purgeOK(t, e, `{"urls":["http://www.example.com/never"]}`); n != 0 {
			t.Errorf("purge of an uncached URL: purged %d", n)
		}
	})

	t.Run("bad body", func(t *testing.T) {
		cases := []struct {
			body, want string // want: a word the error must contain
		}{
			{`{`, "EOF"},
			{`not json`, "invalid"},
			{`{"urls":"http://www.example.com/a"}`, "urls"},
			{`{"url":["http://www.example.com/a"]}`, "url"},
			{`{}`, "nothing to purge"},
			{`{"urls":["/relative"]}`, "urls[0]"},
			{`{"prefixes":["ftp://www.example.com/"]}`, "prefixes[0]"},
			{`{"tags":[""]}`, "tags[0]"},
			{`{"soft":"yes","urls":["http://www.example.com/a"]}`, "soft"},
		}
		for _, tc := range cases {
			code, resp := purge(t, e, "Bearer "+edgetest.AdminToken, tc.body)
			if code != http.StatusBadRequest || !strings.Contains(resp, tc.want) {
				t.Errorf("body %s: %d %q, want 400 naming %q", tc.body, code, strings.TrimSpace(resp), tc.want)
			}
		}
	})

	t.Run("wrong method and path", func(t *testing.T) {
		resp, err := c.Get(e.AdminURL() + "/v1/purge")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("GET /v1/purge: %d, want 4xx", resp.StatusCode)
		}
		// The purge API is not on the public listener.
		req, _ := http.NewRequest(http.MethodPost, e.URL()+"/v1/purge", strings.NewReader(`{"tags":["common"]}`))
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+edgetest.AdminToken)
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if o.count("/v1/purge") != 1 {
			t.Errorf("a POST /v1/purge on the public listener was not simply forwarded to the origin")
		}
	})

	t.Run("prefix", func(t *testing.T) {
		warm(t, e.URL(), host, "/p/a", "/p/b", "/p/c/d", "/q/a", "/pp")
		n := purgeOK(t, e, `{"prefixes":["http://www.example.com/p/"]}`)
		if n != 3 {
			t.Errorf("purged %d, want 3", n)
		}
		for _, p := range []string{"/p/a", "/p/b", "/p/c/d"} {
			if r := get(t, c, e.URL(), p, host); r.hit() {
				t.Errorf("%s: still a hit after its prefix was purged", p)
			}
		}
		for _, p := range []string{"/q/a", "/pp"} {
			if r := get(t, c, e.URL(), p, host); !r.hit() {
				t.Errorf("%s: purged by a prefix that does not cover it: %q", p, r.cacheStatus())
			}
		}
	})

	t.Run("tag", func(t *testing.T) {
		warm(t, e.URL(), host, "/t/1", "/t/2", "/t/3")
		r := get(t, c, e.URL(), "/t/1", host)
		if r.header.Get("Surrogate-Key") != "" || r.header.Get("Cache-Tag") != "" {
			t.Errorf("tags leaked to the client: %v", r.header)
		}
		n := purgeOK(t, e, `{"tags":["common"]}`)
		if n != 2 {
			t.Errorf("purged %d by tag, want 2", n)
		}
		for _, p := range []string{"/t/1", "/t/2"} {
			if r := get(t, c, e.URL(), p, host); r.hit() || string(r.body) != "body of "+p {
				t.Errorf("%s: after tag purge: %q %q", p, r.cacheStatus(), r.body)
			}
		}
		if r := get(t, c, e.URL(), "/t/3", host); !r.hit() {
			t.Errorf("/t/3 purged by a tag it does not carry: %q", r.cacheStatus())
		}
		// The refetched objects carry their tags again.
		if n := purgeOK(t, e, `{"tags":["t2"]}`); n != 1 {
			t.Errorf("purge by t2 after refetch: purged %d, want 1", n)
		}
	})

	t.Run("soft", func(t *testing.T) {
		warm(t, e.URL(), host, "/s")
		n := purgeOK(t, e, `{"urls":["http://www.example.com/s"],"soft":true}`)
		if n != 1 {
			t.Errorf("soft purge touched %d, want 1", n)
		}
		before := o.count("/s")
		r := get(t, c, e.URL(), "/s", host)
		if r.status != 200 || string(r.body) != "body of /s" || r.hit() {
			t.Fatalf("after soft purge: %d %q %q", r.status, r.body, r.cacheStatus())
		}
		reqs := o.requests("/s")
		if len(reqs) != before+1 || reqs[len(reqs)-1].header.Get("If-None-Match") != `"v1"` {
			t.Errorf("soft purge: the next request did not revalidate with the stored ETag")
		}
		if r := get(t, c, e.URL(), "/s", host); !r.hit() {
			t.Errorf("after revalidation: not a hit: %q", r.cacheStatus())
		}
	})
}
