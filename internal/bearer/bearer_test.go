package bearer

import (
	"net/http"
	"testing"
)

func TestAuthorized(t *testing.T) {
	for _, tt := range []struct {
		name, token, header string
		want                bool
	}{
		{"match", "s3cret", "Bearer s3cret", true},
		{"match with trailing space", "s3cret", "Bearer s3cret ", true},
		{"wrong token", "s3cret", "Bearer s3cre", false},
		{"no header", "s3cret", "", false},
		{"other scheme", "s3cret", "Basic s3cret", false},
		{"bare token", "s3cret", "s3cret", false},
		{"server without a token refuses an empty credential", "", "Bearer ", false},
		{"server without a token refuses any credential", "", "Bearer x", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/v1/rtt", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if got := Authorized(r, tt.token); got != tt.want {
				t.Errorf("Authorized(%q, %q) = %v, want %v", tt.header, tt.token, got, tt.want)
			}
		})
	}
}

func TestSetRoundTrip(t *testing.T) {
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/v1/rtt", nil)
	Set(r, "")
	if h := r.Header.Get("Authorization"); h != "" {
		t.Errorf("Set with no token added %q", h)
	}
	Set(r, "tok")
	if !Authorized(r, "tok") || Authorized(r, "other") {
		t.Errorf("Set then Authorized disagree: header %q", r.Header.Get("Authorization"))
	}
}

// Through a Kubernetes API server's pod proxy the token comes in
// ProxyHeader; Authorization, when present, is the one compared.
func TestProxyHeader(t *testing.T) {
	for _, tt := range []struct {
		name, auth, proxied string
		want                bool
	}{
		{"proxied token", "", "Bearer s3cret", true},
		{"wrong proxied token", "", "Bearer other", false},
		{"proxied bare token", "", "s3cret", false},
		{"authorization wins over a right proxied one", "Bearer other", "Bearer s3cret", false},
		{"right authorization beside a wrong proxied one", "Bearer s3cret", "Bearer other", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/v1/purge", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			if tt.proxied != "" {
				r.Header.Set(ProxyHeader, tt.proxied)
			}
			if got := Authorized(r, "s3cret"); got != tt.want {
				t.Errorf("Authorized = %v, want %v", got, tt.want)
			}
		})
	}
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/v1/purge", nil)
	SetProxied(r, "")
	if len(r.Header) != 0 {
		t.Errorf("SetProxied with no token added %v", r.Header)
	}
	SetProxied(r, "tok")
	if !Authorized(r, "tok") || r.Header.Get("Authorization") != "" {
		t.Errorf("SetProxied then Authorized disagree: %v", r.Header)
	}
}
