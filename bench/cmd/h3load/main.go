// Command h3load is the HTTP/3 benchmark's load generator: N connections,
// each with S requests in flight, GET one URL for a fixed time, and print
// requests/s and body MB/s. It speaks HTTP/3 (quic-go's http3) or, for the
// same client's figure on the other version, HTTP/2 over TLS. Everything
// is bounded: at most 1024 connections, 64 requests in flight per
// connection, 10 minutes, and every request has a timeout.
//
// usage: h3load -url https://127.0.0.1:8443/obj/1KiB/a -host bench.example
// -ca ca.crt [-proto h3|h2] [-conns 16] [-streams 4] [-duration 10s]
//
// Output, one line: proto=h3 requests=N errors=E seconds=S rps=R mbps=M
// (MB = 10^6 bytes of body).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "h3load:", err)
		os.Exit(1)
	}
}

type options struct {
	url, host, ca, proto string
	conns, streams       int
	duration, timeout    time.Duration
}

func run(args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("h3load", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "", "https URL to GET (required)")
	fs.StringVar(&o.host, "host", "", "TLS server name and :authority (default: the URL's host)")
	fs.StringVar(&o.ca, "ca", "", "PEM file of the CA that signed the server's certificate (required)")
	fs.StringVar(&o.proto, "proto", "h3", "h3 or h2")
	fs.IntVar(&o.conns, "conns", 16, "connections (1 to 1024)")
	fs.IntVar(&o.streams, "streams", 4, "requests in flight per connection (1 to 64)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send (at most 10m)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of each request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	pem, err := os.ReadFile(o.ca)
	if err != nil {
		return fmt.Errorf("-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("-ca %s: no PEM certificate in it", o.ca)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: o.host}
	clients := make([]*http.Client, o.conns)
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for i := range clients {
		// A transport per connection: each keeps one connection to the
		// server and multiplexes its streams on it.
		var rt http.RoundTripper
		if o.proto == "h3" {
			t := &http3.Transport{TLSClientConfig: tc.Clone(), QUICConfig: &quic.Config{HandshakeIdleTimeout: 5 * time.Second}}
			closers = append(closers, t)
			rt = t
		} else {
			rt = &http.Transport{TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true, MaxConnsPerHost: 1, TLSHandshakeTimeout: 5 * time.Second}
		}
		clients[i] = &http.Client{Transport: rt, Timeout: o.timeout}
	}
	var reqs, errs, bytes atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		for range o.streams {
			wg.Go(func() {
				buf := make([]byte, 64<<10)
				for ctx.Err() == nil {
					n, err := get(ctx, c, o, buf)
					if err != nil {
						if ctx.Err() != nil {
							return // the run ended mid-request: not counted
						}
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					reqs.Add(1)
					bytes.Add(n)
				}
			})
		}
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Fprintf(out, "proto=%s requests=%d errors=%d seconds=%.2f rps=%.0f mbps=%.1f\n",
		o.proto, reqs.Load(), errs.Load(), secs, float64(reqs.Load())/secs, float64(bytes.Load())/secs/1e6)
	if e, ok := firstErr.Load().(error); ok {
		fmt.Fprintln(os.Stderr, "h3load: first error:", e)
	}
	if reqs.Load() == 0 {
		return errors.New("no request succeeded")
	}
	return nil
}

func (o *options) validate() error {
	switch {
	case o.url == "":
		return errors.New("-url is required")
	case o.ca == "":
		return errors.New("-ca is required")
	case o.proto != "h3" && o.proto != "h2":
		return fmt.Errorf("-proto %q: want h3 or h2", o.proto)
	case o.conns < 1 || o.conns > 1024:
		return fmt.Errorf("-conns %d: want 1 to 1024", o.conns)
	case o.streams < 1 || o.streams > 64:
		return fmt.Errorf("-streams %d: want 1 to 64", o.streams)
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration %s: want more than 0, at most 10m", o.duration)
	case o.timeout <= 0:
		return fmt.Errorf("-timeout %s: want more than 0", o.timeout)
	}
	return nil
}

// get GETs the URL once and reads the body, returning its length; a
// status other than 200 is an error.
func get(ctx context.Context, c *http.Client, o options, buf []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url, nil)
	if err != nil {
		return 0, err
	}
	if o.host != "" {
		req.Host = o.host
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %d", resp.StatusCode)
	}
	return n, nil
}
