// Command storm fires N concurrent GET requests at one URL, all released at
// the same instant, and prints their latency percentiles and errors. It is
// the cold-miss storm of the edge benchmark: aimed at an object no cache has
// yet, it shows whether a cache coalesces the misses and how long the waiters
// wait.
//
// Each request gets its own TCP connection, opened (and, with -warm, used
// once) before the release, so connection set-up and accept queues do not
// count in the latency. All requests are written but their last byte before
// the release, which then sends the last bytes from one loop; a latency runs
// from a request's last byte to the last byte of its response. Output is one
// line of key=value pairs; spread_ms is how long the release took.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "URL to storm (http only, loopback only)")
	n := fs.Int("n", 1000, "number of concurrent requests")
	warm := fs.String("warm", "", "path on the same host fetched once on each connection before the release (e.g. a cached object)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole storm, set-up included")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url must be an http URL, got %q", *target)
	}
	if err := checkLoopback(u.Hostname()); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("-n must be at least 1")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := storm(ctx, u, *warm, *n)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.summary())
	return nil
}

// checkLoopback refuses any target outside 127.0.0.0/8 and ::1: this tool
// generates load and must never point it elsewhere.
func checkLoopback(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not a loopback address", host)
	}
	return nil
}

// result is one request's outcome.
type result struct {
	start   time.Time
	latency time.Duration
	status  int
	err     error
}

type results []result

func storm(ctx context.Context, u *url.URL, warm string, n int) (results, error) {
	conns, err := dialAll(ctx, u.Host, n, 100)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if deadline, ok := ctx.Deadline(); ok {
		for _, c := range conns {
			_ = c.SetDeadline(deadline)
		}
	}
	readers := make([]*bufio.Reader, n)
	for i, c := range conns {
		readers[i] = prefaulted(c)
	}
	if warm != "" {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = do(conns[i], readers[i], u.Host, warm)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("warming connections: %w", err)
		}
	}
	// The release: every request but its last byte goes out first, then one
	// goroutine sends the last bytes in a tight loop, so the storm arrives
	// within a few milliseconds even on a busy machine. A request's latency
	// runs from its last byte to the last byte of its response.
	req := request(u.Host, u.RequestURI())
	for i, c := range conns {
		if _, err := io.WriteString(c, req[:len(req)-1]); err != nil {
			return nil, fmt.Errorf("writing request %d: %w", i, err)
		}
	}
	out := make(results, n)
	starts := make([]atomic.Int64, n)
	var done sync.WaitGroup
	for i := range conns {
		done.Add(1)
		go func() {
			defer done.Done()
			status, err := readResponse(readers[i])
			end := time.Now()
			start := time.Unix(0, starts[i].Load())
			out[i] = result{start: start, latency: end.Sub(start), status: status, err: err}
		}()
	}
	last := req[len(req)-1:]
	writeErrs := make([]error, n)
	for i, c := range conns {
		starts[i].Store(time.Now().UnixNano())
		if _, err := io.WriteString(c, last); err != nil {
			writeErrs[i] = fmt.Errorf("writing request: %w", err)
		}
	}
	done.Wait()
	for i, err := range writeErrs {
		if err != nil {
			out[i].err = err
		}
	}
	return out, nil
}

// readerSize is the read buffer of each connection: a response of the
// storm fits in one read.
const readerSize = 64 << 10

// prefaulted returns a reader of c whose buffer has been written once, so
// the first response read into it costs no page faults: 1000 fresh 64 KiB
// buffers would cost the client ~16,000 faults inside the measured window
// on the same two cores as the server under test.
func prefaulted(c net.Conn) *bufio.Reader {
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(make([]byte, readerSize)), c), readerSize)
	if _, err := br.Discard(readerSize); err != nil {
		panic(err) // reading from memory cannot fail
	}
	return br
}

// dialAll opens n connections, at most par at a time.
func dialAll(ctx context.Context, addr string, n, par int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var d net.Dialer
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = d.DialContext(ctx, "tcp", addr)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	return conns, nil
}

func request(host, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: kubecdn-storm\r\n\r\n"
}

// do sends one GET on a kept-alive connection and reads the whole response.
func do(c net.Conn, br *bufio.Reader, host, path string) (int, error) {
	if _, err := io.WriteString(c, request(host, path)); err != nil {
		return 0, fmt.Errorf("writing request: %w", err)
	}
	return readResponse(br)
}

// readResponse reads one whole response.
func readResponse(br *bufio.Reader) (int, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, fmt.Errorf("reading response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading body: %w", err)
	}
	return resp.StatusCode, nil
}

// percentile returns the p-th percentile (0 < p <= 1) of sorted durations by
// the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func (rs results) summary() string {
	var lat []time.Duration
	errs := 0
	statuses := map[int]int{}
	var firstErr error
	var first, last time.Time
	for i, r := range rs {
		if i == 0 || r.start.Before(first) {
			first = r.start
		}
		if r.start.After(last) {
			last = r.start
		}
		switch {
		case r.err != nil:
			errs++
			if firstErr == nil {
				firstErr = r.err
			}
		case r.status != http.StatusOK:
			errs++
			statuses[r.status]++
		default:
			lat = append(lat, r.latency)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	var b strings.Builder
	fmt.Fprintf(&b, "n=%d ok=%d errors=%d min_ms=%s p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s",
		len(rs), len(lat), errs, ms(percentile(lat, 0)), ms(percentile(lat, 0.5)),
		ms(percentile(lat, 0.9)), ms(percentile(lat, 0.99)), ms(percentile(lat, 1)))
	// spread is how long the release took: from the first request sent to the
	// last. A late request may find the object cached and look fast.
	fmt.Fprintf(&b, " spread_ms=%s", ms(last.Sub(first)))
	if len(statuses) > 0 {
		codes := make([]int, 0, len(statuses))
		for c := range statuses {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		for _, c := range codes {
			fmt.Fprintf(&b, " status_%d=%d", c, statuses[c])
		}
	}
	if firstErr != nil {
		fmt.Fprintf(&b, " first_error=%q", firstErr.Error())
	}
	return b.String()
}
