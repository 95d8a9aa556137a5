package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

// The differential test puts the edge in front of origins of every kind the
// edge must cope with (honouring or ignoring Range, chunked or sized, with
// and without validators, slow, stalling, closing early, changing the object
// between requests) and compares every byte every client receives with the
// origin's bytes of one version of the object. The cases are generated from
// a seed: KUBECDN_DIFF_SEED=N replays a run, KUBECDN_DIFF_OPS=N sets the
// number of random requests per origin kind and edge variant.

// originKind is one way an origin may behave. The flags combine; the table
// diffKinds lists the kinds the test runs.
type originKind struct {
	name    string
	ranges  bool          // answers one byte range with 206; else always 200 and the whole body
	chunked bool          // no Content-Length: the chunked transfer coding
	etag    bool          // sends an ETag
	lastMod bool          // sends Last-Modified
	piece   int           // bytes per write (0: 32 KiB)
	pause   time.Duration // sleep after every write: a slow origin
	stall   time.Duration // one pause in the middle of every body of 1 MiB or more
	// closeEarly cuts every other response (the first, third, ... for an
	// object): the header promises the whole length, the connection closes
	// at a random offset of the body.
	closeEarly bool
	// changeEvery makes a new version of the object (new ETag, new bytes,
	// same size) after this many requests for it; 0 never.
	changeEvery int
}

// mayFail says whether the edge may answer 502/504 or abort a response for
// this kind: only when the origin itself fails or changes the object under
// the edge. For every other kind an abort or a 5xx is a bug.
func (k originKind) mayFail() bool { return k.closeEarly || k.changeEvery > 0 }

// sizeKnown says whether the origin states the length up front, so the
// edge can answer a range request of a cold object with 206.
func (k originKind) sizeKnown() bool { return !k.chunked }

var diffKinds = []originKind{
	{name: "range-etag", ranges: true, etag: true, lastMod: true},
	{name: "range-novalidators", ranges: true},
	{name: "range-chunked", ranges: true, chunked: true, etag: true},
	// What `python3 -m http.server` does: no Range, Last-Modified only.
	{name: "norange-lastmod", lastMod: true},
	{name: "norange-chunked-novalidators", chunked: true},
	{name: "slow-norange", lastMod: true, piece: 16 << 10, pause: time.Millisecond},
	{name: "stalling-range", ranges: true, etag: true, stall: 700 * time.Millisecond},
	{name: "closing-early-norange", lastMod: true, closeEarly: true},
	{name: "closing-early-range", ranges: true, etag: true, closeEarly: true},
	{name: "changing-range", ranges: true, etag: true, changeEvery: 3},
	// A file replaced on a python-like origin: an edge that resumes a cut
	// fill by reading the whole body again must not splice two versions.
	{name: "changing-norange", lastMod: true, changeEvery: 2},
}

// edgeVariant is one way to run the edge.
type edgeVariant struct {
	name  string
	disk  bool   // a disk tier (--cache-dir, --disk)
	slice string // --slice; "" is the default
	uring string // --io-uring; "" is the default (auto)
}

func (v edgeVariant) sliceBytes() int {
	if v.slice == "256KiB" {
		return 256 << 10
	}
	return 4 << 20 // the edge's default
}

var diffVariants = []edgeVariant{
	{name: "memory"},
	{name: "memory-slice256k", slice: "256KiB"},
	{name: "disk", disk: true},
	{name: "disk-slice256k", disk: true, slice: "256KiB"},
	{name: "memory-iouringoff", uring: "off"},
	{name: "disk-slice256k-iouringoff", disk: true, slice: "256KiB", uring: "off"},
}

// maxVersions bounds the versions a changing object goes through.
const maxVersions = 4

// diffBodies are the bytes of one object, shared by the variants: one
// slice per version (one version unless the kind changes objects).
type diffBodies struct {
	size     int
	versions [][]byte
}

