package rtt

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/bearer"
)

func TestNetOf(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"198.51.100.77", "198.51.100.0/24"},
		{"::ffff:198.51.100.77", "198.51.100.0/24"},
		{"2001:db8:1234:5678::1", "2001:db8:1234::/48"},
	} {
		if got := NetOf(netip.MustParseAddr(tt.in)).String(); got != tt.want {
			t.Errorf("NetOf(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCollectorAggregates(t *testing.T) {
	c := NewCollector(CollectorOptions{MaxNetworks: 2})
	c.Observe(netip.MustParseAddr("198.51.100.1"), 10*time.Millisecond)
	c.Observe(netip.MustParseAddr("198.51.100.200"), 30*time.Millisecond)
	c.Observe(netip.MustParseAddr("2001:db8::1"), 5*time.Millisecond)
	c.Observe(netip.MustParseAddr("203.0.113.1"), 5*time.Millisecond) // over MaxNetworks: dropped
	got := c.Drain()
	want := []Sample{{Net: "198.51.100.0/24", RTTMs: 20, Count: 2}, {Net: "2001:db8::/48", RTTMs: 5, Count: 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Drain = %+v, want %+v", got, want)
	}
	if again := c.Drain(); len(again) != 0 {
		t.Errorf("second Drain = %+v, want empty", again)
	}
	// a report never carries more than the dns accepts
	if big := NewCollector(CollectorOptions{MaxNetworks: 10 * MaxReportSamples}); big.max != MaxReportSamples {
		t.Errorf("MaxNetworks above MaxReportSamples: %d", big.max)
	}
	c.nets[netip.MustParsePrefix("198.51.100.0/24")] = &agg{sumMs: 10 * float64(MaxSampleCount+5), n: MaxSampleCount + 5}
	if got := c.Drain(); len(got) != 1 || got[0].Count != MaxSampleCount || got[0].RTTMs != 10 {
		t.Errorf("Drain of a busy network = %+v, want count %d rtt 10", got, MaxSampleCount)
	}
}

// TestTCPInfoOnRealServer serves HTTP on loopback with ConnState wired and
// checks that real TCP_INFO samples arrive for 127.0.0.0/24.
func TestTCPInfoOnRealServer(t *testing.T) {
	col := NewCollector(CollectorOptions{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ConnState = col.ConnState
	srv.Start()
	defer srv.Close()
	for i := 0; i < 3; i++ {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	var got []Sample
	for time.Now().Before(deadline) {
		if got = append(got, col.Drain()...); len(got) > 0 && got[0].Count >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) == 0 || got[0].Net != "127.0.0.0/24" || got[0].RTTMs <= 0 {
		t.Fatalf("samples = %+v, want 127.0.0.0/24 with a positive rtt", got)
	}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if d, ok := TCPRTT(conn); !ok || d <= 0 || d > time.Second {
		t.Errorf("TCPRTT of a loopback conn = %v, %v", d, ok)
	}
}

func TestReporterPosts(t *testing.T) {
	got := make(chan Report, 2)
	dns := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/rtt" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		if !bearer.Authorized(r, "tok") {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		var rep Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- rep
	}))
	defer dns.Close()
	col := NewCollector(CollectorOptions{})
	col.Observe(netip.MustParseAddr("198.51.100.9"), 23500*time.Microsecond)
	rep := NewReporter(col, ReporterOptions{Region: "us-east-1", Token: "tok", Targets: []string{dns.URL + "/v1/rtt"}, Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go rep.Run(ctx)
	select {
	case r := <-got:
		if r.Region != "us-east-1" || len(r.Samples) != 1 || r.Samples[0] != (Sample{Net: "198.51.100.0/24", RTTMs: 23.5, Count: 1}) {
			t.Errorf("report = %+v", r)
		}
		if _, err := r.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no report within 2s")
	}
	bad := NewReporter(NewCollector(CollectorOptions{}), ReporterOptions{Region: "x", Token: "tok", Targets: []string{dns.URL + "/wrong"}})
	bad.col.Observe(netip.MustParseAddr("198.51.100.9"), time.Millisecond)
	if err := bad.Flush(context.Background()); err == nil {
		t.Error("Flush to a 404 target: want an error")
	}
	noToken := NewReporter(NewCollector(CollectorOptions{}), ReporterOptions{Region: "x", Token: "wrong", Targets: []string{dns.URL + "/v1/rtt"}})
	noToken.col.Observe(netip.MustParseAddr("198.51.100.9"), time.Millisecond)
	if err := noToken.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Errorf("Flush with a wrong token: %v, want an error naming the admin token", err)
	}
}

func TestReportValidate(t *testing.T) {
	for _, tt := range []struct {
		r  Report
		ok bool
	}{
		{Report{Region: "a", Samples: []Sample{{Net: "198.51.100.0/24", RTTMs: 1, Count: 1}}}, true},
		{Report{Samples: []Sample{}}, false},
		{Report{Region: "a", Samples: []Sample{{Net: "198.51.100.0/16", RTTMs: 1, Count: 1}}}, false},
		{Report{Region: "a", Samples: []Sample{{Net: "198.51.100.0/24", RTTMs: -1, Count: 1}}}, false},
		{Report{Region: "a", Samples: []Sample{{Net: "198.51.100.0/24", RTTMs: 1, Count: 0}}}, false},
		{Report{Region: "a", Samples: []Sample{{Net: "198.51.100.0/24", RTTMs: 1, Count: MaxSampleCount}}}, true},
		{Report{Region: "a", Samples: []Sample{{Net: "198.51.100.0/24", RTTMs: 1, Count: MaxSampleCount + 1}}}, false},
		{Report{Region: "a", Samples: []Sample{{Net: "198.51.100.0/24", RTTMs: 1, Count: 1e9}}}, false},
		{Report{Region: "a", Samples: make([]Sample, MaxReportSamples+1)}, false},
	} {
		if _, err := tt.r.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v", tt.r, err)
		}
	}
}
