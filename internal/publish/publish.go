// Package publish puts the CDN's routing decisions into a DNS provider that
// is not kubecdn's own dns: Amazon Route 53 (package route53) or any server
// that takes RFC 2136 dynamic updates with TSIG (package rfc2136).
//
// A Desired is what the CDN file and the regions' load balancers say the
// records must be; a Publisher makes the provider agree with it, touching
// only names this CDN owns. Which names those are is decided by package
// registry, the same for every provider: a TXT record beside each name says
// who owns it, a name that has records but no such TXT, or the TXT of
// another owner, is never changed, so two CDNs (or a CDN and hand-made
// records) can share a zone, and names the owner holds that Desired no
// longer lists are deleted with their TXT. A provider lists its zone, asks
// the registry, plans the difference and applies it.
package publish

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish/registry"
)

// Desired is every name one CDN publishes in one zone.
type Desired struct {
	// Zone is the zone's apex, lower case, without a trailing dot.
	Zone string
	// Owner identifies the CDN (config.CDN.Owner).
	Owner string
	Names []Name
}

// Name is one DNS name and the regions that answer for it.
type Name struct {
	// FQDN is lower case, without a trailing dot, inside Zone.
	FQDN string
	TTL  time.Duration
	// Policy chooses among Targets: latency, geo, weighted, failover or
	// all. A name with one target and policy "all" is a plain record set.
	Policy  config.Policy
	Targets []Target
}

// Target is one region's answer for a Name.
type Target struct {
	// Region is the region's name; it is the record set's identifier.
	Region string
	// Provider of the region (aws, gcp, azure, kops, local); Route 53's
	// latency policy needs an AWS region, see Location.
	Provider string
	// Location of the region, for geolocation answers; may be nil.
	Location *config.Location
	// Addresses of the region's load balancer (A and AAAA records), or
	// Hostname when the load balancer has a name instead (CNAME); exactly
	// one of the two is set.
	Addresses []netip.Addr
	Hostname  string
	// Weight for the weighted policy (0 takes the target out).
	Weight int
	// Order for the failover policy: 0 is the primary, then 1, 2, ...
	Order int
	// Health is how the provider checks the target, when it can.
	Health Health
}

// Health is a provider-side health check of one target.
type Health struct {
	// Protocol is "http" or "tcp"; empty means no health check.
	Protocol string
	// Port probed.
	Port uint16
	// Path of an http check.
	Path string
	// Host header (and TLS name) of an http check; the Name's FQDN if empty.
	Host string
}

// Action says what a Change does.
type Action string

// The actions.
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Change is one record set (or health check) changed, or that would be in a
// dry run.
type Change struct {
	Action Action
	// Name is the FQDN, Type the record type (A, AAAA, CNAME, TXT) or
	// "HEALTHCHECK", SetID the record set identifier (region) if any.
	Name   string
	Type   string
	SetID  string
	Detail string
}

func (c Change) String() string {
	s := fmt.Sprintf("%s %s %s", c.Action, c.Type, c.Name)
	if c.SetID != "" {
		s += " [" + c.SetID + "]"
	}
	if c.Detail != "" {
		s += " " + c.Detail
	}
	return s
}

// Publisher makes a provider's records agree with a Desired.
type Publisher interface {
	// Publish changes the provider so that the owner's names are exactly
	// d.Names and returns what it changed; with dryRun it changes nothing
	// and returns what it would change. Running it twice with the same d
	// changes nothing the second time. A name owned by someone else is an
	// error that names the owner (*OwnedError), and nothing of that name is
	// changed; other names still are.
	Publish(ctx context.Context, d Desired, dryRun bool) ([]Change, error)
}

// OwnedError is the refusal to change a name another owner (or no kubecdn)
// holds; package registry decides it for every provider.
type OwnedError = registry.OwnedError

// Validate checks d for mistakes a Publisher would otherwise send to the
// provider.
func (d Desired) Validate() error {
	if d.Zone == "" || d.Owner == "" {
		return fmt.Errorf("publish: zone and owner are required")
	}
	seen := map[string]bool{}
	for _, n := range d.Names {
		if n.FQDN != d.Zone && !strings.HasSuffix(n.FQDN, "."+d.Zone) {
			return fmt.Errorf("publish: %s is not inside the zone %s", n.FQDN, d.Zone)
		}
		if seen[n.FQDN] {
			return fmt.Errorf("publish: %s is listed twice", n.FQDN)
		}
		seen[n.FQDN] = true
		regions := map[string]bool{}
		for _, t := range n.Targets {
			if (len(t.Addresses) == 0) == (t.Hostname == "") {
				return fmt.Errorf("publish: %s region %s: exactly one of addresses and hostname is required", n.FQDN, t.Region)
			}
			if regions[t.Region] {
				return fmt.Errorf("publish: %s: region %s is listed twice", n.FQDN, t.Region)
			}
			regions[t.Region] = true
		}
	}
	return nil
}

// Sleep waits d, or until ctx is done (then it returns ctx's error). It is
// the wait of the publishers' rate limits and retries, and of deploy's
// drains.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