// diffObject is one object of the differential origin, with what the
// origin did for it.
type diffObject struct {
	path string
	kind originKind
	*diffBodies
	reqs atomic.Int64 // requests the origin saw
	sent atomic.Int64 // body bytes the origin wrote
	last atomic.Int64 // version of the last response
}

func (o *diffObject) etag(v int) string { return fmt.Sprintf(`"%s-v%d"`, strings.Trim(o.path, "/"), v) }

// lastModified is the Last-Modified of version v: an hour apart per version.
func lastModified(v int) time.Time {
	return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(v) * time.Hour)
}

// diffOrigin serves the objects of every kind, each under /KIND/ROLE.
type diffOrigin struct {
	*httptest.Server
	objects map[string]*diffObject // read only once the server runs
}

func newDiffOrigin(t *testing.T, objects map[string]*diffObject) *diffOrigin {
	t.Helper()
	d := &diffOrigin{objects: objects}
	d.Server = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.Close)
	return d
}

func (d *diffOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o := d.objects[r.URL.Path]
	if o == nil {
		http.NotFound(w, r)
		return
	}
	k := o.kind
	n := o.reqs.Add(1) - 1
	v := 0
	if k.changeEvery > 0 {
		v = min(int(n)/k.changeEvery, len(o.versions)-1)
	}
	o.last.Store(int64(v))
	body := o.versions[v]
	h := w.Header()
	h.Set("Cache-Control", "max-age=3600")
	h.Set("Content-Type", "application/octet-stream")
	if k.etag {
		h.Set("ETag", o.etag(v))
	}
	if k.lastMod {
		h.Set("Last-Modified", lastModified(v).Format(http.TimeFormat))
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if k.etag && strings.Contains(inm, o.etag(v)) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && k.lastMod && !lastModified(v).After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	status, lo, hi := http.StatusOK, 0, len(body)
	if k.ranges {
		h.Set("Accept-Ranges", "bytes")
		if rng := r.Header.Get("Range"); rng != "" {
			if a, b, unsat, ok := parseOneRange(rng, len(body)); ok {
				if unsat {
					h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					return
				}
				status, lo, hi = http.StatusPartialContent, a, b+1
				h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b, len(body)))
			}
		}
	}
	if !k.chunked {
		h.Set("Content-Length", strconv.Itoa(hi-lo))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	flusher, _ := w.(http.Flusher)
	if k.chunked && flusher != nil {
		flusher.Flush() // the header out now: chunked even for a small body
	}
	seg := body[lo:hi]
	cut := -1
	if k.closeEarly && n%2 == 0 && len(seg) > 0 {
		cut = rand.New(rand.NewPCG(hashOf(o.path), uint64(n))).IntN(len(seg))
	}
	stallAt := -1
	// Only long bodies stall: a stall mid-fill is the case, not a
	// latency added to every small slice fetch.
	if k.stall > 0 && len(seg) >= 1<<20 {
		stallAt = len(seg) / 2
	}
	piece := k.piece
	if piece == 0 {
		piece = 32 << 10
	}
	sleep := func(d time.Duration) bool {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-time.After(d):
			return true
		case <-r.Context().Done():
			return false
		}
	}
	for written := 0; written < len(seg); {
		if cut >= 0 && written >= cut {
			if flusher != nil {
				flusher.Flush()
			}
			// net/http closes the connection without ending the body:
			// the edge sees fewer bytes than the Content-Length.
			panic(http.ErrAbortHandler)
		}
		end := min(written+piece, len(seg))
		if cut >= 0 && end > cut {
			end = cut
		}
		if stallAt > written && end > stallAt {
			end = stallAt
		}
		m, err := w.Write(seg[written:end])
		o.sent.Add(int64(m))
		if err != nil {
			return
		}
		written = end
		if written == stallAt && !sleep(k.stall) {
			return
		}
		if k.pause > 0 && !sleep(k.pause) {
			return
		}
	}
}

