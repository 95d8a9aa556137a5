// Command origin is the benchmark origin server: it serves generated objects
// of any size, cacheable for an hour, after an optional delay, and counts the
// requests it answers so a benchmark can tell how many misses reached it.
//
// Objects live under /obj/SIZE/NAME, where SIZE is a byte count with an
// optional KiB/MiB/GiB suffix (e.g. /obj/1KiB/a, /obj/64MiB/big). The query
// parameter delay (a Go duration, e.g. ?delay=50ms) holds the response back;
// without it the -delay flag applies. GET /__count answers the number of
// object requests served so far; /__count?path=/obj/1KiB/a the number for one
// path. Bodies are generated once per size and kept in memory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	delay := fs.Duration("delay", 0, "delay before each object response, unless the request sets ?delay=")
	maxAge := fs.Int("max-age", 3600, "Cache-Control max-age in seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	o := newOrigin(*delay, *maxAge, time.Now)
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	slog.New(slog.NewTextHandler(stderr, nil)).Info("origin listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// origin is the handler. Its counters are per instance, so tests can run
// several side by side.
type origin struct {
	delay        time.Duration
	cacheControl string
	lastModified string

	total atomic.Int64

	mu     sync.Mutex
	counts map[string]int64
	bodies map[int64][]byte
}

func newOrigin(delay time.Duration, maxAge int, now func() time.Time) *origin {
	return &origin{
		delay:        delay,
		cacheControl: "public, max-age=" + strconv.Itoa(maxAge),
		lastModified: now().Add(-time.Hour).UTC().Format(http.TimeFormat),
		counts:       make(map[string]int64),
		bodies:       make(map[int64][]byte),
	}
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/__count" {
		o.serveCount(w, r)
		return
	}
	size, err := parseObjectPath(r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	o.total.Add(1)
	o.mu.Lock()
	o.counts[r.URL.Path]++
	o.mu.Unlock()

	d := o.delay
	if q := r.URL.Query().Get("delay"); q != "" {
		if d, err = time.ParseDuration(q); err != nil {
			http.Error(w, "bad delay: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	etag := `"` + strconv.FormatInt(size, 16) + `"`
	h := w.Header()
	h.Set("Cache-Control", o.cacheControl)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", etag)
	h.Set("Last-Modified", o.lastModified)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(o.body(size))
}

func (o *origin) serveCount(w http.ResponseWriter, r *http.Request) {
	n := o.total.Load()
	if p := r.URL.Query().Get("path"); p != "" {
		o.mu.Lock()
		n = o.counts[p]
		o.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, n)
}

// body returns the shared body of the given size: printable bytes, so a
// truncated or shifted copy is easy to spot.
func (o *origin) body(size int64) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b, ok := o.bodies[size]; ok {
		return b
	}
	b := make([]byte, size)
	const pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
	for i := int64(0); i < size; i += int64(len(pattern)) {
		copy(b[i:], pattern)
	}
	o.bodies[size] = b
	return b
}

// maxObject bounds generated objects so a typo cannot eat the machine.
const maxObject = 4 << 30

// parseObjectPath reads SIZE from /obj/SIZE or /obj/SIZE/NAME.
func parseObjectPath(p string) (int64, error) {
	rest, ok := strings.CutPrefix(p, "/obj/")
	if !ok {
		return 0, errors.New("not an object path: want /obj/SIZE/NAME")
	}
	sizeStr, _, _ := strings.Cut(rest, "/")
	return parseSize(sizeStr)
}

// parseSize reads a byte count with an optional B, KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if n > maxObject/mult {
		return 0, fmt.Errorf("size %q over the %d byte limit", s, int64(maxObject))
	}
	return n * mult, nil
}
