package kubeops

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/bearer"
)

// captureRT is a FAKE transport to an API server: it records the request
// it would send.
type captureRT struct{ got *http.Request }

func (c *captureRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.got = r
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
}

func TestRouterToken(t *testing.T) {
	const base = "https://api.example:6443/api/v1/namespaces/kubecdn/pods/kubecdn-edge-0:9090/proxy"
	tests := []struct {
		name, callerAuth, regionToken, want string
	}{
		{"the region's own token", "", "region-tok", "Bearer region-tok"},
		{"a token the caller gives wins", "Bearer given", "region-tok", "Bearer given"},
		{"no token at all", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &captureRT{}
			s := &Source{routes: map[string]*region{base: {rt: rt, token: tt.regionToken}}}
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/purge", nil)
			if tt.callerAuth != "" {
				req.Header.Set("Authorization", tt.callerAuth)
			}
			if _, err := (router{s}).RoundTrip(req); err != nil {
				t.Fatal(err)
			}
			if h := rt.got.Header.Get("Authorization"); h != "" {
				t.Errorf("Authorization %q reached the API server's transport; it is the API server's own", h)
			}
			if h := rt.got.Header.Get(bearer.ProxyHeader); h != tt.want {
				t.Errorf("%s = %q, want %q", bearer.ProxyHeader, h, tt.want)
			}
			if req.Header.Get("Authorization") != tt.callerAuth {
				t.Errorf("the caller's request was changed")
			}
		})
	}
	s := &Source{routes: map[string]*region{}}
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if _, err := (router{s}).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "not a pod proxy URL") {
		t.Errorf("an unknown URL: %v", err)
	}
}
