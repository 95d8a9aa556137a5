package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
)

// nextState is the state this run leaves (step 3): every active region
// with how to reach it and its addresses, fresh where its deploy read them,
// else the last known ones; every removed region marked as having left DNS
// (when it first did). addrs is the regions that have addresses to publish;
// a region whose edges are down publishes its app endpoints alone.
func (d *deployer) nextState(active []config.RegionRef, removed []string, results map[string]*RegionResult) (addrs map[string]RegionState, next State) {
	addrs = map[string]RegionState{}
	now := d.opts.Now()
	next = State{CDN: d.cfg.Metadata.Name, Updated: now, Regions: map[string]RegionState{}}
	for _, r := range active {
		st := d.state.Regions[r.Name]
		st.Kubeconfig, st.Context, st.Provider, st.Open = r.Cluster.Kubeconfig, r.Cluster.Context, r.Provider, r.Autoscale
		st.LeftDNS = nil
		if a := results[r.Name].Addresses; a != nil {
			st.Edges, st.DNS, st.Endpoints = a.Edges, a.DNS, a.Endpoints
		}
		next.Regions[r.Name] = st
		if results[r.Name].EdgesDown {
			st.Edges = nil // kept in the state for when they are back
		}
		if len(st.Edges) > 0 || len(st.Endpoints) > 0 {
			addrs[r.Name] = st
		}
	}
	for _, name := range removed {
		st := d.state.Regions[name]
		if st.LeftDNS == nil {
			st.LeftDNS = &now
		}
		next.Regions[name] = st
	}
	return addrs, next
}

func (d *deployer) knownAddresses() map[string]RegionState {
	out := map[string]RegionState{}
	for name, st := range d.state.Regions {
		if st.LeftDNS == nil && (len(st.Edges) > 0 || len(st.Endpoints) > 0) {
			out[name] = st
		}
	}
	return out
}

// addressed is the CDN file with the addresses in addrs (WithAddresses);
// a load-balancer name that does not resolve is reported, not fatal.
func (d *deployer) addressed(ctx context.Context, addrs map[string]RegionState) *config.CDN {
	cfg, errs := WithAddresses(ctx, d.cfg, addrs, d.opts.Resolver)
	for _, err := range errs {
		d.printf("dns", "%v", err)
	}
	return cfg
}

var serviceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Service"}

// readAddresses waits until the edge and dns load balancers, and those of
// the app services in this region, have an address.
func (d *deployer) readAddresses(ctx context.Context, c *Cluster, region string, objs []*unstructured.Unstructured) (*RegionState, error) {
	type want struct {
		ns, name string
		port     int32
		put      func(*RegionState, []Address)
	}
	ns := d.opts.Render.Namespace
	wants := []want{
		{ns, edgePublicService, edgePublicPort, func(s *RegionState, a []Address) { s.Edges = a }},
		{ns, dnsPublicService, dnsPublicPort, func(s *RegionState, a []Address) { s.DNS = a }},
	}
	for _, s := range d.cfg.AppServices() {
		if !s.InRegion(region) {
			continue
		}
		var svc *corev1.Service
		for _, o := range objs {
			if o.GetKind() == "Service" && o.GetName() == s.Service && (s.Namespace == "" || o.GetNamespace() == s.Namespace) {
				svc = &corev1.Service{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, svc); err != nil {
					return nil, fmt.Errorf("service %s: %w", s.Service, err)
				}
				break
			}
		}
		if svc == nil {
			return nil, fmt.Errorf("%s: no Service %q among the app's objects in this region", s.Path, s.Service)
		}
		port, err := apps.ServicePort(svc, s.AppService)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		host := s.Hostname
		wants = append(wants, want{svc.Namespace, svc.Name, port, func(st *RegionState, a []Address) {
			if st.Endpoints == nil {
				st.Endpoints = map[string][]Address{}
			}
			st.Endpoints[host] = a
		}})
	}
	out := &RegionState{}
	for _, w := range wants {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(serviceGVK)
		u.SetNamespace(w.ns)
		u.SetName(w.name)
		announced := false
		for {
			live, err := c.Get(ctx, u, "default")
			if err != nil {
				return out, err
			}
			var as []Address
			if live != nil {
				ing, _, _ := unstructured.NestedSlice(live.Object, "status", "loadBalancer", "ingress")
				for _, x := range ing {
					m, _ := x.(map[string]any)
					ip, _ := m["ip"].(string)
					host, _ := m["hostname"].(string)
					if ip != "" || host != "" {
						as = append(as, Address{IP: ip, Hostname: host, Port: w.port})
					}
				}
			}
			if len(as) > 0 {
				w.put(out, as)
				break
			}
			if !announced {
				d.printf(region, "waiting for the load balancer of service/%s/%s", w.ns, w.name)
				announced = true
			}
			if err := d.opts.Sleep(ctx, d.opts.Poll); err != nil {
				return out, fmt.Errorf("service/%s/%s has no load-balancer address after %s", w.ns, w.name, d.opts.Timeout)
			}
		}
	}
	return out, nil
}

func addressLine(a *RegionState) string {
	if a == nil {
		return "no addresses"
	}
	f := func(as []Address) string {
		var s []string
		for _, x := range as {
			if x.Hostname != "" {
				s = append(s, x.Hostname)
			} else {
				s = append(s, x.IP)
			}
		}
		return strings.Join(s, ",")
	}
	out := "edges " + f(a.Edges)
	if len(a.DNS) > 0 {
		out += "  dns " + f(a.DNS)
	}
	hosts := make([]string, 0, len(a.Endpoints))
	for h := range a.Endpoints {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		out += "  " + h + " " + f(a.Endpoints[h])
	}
	return out
}
