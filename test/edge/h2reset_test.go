package edge_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/kubecdn/kubecdn/internal/certs/certstest"
	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// TestH2RapidResetClosesConnection performs the HTTP/2 rapid reset attack
// (CVE-2023-44487) on the edge's TLS listener: 2,000 HEADERS+RST_STREAM
// pairs on one connection, each for a different uncached path. Before the
// guard, the edge started an origin fetch for most of them (1,505 in the
// probe that found it) and kept the connection open. Now it sends GOAWAY
// once a connection spends its budget of early resets, closes it, and the
// origin sees a bounded number of requests; other clients are served.
func TestH2RapidResetClosesConnection(t *testing.T) {
	tests := []struct {
		name string
		// batch streams are opened, then after gap reset; a gap lets
		// their handlers start (and their fetches) before the reset.
		batch int
		gap   time.Duration
	}{
		{"reset at once", 1, 0},
		{"reset after the handlers started", 50, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { rapidReset(t, tt.batch, tt.gap) })
	}
}

func rapidReset(t *testing.T, batch int, gap time.Duration) {
	const pairs = 2000
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("ok"))
	})
	ca := certstest.NewCA(t, "h2 reset test ca")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, []string{"www.test"}, time.Time{}, time.Time{}).Write(t, dir, "edge")
	tlsAddr := e2e.FreeAddr(t)
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--tls-listen", tlsAddr, "--tls-cert", certFile, "--tls-key", keyFile}})

	tc, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}, ServerName: "www.test"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer tc.Close()
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	bw := bufio.NewWriterSize(tc, 64<<10)
	fr := http2.NewFramer(bw, tc)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	bw.WriteString(http2.ClientPreface)
	fr.WriteSettings()
	sent := 0
	var writeErr error
	tc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < pairs && writeErr == nil; i += batch {
		n := min(batch, pairs-i)
		for j := i; j < i+n && writeErr == nil; j++ {
			hbuf.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "www.test"}, {":path", fmt.Sprintf("/rr/%d", j)}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			writeErr = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*j + 1), BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
			if writeErr == nil && gap == 0 {
				writeErr = fr.WriteRSTStream(uint32(2*j+1), http2.ErrCodeCancel)
			}
		}
		if gap > 0 && writeErr == nil {
			if writeErr = bw.Flush(); writeErr == nil {
				time.Sleep(gap)
			}
			for j := i; j < i+n && writeErr == nil; j++ {
				writeErr = fr.WriteRSTStream(uint32(2*j+1), http2.ErrCodeCancel)
			}
		}
		if i%50 == 0 && writeErr == nil {
			writeErr = bw.Flush()
		}
		if writeErr == nil {
			sent = i + n
		}
	}
	if writeErr == nil {
		writeErr = bw.Flush()
	}
	t.Logf("sent %d of %d HEADERS+RST_STREAM pairs (write error: %v)", sent, pairs, writeErr)

	// Read until the edge closes the connection (or a time limit). The
	// server reads frames apart from writing them, so the writes above did
	// not need these read first.
	goAway := false
	var goAwayCode http2.ErrCode
	closed := false
	deadline := time.Now().Add(15 * time.Second)
	tc.SetReadDeadline(deadline)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var ne interface{ Timeout() bool }
			closed = !(errors.As(err, &ne) && ne.Timeout())
			break
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			goAway = true
			goAwayCode = ga.ErrCode
			t.Logf("GOAWAY: last stream %d, code %v", ga.LastStreamID, ga.ErrCode)
		}
	}
	time.Sleep(500 * time.Millisecond) // let fetches already started reach the origin
	fetched := o.count("")
	t.Logf("origin saw %d requests for %d reset streams; GOAWAY %v, connection closed %v", fetched, sent, goAway, closed)
	if !goAway || !closed {
		t.Errorf("GOAWAY %v, connection closed %v; want both", goAway, closed)
	}
	// The budget is 200 early resets; a batch more may be running when it
	// runs out.
	if fetched > 300 {
		t.Errorf("origin saw %d requests from one connection of reset streams, want at most 300", fetched)
	}

	// Other connections are served, over HTTP/2.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "www.test"}, ForceAttemptHTTP2: true, Proxy: nil,
	}}
	resp, err := c.Get("https://" + tlsAddr + "/after")
	if err != nil {
		t.Fatalf("GET after the attack: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("GET after the attack: %s over HTTP/%d", resp.Status, resp.ProtoMajor)
	}
	// ENHANCE_YOUR_CALM is Go's own rapid-reset guard, which may act
	// first on a fast machine; the edge's guard sends NO_ERROR and logs.
	if goAway && goAwayCode == http2.ErrCodeNo && !strings.Contains(e.Output(), "resets streams") {
		t.Errorf("the edge did not log the connection it closed")
	}
	e.MustBeHealthy(t)
}