// parseOneRange parses a Range header of one byte range against size: the
// inclusive bounds, or unsat; ok is false for anything else (several
// ranges, bad syntax), which an origin ignores.
func parseOneRange(v string, size int) (a, b int, unsat, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" {
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, true
		}
		return max(0, size-n), size - 1, false, true
	}
	a, err := strconv.Atoi(first)
	if err != nil || a < 0 {
		return 0, 0, false, false
	}
	b = size - 1
	if last != "" {
		if b, err = strconv.Atoi(last); err != nil || b < a {
			return 0, 0, false, false
		}
		b = min(b, size-1)
	}
	if a >= size {
		return 0, 0, true, true
	}
	return a, b, false, true
}

func hashOf(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// diffSeed is the run's seed: $KUBECDN_DIFF_SEED, else the clock.
func diffSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KUBECDN_DIFF_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KUBECDN_DIFF_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d: rerun this very case list with KUBECDN_DIFF_SEED=%d", seed, seed)
	return seed
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, s)
	}
	return n
}

// Object roles: the random requests pick among small, medium and large;
// solo gets one cold whole GET alone, herd a crowd of cold readers at once.
var diffRoles = []string{"small", "medium", "large", "solo", "herd"}

// roleSize draws the size of an object of a role.
func roleSize(r *rand.Rand, role string) int {
	switch role {
	case "small":
		return 1 + r.IntN(16<<10-1)
	case "medium":
		return 768<<10 + r.IntN(512<<10)
	default: // several MiB, more than the default slice of 4 MiB
		return 4<<20 + 256<<10 + r.IntN(1792<<10)
	}
}

// makeBodies draws every object's size and bytes from the seed, once for
// all the variants.
func makeBodies(seed uint64) map[string]*diffBodies {
	out := map[string]*diffBodies{}
	for _, k := range diffKinds {
		for _, role := range diffRoles {
			path := "/" + k.name + "/" + role
			r := rand.New(rand.NewPCG(seed, hashOf("size"+path)))
			b := &diffBodies{size: roleSize(r, role)}
			nv := 1
			if k.changeEvery > 0 {
				nv = maxVersions
			}
			for v := range nv {
				b.versions = append(b.versions, content(fmt.Sprintf("%s#%d@%d", path, v, seed), b.size))
			}
			out[path] = b
		}
	}
	return out
}

// TestDifferential runs every origin kind behind every edge variant: a cold
// whole GET alone, a crowd of cold readers, then random requests from 16
// clients at once, every answer checked byte for byte.
func TestDifferential(t *testing.T) {
	seed := diffSeed(t)
	ops := envInt(t, "KUBECDN_DIFF_OPS", 48)
	bodies := makeBodies(seed)
	for _, v := range diffVariants {
		t.Run(v.name, func(t *testing.T) {
			objects := map[string]*diffObject{}
			for _, k := range diffKinds {
				for _, role := range diffRoles {
					path := "/" + k.name + "/" + role
					objects[path] = &diffObject{path: path, kind: k, diffBodies: bodies[path]}
				}
			}
			d := newDiffOrigin(t, objects)
			// The objects of every kind (and every version of the changing
			// ones) come to about 250 MB: with the default 256 MiB tier the
			// memory tier would evict some during the run, and a later reader
			// would rightly fetch them again, which the origin-request bounds
			// below do not allow for. Eviction is tested on its own
			// (memory_test.go).
			args := []string{"--memory", "1GiB"}
			if v.disk {
				args = append(args, "--disk", "1GiB")
			}
			if v.slice != "" {
				args = append(args, "--slice", v.slice)
			}
			if v.uring != "" {
				args = append(args, "--io-uring", v.uring)
			}
			o := edgetest.Options{Origin: d.URL, Args: args}
			if v.disk {
				o.CacheDir = t.TempDir()
			}
			e := kubecdn.Start(t, o)
			if v.uring == "" && strings.Contains(e.Output(), "without io_uring") {
				t.Logf("io_uring is not available here: this variant runs without it")
			}
			// Every kind at once, as one edge would see them; the
			// reports become one sub-test per kind afterwards, so a
			// failure names the variant and the origin kind.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			runs := make([]*diffRun, len(diffKinds))
			var wg sync.WaitGroup
			for i, k := range diffKinds {
				runs[i] = &diffRun{
					kind: k, variant: v, edge: e.URL(), seed: seed, objects: objects,
					client: &http.Client{Transport: &http.Transport{
						Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16,
					}},
				}
				wg.Go(func() { runs[i].run(ctx, ops) })
			}
			wg.Wait()
			for _, r := range runs {
				t.Run(r.kind.name, r.report)
			}
		})
	}
}

