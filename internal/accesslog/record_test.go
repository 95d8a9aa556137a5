package accesslog

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unicode/utf8"
)

// decodeString decodes one JSON string value.
func decodeString(t *testing.T, b []byte) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("not a JSON string: %q: %v", b, err)
	}
	return s
}

// checkString is the differential property: what AppendString writes is
// valid JSON that decodes to what encoding/json's own encoding of s
// decodes to.
func checkString(t *testing.T, s string) {
	t.Helper()
	got := AppendString(nil, s)
	if !utf8.Valid(got) {
		t.Fatalf("AppendString(%q) = %q: not UTF-8", s, got)
	}
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := decodeString(t, got), decodeString(t, want); g != w {
		t.Fatalf("AppendString(%q) decodes to %q, encoding/json's to %q", s, g, w)
	}
	for _, c := range got {
		if c < 0x20 {
			t.Fatalf("AppendString(%q) = %q: raw control byte", s, got)
		}
	}
}

func TestAppendStringHostile(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " inside`, `back\slash`, "new\nline\r\ttab", "\x00\x01\x1f\x7f",
		"bad utf8 \xff\xfe end", "cut rune \xe2\x82", "\u2028line\u2029para", "é ü 日本 🚀",
		`"},"status":999,"x":"`, "</script><script>", "\xed\xa0\x80 surrogate",
	} {
		checkString(t, s)
	}
}

func TestAppendStringRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\"\\\n\r\t\x00\x1f\x7f\xc3\xa9\xe2\x80\xa8\xff\xf0\x9f\x9a\x80 /?=&")
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		checkString(t, string(b))
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkString(t, s) })
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 12, 6, 1, 2, 3, 4_567_890, time.UTC),
		time.Date(1999, 1, 1, 23, 59, 59, 999_999_999, time.FixedZone("x", -5*3600)),
		time.Unix(0, 0),
	} {
		got := string(AppendTime(nil, tm))
		if want := tm.UTC().Format("2006-01-02T15:04:05.000Z"); got != want {
			t.Errorf("AppendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestRecordJSON: every field comes back from encoding/json as it went
// in, hostile header values included.
func TestRecordJSON(t *testing.T) {
	r := Record{
		Time:       time.Date(2026, 12, 6, 1, 2, 3, 45_000_000, time.UTC),
		Client:     netip.MustParseAddrPort("[2001:db8::1]:51234"),
		Method:     "GET",
		Host:       "www.example.com",
		URL:        "/a b?q=\"x\"&z=\x01",
		Protocol:   "HTTP/2",
		TLSVersion: "TLSv1.3",
		Status:     206,
		Bytes:      1024,
		Duration:   12345 * time.Microsecond,
		TTFB:       999 * time.Microsecond,
		Cache:      Miss, UpstreamStatus: 200, UpstreamTime: 7 * time.Millisecond,
		UserAgent: "evil\"},\n{\"status\":1 \xff\xfe",
		Referer:   "https://ref.example/\u2028",
	}
	b := r.AppendJSON(nil, AppendString(nil, "edge-0"), AppendString(nil, "us-\"east"))
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
	want := map[string]any{
		"time": "2026-12-06T01:02:03.045Z", "edge": "edge-0", "region": "us-\"east",
		"client": "2001:db8::1", "client_port": 51234.0, "method": "GET", "host": "www.example.com",
		"url": "/a b?q=\"x\"&z=\x01", "protocol": "HTTP/2", "tls": "TLSv1.3", "status": 206.0, "bytes": 1024.0,
		"duration_ms": 12.345, "ttfb_ms": 0.999, "cache": "miss", "upstream_status": 200.0, "upstream_ms": 7.0,
		"user_agent": "evil\"},\n{\"status\":1 \ufffd\ufffd", // each bad byte one U+FFFD, as encoding/json
		"referer":    "https://ref.example/\u2028",
	}
	if len(got) != len(want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	if tm, ok := Time(b); !ok || !tm.Equal(r.Time) {
		t.Errorf("Time(line) = %v %v, want %v", tm, ok, r.Time)
	}
}

// TestRecordOmits: a plain, cached request has no tls or upstream fields.
func TestRecordOmits(t *testing.T) {
	r := Record{Time: time.Unix(1, 0), Method: "GET", Status: 200, Cache: Hit, Protocol: "HTTP/1.1"}
	var got map[string]any
	if err := json.Unmarshal(r.AppendJSON(nil, []byte(`""`), []byte(`""`)), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tls", "upstream_status", "upstream_ms", "user_agent", "referer", "client"} {
		if _, ok := got[k]; ok {
			t.Errorf("field %s present: %v", k, got)
		}
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	r := Record{Time: time.Now(), Client: netip.MustParseAddrPort("192.0.2.1:80"), Method: "GET", Host: "h", URL: "/x", Status: 200, Cache: Hit, UserAgent: "curl/8"}
	buf := make([]byte, 0, 1024)
	e, g := AppendString(nil, "e"), AppendString(nil, "g")
	if n := testing.AllocsPerRun(100, func() { buf = r.AppendJSON(buf[:0], e, g) }); n != 0 {
		t.Errorf("AppendJSON: %v allocations per record, want 0", n)
	}
}
