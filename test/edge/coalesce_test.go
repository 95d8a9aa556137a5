package edge_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

// TestCoalescing sends 1000 concurrent requests for one cold URL whose origin
// takes 200 ms: the origin must see exactly one request and every client
// the right body.
func TestCoalescing(t *testing.T) {
	body := content("/cold", 64<<10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
	// One connection per request, all opened up front, so the 1000 requests
	// are really in flight together.
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxConnsPerHost: 1000, MaxIdleConnsPerHost: 1000, DisableCompression: true,
	}}
	const n = 1000
	var (
		wg        sync.WaitGroup
		bad       atomic.Int64
		collapsed atomic.Int64
		firstErr  atomic.Value
		start     = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			resp, err := c.Get(e.URL() + "/cold")
			if err != nil {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, body) {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d, %d bytes, err %v", resp.StatusCode, len(b), err))
				return
			}
			if csParam(result{header: resp.Header}.cacheStatus(), "collapsed") != "" {
				collapsed.Add(1)
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d requests in %v; %d collapsed onto the first", n, time.Since(t0), collapsed.Load())
	if b := bad.Load(); b != 0 {
		t.Errorf("%d of %d requests failed; first: %v", b, n, firstErr.Load())
	}
	if got := o.count("/cold"); got != 1 {
		t.Errorf("origin saw %d requests for the cold URL, want 1", got)
	}
}

// TestCoalescingStreams checks that waiters are fed while the body streams
// in: the origin writes half the body, waits 1 s, writes the rest; a waiter
// that joined the fill must have the first half well before the end.
func TestCoalescingStreams(t *testing.T) {
	const size = 256 << 10
	body := content("/slow", size)
	var secondHalf atomic.Int64 // unix nanos when the origin started the second half
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body[:size/2])
		w.(http.Flusher).Flush()
		time.Sleep(time.Second)
		secondHalf.Store(time.Now().UnixNano())
		w.Write(body[size/2:])
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
	c := newClient()

	type timing struct {
		half, end time.Time
		err       error
		cs        string
	}
	fetch := func() timing {
		var tm timing
		resp, err := c.Get(e.URL() + "/slow")
		if err != nil {
			tm.err = err
			return tm
		}
		defer resp.Body.Close()
		tm.cs = result{header: resp.Header}.cacheStatus()
		got := make([]byte, size)
		if _, err := io.ReadFull(resp.Body, got[:size/2]); err != nil {
			tm.err = err
			return tm
		}
		tm.half = time.Now()
		if _, err := io.ReadFull(resp.Body, got[size/2:]); err != nil {
			tm.err = err
			return tm
		}
		tm.end = time.Now()
		if !bytes.Equal(got, body) {
			tm.err = fmt.Errorf("wrong bytes")
		}
		return tm
	}
	var wg sync.WaitGroup
	res := make([]timing, 4)
	wg.Go(func() { res[0] = fetch() }) // the leader
	// Waiters join once the origin has started answering.
	deadline := time.Now().Add(3 * time.Second)
	for o.count("/slow") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	for i := 1; i < len(res); i++ {
		wg.Go(func() { res[i] = fetch() })
	}
	wg.Wait()
	end := time.Unix(0, secondHalf.Load())
	for i, tm := range res {
		if tm.err != nil {
			t.Errorf("client %d: %v", i, tm.err)
			continue
		}
		if early := end.Sub(tm.half); early < 500*time.Millisecond {
			t.Errorf("client %d (%s): had the first half only %v before the origin sent the rest, want ≥ 500ms", i, tm.cs, early)
		}
		if tm.end.Before(end) {
			t.Errorf("client %d: finished before the origin sent the second half?", i)
		}
	}
	if got := o.count("/slow"); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

// TestCoalescingLeaderLeaves checks that the fill is detached from the
// client that started it: the leader hangs up mid-body and the waiters
// still get the whole, right body from one origin fetch.
func TestCoalescingLeaderLeaves(t *testing.T) {
	const size = 256 << 10
	body := content("/leave", size)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body[:size/2])
		w.(http.Flusher).Flush()
		time.Sleep(500 * time.Millisecond)
		w.Write(body[size/2:])
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
	leader, err := newClient().Get(e.URL() + "/leave")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(leader.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]result, 5)
	for i := range results {
		wg.Go(func() { results[i] = get(t, newClient(), e.URL(), "/leave", "") })
	}
	time.Sleep(100 * time.Millisecond)
	leader.Body.Close() // the leader goes away mid-body
	wg.Wait()
	for i, r := range results {
		if r.status != 200 || r.err != nil || !bytes.Equal(r.body, body) {
			t.Errorf("waiter %d after the leader left: %d, %d bytes, err %v", i, r.status, len(r.body), r.err)
		}
	}
	if r := get(t, newClient(), e.URL(), "/leave", ""); !r.hit() || !bytes.Equal(r.body, body) {
		t.Errorf("after the fill: %q, %d bytes", r.cacheStatus(), len(r.body))
	}
	if got := o.count("/leave"); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}
