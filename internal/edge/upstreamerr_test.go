package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rawOrigin serves every connection with answer on a loopback listener.
func rawOrigin(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				answer(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// readRequestHead reads a request's header off c.
func readRequestHead(c net.Conn) {
	buf := make([]byte, 4096)
	var got []byte
	for !bytes.Contains(got, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		got = append(got, buf[:n]...)
	}
}

// TestUpstreamCause classifies errors as the edge's transport really
// returns them, from real loopback servers misbehaving each in its way,
// and the kinds that cannot be produced on loopback as the net package
// builds them.
func TestUpstreamCause(t *testing.T) {
	tlsServer := func(min uint16) *httptest.Server {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.TLS = &tls.Config{MinVersion: min}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	tlsOrigin, tls13Origin := tlsServer(tls.VersionTLS12), tlsServer(tls.VersionTLS13)
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	trusted := x509.NewCertPool()
	trusted.AddCert(tlsOrigin.Certificate())
	trusted.AddCert(tls13Origin.Certificate())
	fetch := func(url string, tc *tls.Config) func(t *testing.T) error {
		return func(t *testing.T) error {
			tr := &http.Transport{TLSClientConfig: tc, ResponseHeaderTimeout: 300 * time.Millisecond, DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", url, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s answered %d", url, resp.StatusCode)
			}
			return &hopError{kind: "origin", host: req.URL.Host, err: err}
		}
	}
	given := func(err error) func(*testing.T) error { return func(*testing.T) error { return err } }
	tests := []struct {
		name string
		err  func(t *testing.T) error
		want string
	}{
		{"certificate of an unknown authority", fetch(tlsOrigin.URL, nil), "upstream tls: certificate verification failed"},
		{"certificate for another name", fetch(tlsOrigin.URL, &tls.Config{RootCAs: trusted, ServerName: "other.test"}), "upstream tls: certificate verification failed"},
		{"expired certificate", given(&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}), "upstream tls: certificate verification failed"},
		{"plain HTTP on an https origin", fetch("https://"+rawOrigin(t, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		}), nil), "upstream tls: handshake failed"},
		{"TLS alert from the origin", fetch(tls13Origin.URL, &tls.Config{RootCAs: trusted, MaxVersion: tls.VersionTLS12}), "upstream tls: handshake failed"},
		{"connection refused", fetch("http://"+closedPort, nil), "upstream refused"},
		{"no response header in time", fetch("http://"+rawOrigin(t, func(c net.Conn) {
			readRequestHead(c)
			time.Sleep(time.Second)
		}), nil), "upstream timeout"},
		{"closed before answering", fetch("http://"+rawOrigin(t, func(c net.Conn) { readRequestHead(c) }), nil), "upstream reset"},
		{"reset before answering", fetch("http://"+rawOrigin(t, func(c net.Conn) {
			readRequestHead(c)
			c.(*net.TCPConn).SetLinger(0)
		}), nil), "upstream reset"},
		{"garbage for a status line", fetch("http://"+rawOrigin(t, func(c net.Conn) {
			readRequestHead(c)
			io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n\r\n")
		}), nil), "upstream protocol error"},
		{"bad Content-Length", fetch("http://"+rawOrigin(t, func(c net.Conn) {
			readRequestHead(c)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
		}), nil), "upstream protocol error"},
		{"name does not resolve", given(&hopError{"origin", "o.invalid", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "o.invalid", IsNotFound: true}}}), "upstream dns"},
		{"connect timeout", given(&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}), "upstream connect timeout"},
		{"context deadline", given(fmt.Errorf("origin x: %w", context.DeadlineExceeded)), "upstream timeout"},
		{"no route", given(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}), "upstream unreachable"},
		{"too many 1xx", given(&hopError{"origin", "o", errTooManyInterim}), "upstream protocol error"},
		{"anything else", given(errors.New("something")), "upstream unreachable"},
		{"no error", given(nil), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t)
			if got := upstreamCause(err); got != tt.want {
				t.Errorf("upstreamCause(%v) = %q, want %q", err, got, tt.want)
			}
		})
	}
}

func TestRateLog(t *testing.T) {
	var l rateLog
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		key            string
		at             time.Duration
		ok             bool
		wantSuppressed int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0}, // per key
		{"a", 5 * time.Second, false, 0},
		{"a", 9999 * time.Millisecond, false, 0},
		{"a", 10 * time.Second, true, 3},
		{"a", 11 * time.Second, false, 0},
		{"a", 25 * time.Second, true, 1},
		{"a", 26 * time.Second, false, 0},
		{"a", 20 * time.Second, true, 1}, // the clock stepped back
	}
	for i, s := range steps {
		ok, n := l.allow(s.key, t0.Add(s.at))
		if ok != s.ok || n != s.wantSuppressed {
			t.Errorf("step %d (%s at %v): %v, %d; want %v, %d", i, s.key, s.at, ok, n, s.ok, s.wantSuppressed)
		}
	}
	// Keys are bounded: quiet ones are forgotten.
	for i := range 3 * rateLogKeys {
		l.allow(fmt.Sprint(i), t0.Add(time.Duration(i)*time.Minute))
	}
	if len(l.keys) > rateLogKeys+1 {
		t.Errorf("%d keys remembered", len(l.keys))
	}
}

// syncBuffer is a log destination several goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUpstreamFailureNamedAndLogged: an origin whose certificate does not
// verify answers the client 502 with the cause in Cache-Status, on a miss
// and on a relayed POST, and the operator gets one warning line with the
// error for many failures (the rest counted, not written).
func TestUpstreamFailureNamedAndLogged(t *testing.T) {
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	origin.Config.ErrorLog = log.New(io.Discard, "", 0)
	origin.StartTLS()
	t.Cleanup(origin.Close)
	var logs syncBuffer
	e := startEdge(t, Config{Origin: origin.URL}, func(s *Server) {
		s.log = slog.New(slog.NewTextHandler(&logs, nil))
	})
	for i := range 6 {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodPost
		}
		resp, _ := do(t, method, fmt.Sprintf("%s/obj%d", e.url, i), "Host", "h")
		cs := resp.Header.Get("Cache-Status")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(cs, `detail="upstream tls: certificate verification failed"`) {
			t.Fatalf("%s: %d, Cache-Status %s", method, resp.StatusCode, cs)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var warned []string
	for _, l := range lines {
		if strings.Contains(l, "upstream failed") {
			warned = append(warned, l)
		}
	}
	if len(warned) != 1 {
		t.Fatalf("%d upstream warnings for 6 failures, want 1:\n%s", len(warned), logs.String())
	}
	for _, want := range []string{"level=WARN", "certificate", "cause=\"upstream tls: certificate verification failed\"", "upstream=\"origin " + strings.TrimPrefix(origin.URL, "https://")} {
		if !strings.Contains(warned[0], want) {
			t.Errorf("warning lacks %q: %s", want, warned[0])
		}
	}
}
