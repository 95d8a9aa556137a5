package wire

import "testing"

func TestHeaderValue(t *testing.T) {
	raw := []byte("GET / HTTP/1.1\r\nHost: h\r\nuser-AGENT:  curl/8 \r\nX-Referer: no\r\nReferer:\r\n\r\n")
	for _, c := range []struct{ name, want string }{{"user-agent", "curl/8"}, {"referer", ""}, {"host", "h"}, {"cookie", ""}} {
		if got := string(HeaderValue(raw, c.name)); got != c.want {
			t.Errorf("HeaderValue(%s) = %q, want %q", c.name, got, c.want)
		}
	}
}
