package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/bearer"
	"github.com/kubecdn/kubecdn/internal/ops"
)

// networksTimeout bounds one lookup of the status page; it runs every
// second.
const networksTimeout = 2 * time.Second

// Networks tells the status page which region answers each client network
// the file places. It asks the running dns's admin listener (GET
// /v1/resolve, with the admin token) rather than sending it queries with
// EDNS Client Subnet: the same routing answers, and the status page's own
// lookups never count as users' demand (which alone would make a closed
// region's demand about one query a second per network placed near it).
func (u *Up) Networks(ctx context.Context, _ []ops.Target) ([]ops.NetworkRoute, error) {
	nets := u.cfg.Spec.Routing.Geo.Networks
	if len(nets) == 0 || len(u.cfg.Spec.Hostnames) == 0 {
		return nil, nil
	}
	name := u.cfg.Spec.Hostnames[0]
	client := &http.Client{Timeout: networksTimeout} // the default transport: loopback is never proxied
	out := make([]ops.NetworkRoute, len(nets))
	var wg sync.WaitGroup
	for i, n := range nets {
		out[i] = ops.NetworkRoute{Network: n.CIDR, Label: n.Label}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &out[i]
			res, err := u.resolveAs(ctx, client, name, n.CIDR)
			if err != nil {
				r.Error = err.Error()
				return
			}
			r.Addrs = res.Addrs
			if len(res.Regions) > 0 {
				r.Region = res.Regions[0]
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// resolveAs asks the dns which A records it would answer for name to a
// resolver serving the network cidr, without counting it as demand.
func (u *Up) resolveAs(ctx context.Context, client *http.Client, name, cidr string) (adminapi.Resolution, error) {
	var res adminapi.Resolution
	q := url.Values{"name": {name}, "network": {cidr}, "type": {"A"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+u.lay.DNSAdmin+adminapi.ResolvePath+"?"+q.Encode(), nil)
	if err != nil {
		return res, err
	}
	bearer.Set(req, u.token)
	resp, err := client.Do(req)
	if err != nil {
		return res, fmt.Errorf("asking the dns: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return res, fmt.Errorf("asking the dns: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("asking the dns: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return res, fmt.Errorf("asking the dns: bad answer: %w", err)
	}
	if len(res.Addrs) == 0 {
		return res, errors.New("no answer (" + strings.ToLower(res.Rcode) + ")")
	}
	return res, nil
}
