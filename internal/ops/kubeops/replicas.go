package kubeops

import (
	"cmp"
	"context"
	"fmt"
	"sync"

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
		reg, err := s.connect(r)
		if err != nil {
			return nil, nil, err
		}
		ns, sel := s.opts.Render.Namespace, s.sel[r.Name]
		var ep, dp []corev1.Pod
		var edgeErr, dnsErr, tokErr error
		var wg sync.WaitGroup
		wg.Go(func() { ep, edgeErr = reg.pods(ctx, ns, "edge", sel.edge) })
		wg.Go(func() { dp, dnsErr = reg.pods(ctx, ns, "dns", sel.dns) })
		if s.opts.Token {
			wg.Go(func() { tokErr = reg.readToken(ctx, ns, s.opts.Render.AdminSecret) })
		}
		wg.Wait()
		if err := cmp.Or(edgeErr, dnsErr); err != nil {
			return nil, nil, err
		}
		if tokErr != nil && len(ep)+len(dp) > 0 {
			// No pods, no calls: a closed region has no token to read.
			return nil, nil, tokErr
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range ep {
			if u, ok := reg.proxyURL(p); ok {
				edges = append(edges, u)
				s.routes[u] = reg
			}
		}
		for _, p := range dp {
			if u, ok := reg.proxyURL(p); ok {
				dns = append(dns, u)
				s.routes[u] = reg
			}
		}
		return edges, dns, nil
	}
	return nil, nil, fmt.Errorf("%q is not a region of the file", region)
}