// diffRun is one origin kind behind one edge variant.
type diffRun struct {
	kind    originKind
	variant edgeVariant
	edge    string
	seed    uint64
	objects map[string]*diffObject
	client  *http.Client

	mu       sync.Mutex
	failures []string
	notes    []string
	statuses map[int]int
	aborts   int // answers cut after the header, or no answer at all
	done     int
}

func (d *diffRun) obj(role string) *diffObject { return d.objects["/"+d.kind.name+"/"+role] }

func (d *diffRun) failf(format string, args ...any) {
	d.mu.Lock()
	d.failures = append(d.failures, fmt.Sprintf(format, args...))
	d.mu.Unlock()
}

func (d *diffRun) notef(format string, args ...any) {
	d.mu.Lock()
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
	d.mu.Unlock()
}

func (d *diffRun) rng(what string) *rand.Rand {
	return rand.New(rand.NewPCG(d.seed, hashOf(d.variant.name+"/"+d.kind.name+"/"+what)))
}

func (d *diffRun) run(ctx context.Context, ops int) {
	d.statuses = map[int]int{}
	d.coldSolo(ctx)
	d.coldHerd(ctx)
	d.randomOps(ctx, ops)
	// Warm: each object whole, then conditionally.
	for _, role := range []string{"small", "medium", "large"} {
		o := d.obj(role)
		d.do(ctx, reqSpec{obj: o, limit: -1, what: "warm whole GET"})
		d.do(ctx, d.condSpec(o, true, "warm conditional (matching)"))
	}
	if ctx.Err() != nil {
		d.failf("time budget of the variant ran out after %d requests: the edge is too slow or hangs", d.done)
	}
}

// coldSolo: one cold whole GET of a large object while nobody else asks
// makes exactly one origin request (not one per slice).
func (d *diffRun) coldSolo(ctx context.Context) {
	o := d.obj("solo")
	d.do(ctx, reqSpec{obj: o, limit: -1, what: "cold whole GET alone"})
	reqs, sent := o.reqs.Load(), o.sent.Load()
	d.notef("cold whole GET alone of %d bytes: %d origin request(s), %d bytes (%.2fx)", o.size, reqs, sent, float64(sent)/float64(o.size))
	if !d.kind.mayFail() && reqs != 1 {
		d.failf("cold whole GET alone of a %d-byte object made %d origin requests (%d bytes, %.2fx the object), want 1",
			o.size, reqs, sent, float64(sent)/float64(o.size))
	}
}

