package kubeops

import (
	"cmp"
	"context"
	"fmt"
	"sync"

	"github.com/kubecdn/kubecdn/internal/config"
	corev1 "k8s.io/api/core/v1"
)

// Admins lists the admin URLs of every edge pod and every dns pod of one
// region, ready or not, and registers them with Client. Regions names one
// dns per region, which is enough to read state; the autoscaler's drain
// switch lives in each dns process and warming may go to any edge, so it
// must reach every replica. A region whose namespace holds no pods (closed,
// or pruned) has none; an API server that cannot be reached within
// Options.Timeout is an error.
func (s *Source) Admins(ctx context.Context, region string) (edges, dns []string, err error) {
	for _, r := range s.cfg.AllRegions() {
		if r.Name != region {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		f, err := s.find(ctx, r)
		if err != nil {
			return nil, nil, err
		}
		if f.tokErr != nil && len(f.edges)+len(f.dns) > 0 {
			// No pods, no calls: a closed region has no token to read.
			return nil, nil, f.tokErr
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range f.edges {
			if u, ok := f.r.proxyURL(p); ok {
				edges = append(edges, u)
				s.routes[u] = f.r
			}
		}
		for _, p := range f.dns {
			if u, ok := f.r.proxyURL(p); ok {
				dns = append(dns, u)
				s.routes[u] = f.r
			}
		}
		return edges, dns, nil
	}
	return nil, nil, fmt.Errorf("%q is not a region of the file", region)
}

// found is what find learnt of one region.
type found struct {
	r          *region
	edges, dns []corev1.Pod
	// tokErr is why the admin token could not be read (Options.Token);
	// apart, as a region without pods needs none.
	tokErr error
}

// find connects to a region and lists its edge and dns pods, and reads its
// admin token when Options.Token, all at once.
func (s *Source) find(ctx context.Context, ref config.RegionRef) (found, error) {
	r, err := s.connect(ref)
	if err != nil {
		return found{}, err
	}
	f := found{r: r}
	ns, sel := s.opts.Render.Namespace, s.sel[ref.Name]
	var edgeErr, dnsErr error
	var wg sync.WaitGroup
	wg.Go(func() { f.edges, edgeErr = r.pods(ctx, ns, "edge", sel.edge) })
	wg.Go(func() { f.dns, dnsErr = r.pods(ctx, ns, "dns", sel.dns) })
	if s.opts.Token {
		wg.Go(func() { f.tokErr = r.readToken(ctx, ns, s.opts.Render.AdminSecret) })
	}
	wg.Wait()
	// One cause is enough: an API server that does not answer fails the
	// listings (and the token) alike.
	return f, cmp.Or(edgeErr, dnsErr)
}
