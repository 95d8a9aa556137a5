package edge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// TestCrashRestart kills the edge with SIGKILL under load, 20 times, and
// starts it again at once on the same listen address and cache directory,
// as a supervisor would: each time the new edge binds (it does not exit
// with "address already in use"), its /readyz turns ready, and the first
// request after that — sent as a load balancer would, once /readyz says
// ready — is served whole. No response, during the load or after the last
// restart, has other bytes than the origin's: objects are small and large
// (sliced, --slice 256KiB, on the disk tier), fetched whole and by ranges.
// With io_uring on and off.
func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the edge 40 times")
	}
	const (
		host     = "www.example.com"
		maxSize  = 2 << 20
		objects  = 24
		restarts = 20
		clients  = 4
	)
	o := contentOrigin(t, maxSize)
	paths := make([]string, objects)
	for i := range paths {
		paths[i] = fmt.Sprintf("/crash/%d", i)
	}
	for _, mode := range []string{"auto", "off"} {
		t.Run("io-uring="+mode, func(t *testing.T) {
			dir := t.TempDir()
			listen, admin := e2e.FreeAddr(t), e2e.FreeAddr(t)
			args := []string{"--hostname", host, "--slice", "256KiB", "--memory", "8MiB", "--disk", "1GiB", "--io-uring", mode}
			opts := edgetest.Options{Origin: o.URL, CacheDir: dir, Listen: listen, Admin: admin, Args: args}
			var wrong, checked atomic.Int64
			// check compares a complete 2xx response with the origin's
			// bytes: the whole object for a 200, from..to for a 206.
			check := func(what, p string, r result, from, to int) {
				full := content(p, sizeOf(p, maxSize))
				want := full
				if r.status == http.StatusPartialContent {
					want = full[from : to+1]
				}
				if r.err != nil || r.status/100 != 2 {
					return
				}
				checked.Add(1)
				if !bytes.Equal(r.body, want) {
					wrong.Add(1)
					t.Errorf("%s %s: %d, %d bytes that are not the origin's (Cache-Status %q)", what, p, r.status, len(r.body), r.cacheStatus())
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			e := kubecdn.Launch(t, opts)
			for i := range restarts {
				if err := e.WaitReadyz(10 * time.Second); err != nil {
					t.Fatalf("restart %d: %v\n%s", i, err, tail(e.Output(), 3000))
				}
				if i > 0 {
					// The first request after the restart.
					p := paths[rng.IntN(objects)]
					r, err := fetchOnce(e.URL(), p, host, "")
					if err != nil || r.status != http.StatusOK || r.err != nil {
						t.Fatalf("restart %d: first request %s: %v, status %d, body error %v\n%s", i, p, err, r.status, r.err, tail(e.Output(), 3000))
					}
					check("first request", p, r, 0, 0)
				}
				// Load, then SIGKILL in the middle of it.
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for c := range clients {
					wg.Add(1)
					go func(seed uint64) {
						defer wg.Done()
						crng := rand.New(rand.NewPCG(seed, uint64(i)))
						for ctx.Err() == nil {
							p := paths[crng.IntN(objects)]
							size := sizeOf(p, maxSize)
							rng, from, to := "", 0, size-1
							if crng.IntN(3) == 0 {
								from = crng.IntN(size)
								to = min(size-1, from+crng.IntN(600<<10))
								rng = fmt.Sprintf("bytes=%d-%d", from, to)
							}
							r, err := fetchOnce(e.URL(), p, host, rng)
							if err == nil {
								check("under load", p, r, from, to)
							}
						}
					}(uint64(c))
				}
				time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
				e.Kill()
				cancel()
				wg.Wait()
				e = kubecdn.Launch(t, opts)
			}
			if err := e.WaitReadyz(10 * time.Second); err != nil {
				t.Fatalf("last restart: %v\n%s", err, tail(e.Output(), 3000))
			}
			// Every object, whole and a range of it, after all the crashes.
			for _, p := range paths {
				size := sizeOf(p, maxSize)
				r, err := fetchOnce(e.URL(), p, host, "")
				if err != nil || r.status != http.StatusOK || r.err != nil {
					t.Errorf("%s after the crashes: %v, status %d, body error %v", p, err, r.status, r.err)
				}
				check("after the crashes", p, r, 0, size-1)
				from := size / 3
				r, err = fetchOnce(e.URL(), p, host, fmt.Sprintf("bytes=%d-", from))
				if err != nil || r.status != http.StatusPartialContent || r.err != nil {
					t.Errorf("%s range after the crashes: %v, status %d, body error %v", p, err, r.status, r.err)
				}
				check("range after the crashes", p, r, from, size-1)
			}
			t.Logf("%d complete responses compared with the origin's bytes, %d wrong", checked.Load(), wrong.Load())
			if n := wrong.Load(); n > 0 {
				t.Errorf("%d responses with wrong bytes", n)
			}
			if n := checked.Load(); n < 2*objects+restarts {
				t.Errorf("only %d complete responses compared: the load did not run", n)
			}
		})
	}
}

// TestStartWhileAddressHeld: an edge started while its listen address is
// still bound by another socket — as after a SIGKILL, while the kernel
// closes the io_uring instance of the process it replaces — waits for the
// address with a log line instead of exiting, reports /readyz ready only
// once it holds it, and then serves its first request.
func TestStartWhileAddressHeld(t *testing.T) {
	const host = "www.example.com"
	o := contentOrigin(t, 64<<10)
	listen := e2e.FreeAddr(t)
	held, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	e := kubecdn.Launch(t, edgetest.Options{Origin: o.URL, Listen: listen, Args: []string{"--hostname", host}})
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !e.Alive() {
			t.Fatalf("the edge exited while its address was held: %v\n%s", e.Err(), e.Output())
		}
		if resp, err := c.Get(e.AdminURL() + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("/readyz ready while another socket holds the listen address")
			}
		}
	}
	held.Close()
	if err := e.WaitReadyz(15 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, e.Output())
	}
	p := "/first"
	r, err := fetchOnce(e.URL(), p, host, "")
	if err != nil || r.status != http.StatusOK || !bytes.Equal(r.body, content(p, sizeOf(p, 64<<10))) {
		t.Fatalf("first request: %v, status %d, %d bytes", err, r.status, len(r.body))
	}
	if out := e.Output(); !strings.Contains(out, "listen address still in use") || !strings.Contains(out, "listen address free again") {
		t.Errorf("no log lines about the wait:\n%s", out)
	}
}

// fetchOnce GETs base+path on a new connection (nothing kept alive across a
// kill), with a Range when rng is not empty, and reads the body to its end.
func fetchOnce(base, path, host, rng string) (result, error) {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return result{}, err
	}
	req.Host = host
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: err}, nil
}