// coldHerd: 8 readers of one cold object at once, 4 whole and 4 random
// ranges. For an origin that ignores Range, they must share one fill: the
// origin sends the object about once.
func (d *diffRun) coldHerd(ctx context.Context) {
	o := d.obj("herd")
	r := d.rng("herd")
	specs := make([]reqSpec, 8)
	for i := range specs {
		specs[i] = reqSpec{obj: o, limit: -1, what: fmt.Sprintf("cold herd reader %d (whole)", i)}
		if i%2 == 1 {
			specs[i].rng = randRange(r, o.size, d.variant.sliceBytes())
			specs[i].what = fmt.Sprintf("cold herd reader %d (range)", i)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range specs {
		wg.Go(func() {
			<-start
			d.do(ctx, s)
		})
	}
	close(start)
	wg.Wait()
	sent := o.sent.Load()
	ratio := float64(sent) / float64(o.size)
	d.notef("cold herd of 8 readers of %d bytes: %d origin request(s), %d bytes (%.2fx)", o.size, o.reqs.Load(), sent, ratio)
	if !d.kind.ranges && !d.kind.mayFail() && ratio > 1.5 {
		d.failf("cold herd of 8 readers (4 whole, 4 ranges) made the origin send %.2fx the object (%d bytes in %d requests), want at most 1.5x: the readers did not share one fill",
			ratio, sent, o.reqs.Load())
	}
}

// randomOps runs ops random requests from 16 clients.
func (d *diffRun) randomOps(ctx context.Context, ops int) {
	const workers = 16
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := d.rng(fmt.Sprintf("worker %d", w))
			for i := w; i < ops; i += workers {
				if ctx.Err() != nil {
					return
				}
				d.do(ctx, d.randomSpec(r, fmt.Sprintf("worker %d op %d", w, i)))
			}
		})
	}
	wg.Wait()
}

func (d *diffRun) randomSpec(r *rand.Rand, who string) reqSpec {
	var o *diffObject
	switch x := r.IntN(10); {
	case x < 3:
		o = d.obj("small")
	case x < 6:
		o = d.obj("medium")
	default:
		o = d.obj("large")
	}
	switch x := r.IntN(20); {
	case x < 5:
		return reqSpec{obj: o, limit: -1, what: who + " whole GET"}
	case x < 12:
		return reqSpec{obj: o, limit: -1, rng: randRange(r, o.size, d.variant.sliceBytes()), what: who + " range"}
	case x < 16:
		s := reqSpec{obj: o, what: who + " abort"}
		if r.IntN(2) == 0 {
			s.rng = randRange(r, o.size, d.variant.sliceBytes())
		}
		s.limit = r.IntN(o.size) // hang up after this many body bytes (at most)
		return s
	default:
		return d.condSpec(o, r.IntN(2) == 0, who+" conditional")
	}
}

// condSpec is a conditional GET whose condition matches the object
// (matching) or not.
func (d *diffRun) condSpec(o *diffObject, matching bool, what string) reqSpec {
	s := reqSpec{obj: o, limit: -1, what: what}
	switch {
	case !matching:
		s.inm = `"no-such-tag"`
	case d.kind.etag:
		s.inm, s.condMatches = o.etag(int(o.last.Load())), true
	case d.kind.lastMod:
		s.ims, s.condMatches = lastModified(int(o.last.Load())).Format(http.TimeFormat), true
	default:
		s.inm = `"no-such-tag"` // no validators: nothing can match
	}
	return s
}

// randRange draws a Range header value for an object of size n; a third of
// the bounds sit at a slice boundary of size S, where the edge switches
// from one slice to the next.
func randRange(r *rand.Rand, n, S int) string {
	pick := func() int {
		if nb := (n - 1) / S; nb > 0 && r.IntN(3) == 0 {
			return max(0, min(n-1, S*(1+r.IntN(nb))+r.IntN(5)-2))
		}
		return r.IntN(n)
	}
	switch x := r.IntN(20); {
	case x == 0:
		return fmt.Sprintf("bytes=%d-", n+r.IntN(100)) // unsatisfiable
	case x < 4:
		return fmt.Sprintf("bytes=-%d", 1+r.IntN(n))
	case x < 8:
		return fmt.Sprintf("bytes=%d-", pick())
	default:
		a := pick()
		b := a + r.IntN(n-a)
		if r.IntN(3) == 0 {
			b = max(a, min(n-1, pick()))
		}
		return fmt.Sprintf("bytes=%d-%d", a, b)
	}
}

// reqSpec is one request of a client.
type reqSpec struct {
	obj         *diffObject
	rng         string // Range header, if any
	inm, ims    string // If-None-Match, If-Modified-Since, if any
	condMatches bool   // the condition matches the object: 304 expected
	limit       int    // hang up after this many body bytes; -1 reads all
	what        string
}

