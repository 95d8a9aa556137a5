package edge

import (
	"container/heap"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// Hot keys: the URLs this edge served most, recently and often, for the
// autoscaler to warm a new region with (GET adminapi.HotPath). The set is
// the Space-Saving summary (Metwally et al., 2005): at most hotCapacity
// URLs of at most hotMaxURL bytes each, so its memory stays under about
// 4.5 MiB however many distinct URLs clients ask for. A URL not tracked
// takes the place of the least counted one and inherits its count (an
// overestimate by at most that count), so a URL served often enough is
// never lost. Counts halve every hotHalfLife, so yesterday's hits give way
// to today's.
const (
	hotCapacity = 4096
	hotMaxURL   = 1 << 10
	hotHalfLife = 5 * time.Minute
	// hotClockEvery: adds between two looks at the clock for the decay.
	hotClockEvery = 4096
	// maxHotN caps ?n= of GET HotPath.
	maxHotN = 1000
)

// hotKeys is the summary. Its zero value is not usable: see newHotKeys.
type hotKeys struct {
	now       func() time.Time
	mu        sync.Mutex
	byURL     map[string]*hotEntry
	min       hotHeap // least count first
	adds      int
	lastDecay time.Time
}

type hotEntry struct {
	url   string
	size  int64 // the object's size, as last served
	count uint64
	i     int // index in the heap
}

func newHotKeys(now func() time.Time) *hotKeys {
	return &hotKeys{now: now, byURL: make(map[string]*hotEntry, hotCapacity), lastDecay: now()}
}

// add counts one response of url, an object of size bytes.
func (h *hotKeys) add(url string, size int64) {
	if len(url) > hotMaxURL || url == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.adds++; h.adds >= hotClockEvery {
		h.adds = 0
		h.decay(h.now())
	}
	if e := h.byURL[url]; e != nil {
		e.count++
		e.size = size
		heap.Fix(&h.min, e.i)
		return
	}
	if len(h.min) < hotCapacity {
		e := &hotEntry{url: url, size: size, count: 1}
		h.byURL[url] = e
		heap.Push(&h.min, e)
		return
	}
	// Space-Saving: the least counted URL gives its place to this one.
	e := h.min[0]
	delete(h.byURL, e.url)
	e.url, e.size, e.count = url, size, e.count+1
	h.byURL[e.url] = e
	heap.Fix(&h.min, 0)
}

// addRequest counts a response net/http served to r.
func (h *hotKeys) addRequest(r *http.Request, size int64) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	h.add(httpcache.Key(scheme, r.Host, httpcache.NormalizeTarget(r.URL.RequestURI())), size)
}

// decay halves every count once per hotHalfLife passed; halving keeps the
// heap's order.
func (h *hotKeys) decay(now time.Time) {
	for now.Sub(h.lastDecay) >= hotHalfLife {
		h.lastDecay = h.lastDecay.Add(hotHalfLife)
		for _, e := range h.min {
			e.count /= 2
		}
	}
}

// top returns the URLs counted most, at most n, skipping those that would
// take the objects' sizes past maxBytes (0: no bound).
func (h *hotKeys) top(n int, maxBytes int64) []adminapi.HotKey {
	h.mu.Lock()
	h.decay(h.now())
	all := make([]adminapi.HotKey, 0, len(h.min))
	for _, e := range h.min {
		if e.count > 0 {
			all = append(all, adminapi.HotKey{URL: e.url, Bytes: e.size, Hits: e.count})
		}
	}
	h.mu.Unlock()
	slices.SortFunc(all, func(a, b adminapi.HotKey) int {
		if a.Hits != b.Hits {
			if a.Hits > b.Hits {
				return -1
			}
			return 1
		}
		return strings.Compare(a.URL, b.URL)
	})
	out := all[:0]
	var total int64
	for _, k := range all {
		if len(out) == n {
			break
		}
		if maxBytes > 0 && total+k.Bytes > maxBytes {
			continue
		}
		total += k.Bytes
		out = append(out, k)
	}
	return out
}

// hotHeap is a min-heap of entries by count.
type hotHeap []*hotEntry

func (q hotHeap) Len() int           { return len(q) }
func (q hotHeap) Less(i, j int) bool { return q[i].count < q[j].count }
func (q hotHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].i, q[j].i = i, j
}
func (q *hotHeap) Push(x any) {
	e := x.(*hotEntry)
	e.i = len(*q)
	*q = append(*q, e)
}
func (q *hotHeap) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// urlOfKey is the URL of a fast-path storage key (objKey of a primary
// key, which is the URL).
func urlOfKey(k string) string { return strings.TrimPrefix(k, "o:") }

// objectSize is the size of the object a 200 or 206 response carries (its
// Content-Length, or the complete length of its Content-Range); -1 when
// the header does not say.
func objectSize(status int, h http.Header) int64 {
	if status == http.StatusPartialContent {
		cr := h.Get("Content-Range")
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				return n
			}
		}
		return -1
	}
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
		return n
	}
	return -1
}

// handleHot serves GET adminapi.HotPath?n=N&bytes=B.
func (s *Server) handleHot(w http.ResponseWriter, r *http.Request) {
	if !s.authorizedOr401(w, r) {
		return
	}
	q := r.URL.Query()
	n, maxBytes := maxHotN, int64(0)
	if v := q.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			http.Error(w, "bad n: want a count of 0 or more", http.StatusBadRequest)
			return
		}
		n = min(i, maxHotN)
	}
	if v := q.Get("bytes"); v != "" {
		b, err := strconv.ParseInt(v, 10, 64)
		if err != nil || b < 0 {
			http.Error(w, "bad bytes: want a size in bytes, 0 for no bound", http.StatusBadRequest)
			return
		}
		maxBytes = b
	}
	writeJSON(w, adminapi.HotKeys{Keys: s.hot.top(n, maxBytes)})
}
