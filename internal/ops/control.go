package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

// DefaultControl is the control API of a running `kubecdn up`.
const DefaultControl = "http://127.0.0.1:9400"

// Control is a client of the control API of `kubecdn up`:
// GET /v1/regions (JSON []Target) and GET /v1/token (text/plain).
// It is a statuspage Source.
type Control struct {
	URL    string       // e.g. http://127.0.0.1:9400
	Client *http.Client // if nil, a client without a proxy
}

func (c Control) collector() *Collector {
	return &Collector{client: c.client()}
}

func (c Control) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return defaultClient()
}

// Regions asks for the targets.
func (c Control) Regions(ctx context.Context) ([]Target, error) {
	body, err := c.collector().get(ctx, strings.TrimRight(c.URL, "/")+"/v1/regions", 4<<20)
	if err != nil {
		return nil, err
	}
	var ts []Target
	if err := json.Unmarshal(body, &ts); err != nil {
		return nil, fmt.Errorf("%s/v1/regions: %w", strings.TrimRight(c.URL, "/"), err)
	}
	return ts, nil
}

// Token asks for the admin bearer token.
func (c Control) Token(ctx context.Context) (string, error) {
	body, err := c.collector().get(ctx, strings.TrimRight(c.URL, "/")+"/v1/token", 64<<10)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(body))
	if tok == "" {
		return "", fmt.Errorf("%s/v1/token: empty token", strings.TrimRight(c.URL, "/"))
	}
	return tok, nil
}

// StaticTargets builds targets for a deployed CDN from explicit edge admin
// URLs, each "URL" or "REGION=URL" (without a region, the URL's host names
// it), and an optional dns admin URL shared by all. With only a dns admin
// URL, the dns's regions are asked for by the caller (see DNSTargets).
func StaticTargets(admins []string, dnsAdmin string) ([]Target, error) {
	var out []Target
	idx := map[string]int{}
	for _, a := range admins {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		region, u, ok := strings.Cut(a, "=")
		if !ok {
			u = a
			region = ""
		}
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		if region == "" {
			region = hostOf(u)
		}
		if hostOf(u) == "" {
			return nil, fmt.Errorf("admin URL %q has no host", a)
		}
		i, ok := idx[region]
		if !ok {
			i = len(out)
			idx[region] = i
			out = append(out, Target{Region: region, State: StateOpen, DNSAdmin: dnsAdmin})
		}
		out[i].Admin = append(out[i].Admin, strings.TrimRight(u, "/"))
	}
	return out, nil
}

// DNSTargets adds to targets every region the dns at dnsAdmin knows and
// targets do not name (their health and demand, without edge metrics).
func DNSTargets(ctx context.Context, client *http.Client, dnsAdmin string, targets []Target) ([]Target, error) {
	if client == nil {
		client = defaultClient()
	}
	c := &Collector{client: client}
	d := dnsScrape{url: strings.TrimRight(dnsAdmin, "/")}
	if err := c.getJSON(ctx, d.url+adminapi.StatePath, &d.state); err != nil {
		return targets, err
	}
	have := map[string]bool{}
	for _, t := range targets {
		have[t.Region] = true
	}
	for _, r := range d.state.Regions {
		if have[r.Name] {
			continue
		}
		st := StateOpen
		if !r.Serving {
			st = StateClosed
		}
		t := Target{Region: r.Name, State: st, DNSAdmin: d.url}
		for _, e := range r.Edges {
			t.Public = append(t.Public, e.Addr)
		}
		targets = append(targets, t)
	}
	return targets, nil
}

func hostOf(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	h, _, _ := strings.Cut(rest, "/")
	return h
}
