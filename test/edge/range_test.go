package edge_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

// curlGet runs `curl -r rng` against url with Host host and returns the
// status, headers (lower-case names) and body.
func curlGet(t *testing.T, url, host, rng string) (int, http.Header, []byte) {
	t.Helper()
	dir := t.TempDir()
	hf, bf := filepath.Join(dir, "h"), filepath.Join(dir, "b")
	args := []string{"-D", hf, "-o", bf, "-H", "Host: " + host}
	if rng != "" {
		args = append(args, "-r", rng)
	}
	curl(t, append(args, url)...)
	raw, err := os.ReadFile(hf)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(bf)
	if err != nil {
		body = nil // curl writes no file for an empty body
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\r\n")
	var code int
	fmt.Sscanf(lines[0], "HTTP/1.1 %d", &code)
	h := http.Header{}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h.Add(k, strings.TrimSpace(v))
		}
	}
	return code, h, body
}

var rangeRE = regexp.MustCompile(`^bytes=(\d+)-(\d+)$`)

// TestRangeSlices seeks into the middle of a 64 MiB object with 1 MiB
// slices: the answer is a correct 206 and the origin is asked only for the
// slices the range needs.
func TestRangeSlices(t *testing.T) {
	curlPath(t)
	const (
		size  = 64 << 20
		slice = 1 << 20
		host  = "video.example"
	)
	big := content("/big.mp4", size)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"big-v1"`)
		w.Header().Set("Content-Type", "video/mp4")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(big))
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--slice", "1MiB", "--memory", "256MiB"}})

	// A seek across the boundary of slices 31 and 32.
	a, b := int64(32*slice-1000), int64(32*slice+5000)
	code, h, body := curlGet(t, e.URL()+"/big.mp4", host, fmt.Sprintf("%d-%d", a, b))
	if code != http.StatusPartialContent {
		t.Fatalf("status %d, want 206 (headers %v)", code, h)
	}
	if want := fmt.Sprintf("bytes %d-%d/%d", a, b, size); h.Get("Content-Range") != want {
		t.Errorf("Content-Range %q, want %q", h.Get("Content-Range"), want)
	}
	if !bytes.Equal(body, big[a:b+1]) {
		t.Errorf("wrong bytes: got %d bytes", len(body))
	}
	slices := func() map[int64]int {
		seen := map[int64]int{}
		for _, r := range o.requests("/big.mp4") {
			m := rangeRE.FindStringSubmatch(r.header.Get("Range"))
			if m == nil {
				t.Errorf("origin saw a request without a single closed range: Range %q", r.header.Get("Range"))
				continue
			}
			var lo, hi int64
			fmt.Sscan(m[1], &lo)
			fmt.Sscan(m[2], &hi)
			if lo%slice != 0 || (hi+1)%slice != 0 {
				t.Errorf("origin saw a range that is not whole slices: %s", m[0])
			}
			for i := lo / slice; i <= hi/slice; i++ {
				seen[i]++
			}
		}
		return seen
	}
	if got := slices(); len(got) != 2 || got[31] != 1 || got[32] != 1 {
		t.Errorf("origin slice requests %v, want slices 31 and 32 once each", got)
	}

	// Another range in slices already cached: no origin request at all.
	before := o.count("/big.mp4")
	a, b = 31*slice+10, 32*slice+10
	code, h, body = curlGet(t, e.URL()+"/big.mp4", host, fmt.Sprintf("%d-%d", a, b))
	if code != http.StatusPartialContent || !bytes.Equal(body, big[a:b+1]) || !strings.Contains(h.Get("Cache-Status"), "hit") {
		t.Errorf("cached range: %d, %d bytes, Cache-Status %q", code, len(body), h.Get("Cache-Status"))
	}
	if o.count("/big.mp4") != before {
		t.Errorf("a range within cached slices went to the origin")
	}

	// A suffix range: the last 100 bytes, one more slice.
	code, h, body = curlGet(t, e.URL()+"/big.mp4", host, "-100")
	if code != http.StatusPartialContent || !bytes.Equal(body, big[size-100:]) ||
		h.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", size-100, size-1, size) {
		t.Errorf("suffix range: %d, %d bytes, Content-Range %q", code, len(body), h.Get("Content-Range"))
	}
	if got := slices(); len(got) != 3 || got[63] != 1 {
		t.Errorf("after a suffix range the origin slice requests are %v, want 31, 32 and 63", got)
	}

	// Unsatisfiable ranges: 416 with bytes */SIZE, cached and cold.
	for _, path := range []string{"/big.mp4", "/cold.mp4"} {
		code, h, _ = curlGet(t, e.URL()+path, host, fmt.Sprintf("%d-", size))
		if code != http.StatusRequestedRangeNotSatisfiable || h.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("%s: range past the end: %d, Content-Range %q, want 416 and bytes */%d", path, code, h.Get("Content-Range"), size)
		}
	}

	// A HEAD of the whole object says its length without fetching it.
	before = o.count("/big.mp4")
	req, _ := http.NewRequest(http.MethodHead, e.URL()+"/big.mp4", nil)
	req.Host = host
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != size {
		t.Errorf("HEAD: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	if o.count("/big.mp4") != before {
		t.Errorf("HEAD of a cached sliced object went to the origin")
	}

	// The whole object: the missing slices are fetched once each.
	r := get(t, newClient(), e.URL(), "/big.mp4", host)
	if r.status != 200 || r.err != nil || !bytes.Equal(r.body, big) {
		t.Errorf("whole object: %d, %d bytes, err %v", r.status, len(r.body), r.err)
	}
	got := slices()
	for i := range int64(size / slice) {
		if got[i] != 1 {
			t.Errorf("slice %d fetched %d times, want once", i, got[i])
		}
	}
}

// TestRangeObjectChanges changes the object at the origin (new ETag, same
// size) between slices: the edge must never serve a mix of the two versions.
func TestRangeObjectChanges(t *testing.T) {
	const (
		size  = 8 << 20
		slice = 1 << 20
	)
	v1, v2 := content("/v1", size), content("/v2", size)
	var version atomic.Int32
	version.Store(1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, tag := v1, `"one"`
		if version.Load() == 2 {
			body, tag = v2, `"two"`
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", tag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--slice", "1MiB"}})
	c := newClient()

	// Cache slice 2 of version 1.
	a, b := int64(2*slice+100), int64(2*slice+200)
	r := get(t, c, e.URL(), "/obj", "", "Range", fmt.Sprintf("bytes=%d-%d", a, b))
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, v1[a:b+1]) {
		t.Fatalf("first range: %d, %d bytes", r.status, len(r.body))
	}
	version.Store(2)

	// A range over slices 2 (cached, v1) and 3 (to fetch, now v2).
	pure := func(what string, body []byte, lo int64) {
		t.Helper()
		hi := lo + int64(len(body))
		switch {
		case bytes.Equal(body, v1[lo:hi]):
			t.Logf("%s: version 1", what)
		case bytes.Equal(body, v2[lo:hi]):
			t.Logf("%s: version 2", what)
		default:
			t.Errorf("%s: MIXED or wrong bytes served (%d bytes)", what, len(body))
		}
	}
	a, b = 2*slice+10, 4*slice-10
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, e.URL()+"/obj", nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", a, b))
		resp, err := c.Do(req)
		if err != nil {
			t.Logf("attempt %d: aborted before the header: %v", i, err)
			continue
		}
		var buf bytes.Buffer
		_, rerr := buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent {
			t.Errorf("attempt %d: status %d", i, resp.StatusCode)
			continue
		}
		// Even an aborted transfer must not have carried mixed bytes.
		pure(fmt.Sprintf("attempt %d (read err %v)", i, rerr), buf.Bytes(), a)
		if rerr == nil && int64(buf.Len()) != b-a+1 {
			t.Errorf("attempt %d: %d bytes, want %d", i, buf.Len(), b-a+1)
		}
	}
	// Once the edge noticed, it serves the new version, whole and right.
	r = get(t, c, e.URL(), "/obj", "")
	if r.status != 200 || r.err != nil || !bytes.Equal(r.body, v2) {
		t.Errorf("whole object after the change: %d, %d bytes, err %v, equal v1 %v", r.status, len(r.body), r.err, bytes.Equal(r.body, v1))
	}
	r = get(t, c, e.URL(), "/obj", "", "Range", fmt.Sprintf("bytes=%d-%d", a, b))
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, v2[a:b+1]) {
		t.Errorf("range after the change: %d, %d bytes, equal v1 %v", r.status, len(r.body), bytes.Equal(r.body, v1[a:b+1]))
	}
}
