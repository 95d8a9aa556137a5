package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

// DNSSource talks to every dns replica's admin listener: it reads their
// demand per nearest region (GET /v1/demand) for the displaced part of a
// Sample, and moves a region in or out of their answers (POST
// /v1/regions/NAME/route) for an Actuator's Route step.
type DNSSource struct {
	// Admins are the replicas' admin base URLs (http://127.0.0.1:9053).
	Admins []string
	// Token is the admin bearer token (the edges' admin token).
	Token string
	// Client makes the calls; if nil, a client that uses no proxy.
	Client *http.Client
	// Timeout bounds each call to one replica; if zero, 2s.
	Timeout time.Duration
	// Now stamps samples; if nil, time.Now.
	Now func() time.Time

	once   sync.Once
	client *http.Client
}

// maxAdminBody bounds what is read of one replica's answer.
const maxAdminBody = 1 << 20

func (d *DNSSource) setup() {
	d.once.Do(func() {
		d.client = d.Client
		if d.client == nil {
			d.client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
		}
	})
}

func (d *DNSSource) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 2 * time.Second
}

// Displaced reads every replica's demand at once and sums, per region that
// open says is not open, the queries per second (over the last 10 s) from
// clients whose nearest region it is: the demand that open regions serve
// for it. Every region not open that a replica knows has an entry, zero
// included. A replica that does not answer, or not with its demand, is
// named in Missing ("dns URL: why"), which makes the sample incomplete:
// the decision freezes rather than guesses with part of the demand.
// Clients the dns could not place count for no region.
func (d *DNSSource) Displaced(ctx context.Context, open func(region string) bool) Sample {
	d.setup()
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	views := make([]adminapi.DemandView, len(d.Admins))
	errs := make([]error, len(d.Admins))
	each(d.Admins, func(i int, base string) {
		errs[i] = d.call(ctx, http.MethodGet, base+adminapi.DemandPath, nil, &views[i])
	})
	s := Sample{At: now(), Displaced: map[string]float64{}, DNSRoutes: map[string]map[string]bool{}}
	for i, base := range d.Admins {
		if errs[i] != nil {
			s.Missing = append(s.Missing, fmt.Sprintf("dns %s: %v", base, errs[i]))
			continue
		}
		if views[i].Routed != nil {
			s.DNSRoutes[base] = views[i].Routed
		}
		for _, r := range views[i].Regions {
			if !open(r.Region) {
				s.Displaced[r.Region] += r.Rate10s
			}
		}
	}
	return s
}

// Route takes region out of every replica's answers (in false) or puts it
// back (in true). Every replica is asked, and the error names each one
// that did not confirm: a replica left unchanged keeps answering the old
// way, so the step has failed and is retried.
func (d *DNSSource) Route(ctx context.Context, region string, in bool) error {
	return d.route(ctx, d.Admins, region, in)
}

// RouteReplica is Route on one replica alone (its admin base URL), for a
// replica that disagrees with the others: a restarted one.
func (d *DNSSource) RouteReplica(ctx context.Context, replica, region string, in bool) error {
	return d.route(ctx, []string{replica}, region, in)
}

func (d *DNSSource) route(ctx context.Context, admins []string, region string, in bool) error {
	d.setup()
	body, err := json.Marshal(adminapi.RouteRequest{In: &in})
	if err != nil {
		return fmt.Errorf("route %s: %w", region, err)
	}
	errs := make([]error, len(admins))
	each(admins, func(i int, base string) {
		var rr adminapi.RegionRoute
		err := d.call(ctx, http.MethodPost, base+adminapi.RoutePath(region), body, &rr)
		if err == nil && (rr.Region != region || rr.Routed != in) {
			err = fmt.Errorf("answered %s routed %v", rr.Region, rr.Routed)
		}
		if err != nil {
			errs[i] = fmt.Errorf("dns %s: route %s in=%v: %w", base, region, in, err)
		}
	})
	return errors.Join(errs...)
}

// each runs f for every replica of admins at once and waits for all of
// them.
func each(admins []string, f func(i int, base string)) {
	var wg sync.WaitGroup
	for i, base := range admins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i, strings.TrimRight(base, "/"))
		}()
	}
	wg.Wait()
}

// call sends one request with the token within the timeout and decodes a
// 200 answer into out.
func (d *DNSSource) call(ctx context.Context, method, target string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	return AdminClient{Client: d.client, Token: d.Token}.Do(ctx, method, target, body, out)
}