// perRequest bounds one request: longer than any stall of the origins, so
// a request that takes longer hangs.
const perRequest = 10 * time.Second

// do sends one request and checks everything about its answer.
func (d *diffRun) do(ctx context.Context, s reqSpec) {
	if ctx.Err() != nil {
		return
	}
	o, k := s.obj, d.kind
	desc := fmt.Sprintf("%s: GET %s", s.what, o.path)
	if s.rng != "" {
		desc += " Range: " + s.rng
	}
	if s.inm != "" {
		desc += " If-None-Match: " + s.inm
	}
	if s.ims != "" {
		desc += " If-Modified-Since: " + s.ims
	}
	desc += fmt.Sprintf(" (object %d bytes)", o.size)
	rctx, cancel := context.WithTimeout(ctx, perRequest)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, d.edge+o.path, nil)
	if err != nil {
		d.failf("%s: %v", desc, err)
		return
	}
	if s.rng != "" {
		req.Header.Set("Range", s.rng)
	}
	if s.inm != "" {
		req.Header.Set("If-None-Match", s.inm)
	}
	if s.ims != "" {
		req.Header.Set("If-Modified-Since", s.ims)
	}
	resp, err := d.client.Do(req)
	d.mu.Lock()
	d.done++
	d.mu.Unlock()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return // the variant's budget ran out; reported once
		case rctx.Err() != nil:
			d.failf("%s: no response header within %v: the edge hangs", desc, perRequest)
		case k.mayFail():
			d.countAbort()
		default:
			d.failf("%s: no response at all (empty reply: connection closed before a status line): %v", desc, err)
		}
		return
	}
	defer resp.Body.Close()
	var body []byte
	var rerr error
	if s.limit >= 0 {
		body, rerr = io.ReadAll(io.LimitReader(resp.Body, int64(s.limit)))
	} else {
		body, rerr = io.ReadAll(resp.Body)
	}
	d.mu.Lock()
	d.statuses[resp.StatusCode]++
	d.mu.Unlock()
	cs := resp.Header.Get("Cache-Status")
	desc += fmt.Sprintf(" -> %d, Content-Length %d, Cache-Status %q", resp.StatusCode, resp.ContentLength, cs)
	if rerr != nil && rctx.Err() != nil && ctx.Err() == nil {
		d.failf("%s: body not complete within %v (%d bytes; no origin stalls more than 700 ms): the edge hangs mid-body or fetches far too slowly", desc, perRequest, len(body))
		return
	}
	a, b, unsat, hasRange := 0, o.size-1, false, false
	if s.rng != "" {
		var ok bool
		a, b, unsat, ok = parseOneRange(s.rng, o.size)
		hasRange = ok
	}
	var off, want int // where the body starts in the object, and its length
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		if !k.mayFail() {
			d.failf("%s: %d from a well-behaved origin", desc, resp.StatusCode)
		}
		return
	case http.StatusNotModified:
		if !s.condMatches {
			d.failf("%s: 304 although the condition does not match", desc)
		}
		if len(body) != 0 {
			d.failf("%s: a 304 with %d body bytes", desc, len(body))
		}
		return
	case http.StatusRequestedRangeNotSatisfiable:
		if !unsat {
			d.failf("%s: 416 for a satisfiable range", desc)
		} else if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", o.size) {
			d.failf("%s: 416 with Content-Range %q, want bytes */%d", desc, cr, o.size)
		}
		return
	case http.StatusPartialContent:
		if !hasRange || unsat {
			d.failf("%s: 206 to a request without a satisfiable range", desc)
			return
		}
		cr := resp.Header.Get("Content-Range")
		if cr != fmt.Sprintf("bytes %d-%d/%d", a, b, o.size) && !(k.chunked && cr == fmt.Sprintf("bytes %d-%d/*", a, b)) {
			d.failf("%s: Content-Range %q, want bytes %d-%d/%d", desc, cr, a, b, o.size)
			return
		}
		off, want = a, b-a+1
	case http.StatusOK:
		if s.condMatches && !k.mayFail() {
			d.failf("%s: 200 where the condition matches (want 304)", desc)
		}
		if hasRange && k.sizeKnown() {
			d.failf("%s: 200 (the whole object) to a range request, where the size is known", desc)
		}
		off, want = 0, o.size
	default:
		d.failf("%s: unexpected status %d", desc, resp.StatusCode)
		return
	}
	if resp.ContentLength >= 0 && resp.ContentLength != int64(want) {
		d.failf("%s: Content-Length %d, want %d", desc, resp.ContentLength, want)
	}
	if v := matchVersion(o, off, body); v < 0 {
		d.failf("%s: WRONG BYTES: %s", desc, describeMismatch(o, off, body))
		return
	}
	switch {
	case rerr != nil && k.mayFail():
		d.countAbort()
	case rerr != nil:
		d.failf("%s: body aborted after %d of %d bytes (%d bytes into the object): %v", desc, len(body), want, off+len(body), rerr)
	case s.limit < 0 && len(body) != want:
		d.failf("%s: SHORT BODY passed off as whole: %d of %d bytes and a clean end", desc, len(body), want)
	}
}

