// Command idle measures what idle keep-alive connections cost a server: it
// opens -n connections to a loopback URL, -batch at a time with -gap between
// batches (connections arrive over time, as browsers' do), sends one GET on
// each and reads the answer, then holds them all open and reports the
// resident memory of the server's processes (-pid, repeatable or
// comma-separated) before and after, per connection.
//
//	idle -url http://127.0.0.1:8080/obj/1KiB/a -pid 1234 -n 5000 -batch 500 -gap 2.5s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	target := fs.String("url", "", "URL to GET once on each connection (http, loopback only)")
	pids := fs.String("pid", "", "the server's process ids, comma-separated, whose VmRSS is summed")
	n := fs.Int("n", 5000, "connections")
	batch := fs.Int("batch", 500, "connections opened at once")
	gap := fs.Duration("gap", 2500*time.Millisecond, "pause between batches")
	settle := fs.Duration("settle", 2500*time.Millisecond, "pause after the last batch before measuring")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-url %q: want an http:// URL", *target)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: not a loopback address", *target)
	}
	if *n <= 0 || *batch <= 0 || *n > 100000 {
		return errors.New("-n must be 1..100000 and -batch positive")
	}
	var procs []int
	for _, f := range strings.Split(*pids, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p <= 0 {
			return fmt.Errorf("-pid %q: want process ids", *pids)
		}
		procs = append(procs, p)
	}
	before, err := rss(procs)
	if err != nil {
		return err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n"
	conns := make([]net.Conn, 0, *n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < *n {
		k := min(*batch, *n-len(conns))
		open := make([]net.Conn, 0, k)
		for range k {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return fmt.Errorf("after %d connections: %w", len(conns)+len(open), err)
			}
			open = append(open, c)
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, req); err != nil {
				return err
			}
		}
		for _, c := range open {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return fmt.Errorf("reading a response: %w", err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				return fmt.Errorf("response: status %d, %v", resp.StatusCode, err)
			}
			c.SetDeadline(time.Time{})
		}
		wait := *gap
		if len(conns) == *n {
			wait = *settle
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	after, err := rss(procs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "conns=%d rss_before_kib=%d rss_after_kib=%d bytes_per_conn=%.0f\n",
		len(conns), before, after, float64(after-before)*1024/float64(len(conns)))
	return nil
}

// rss sums VmRSS (KiB) over the processes.
func rss(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				sum += v
			}
		}
	}
	return sum, nil
}
