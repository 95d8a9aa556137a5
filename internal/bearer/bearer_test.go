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