func (d *diffRun) countAbort() {
	d.mu.Lock()
	d.aborts++
	d.mu.Unlock()
}

// matchVersion returns the version of o whose bytes at off equal body, or
// -1: a response must carry exactly one version's bytes.
func matchVersion(o *diffObject, off int, body []byte) int {
	if off < 0 || off+len(body) > o.size {
		return -1
	}
	for v, b := range o.versions {
		if bytes.Equal(b[off:off+len(body)], body) {
			return v
		}
	}
	return -1
}

// describeMismatch says where body leaves each version of o, and whether it
// looks stitched from two versions.
func describeMismatch(o *diffObject, off int, body []byte) string {
	if off+len(body) > o.size {
		return fmt.Sprintf("%d bytes at offset %d run past the object's %d bytes", len(body), off, o.size)
	}
	var parts []string
	longest, lv := -1, 0
	for v, b := range o.versions {
		i := commonPrefix(b[off:off+len(body)], body)
		parts = append(parts, fmt.Sprintf("differs from version %d at object byte %d", v, off+i))
		if i > longest {
			longest, lv = i, v
		}
	}
	for v, b := range o.versions {
		rest := off + longest
		if v != lv && bytes.Equal(b[rest:off+len(body)], body[longest:]) {
			parts = append(parts, fmt.Sprintf("STITCHED: version %d up to object byte %d, then version %d", lv, rest, v))
		}
	}
	return strings.Join(parts, "; ")
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// report turns the run into the sub-test's result.
func (d *diffRun) report(t *testing.T) {
	d.mu.Lock()
	defer d.mu.Unlock()
	codes := make([]int, 0, len(d.statuses))
	for c := range d.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var sc []string
	for _, c := range codes {
		sc = append(sc, fmt.Sprintf("%d×%d", d.statuses[c], c))
	}
	t.Logf("%d requests: %s; %d aborted or unanswered (allowed for this kind: %v)", d.done, strings.Join(sc, " "), d.aborts, d.kind.mayFail())
	for _, n := range d.notes {
		t.Log(n)
	}
	var origin []string
	for _, role := range diffRoles {
		o := d.obj(role)
		origin = append(origin, fmt.Sprintf("%s %d B: %d req, %.2fx", role, o.size, o.reqs.Load(), float64(o.sent.Load())/float64(o.size)))
	}
	t.Logf("origin: %s", strings.Join(origin, "; "))
	const show = 12
	for i, f := range d.failures {
		if i == show {
			t.Errorf("... and %d more failures", len(d.failures)-show)
			break
		}
		t.Errorf("seed %d: %s", d.seed, f)
	}
}
