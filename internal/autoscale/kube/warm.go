package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/autoscale"
)

// maxAnswer bounds what is read of one admin answer (a hot-key list of the
// edge's cap is well below it).
const maxAnswer = 4 << 20

// Warm asks the edges of the regions that served the region's users (the
// running regions whose edges counted requests from clients nearest to
// it) for their hot keys, merges them by URL (hits summed), keeps the
// hottest within HotKeys and HotBytes, and has one of the region's edges
// fetch them. One edge is enough: its misses go to the peer that owns
// each key, so every owner stores its keys, fetched once.
func (a *Actuator) Warm(ctx context.Context, region string) error {
	found := reachAll(ctx, a.CDN, a.Reach)
	if err := found.errs[region]; err != nil {
		return fmt.Errorf("finding %s's edges: %w", region, err)
	}
	targets := found.edges[region]
	if len(targets) == 0 {
		return fmt.Errorf("%s has no edges to warm", region)
	}
	n, limit := a.HotKeys, a.HotBytes
	if n <= 0 {
		n = DefaultHotKeys
	}
	if limit <= 0 {
		limit = DefaultHotBytes
	}
	var sources []string
	for _, ref := range a.CDN.AllRegions() {
		if ref.Name != region && found.errs[ref.Name] == nil {
			sources = append(sources, found.edges[ref.Name]...)
		}
	}
	keys, err := a.hotKeys(ctx, region, sources, n, limit)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil // no edge served its users anything yet
	}
	body := adminapi.WarmRequest{URLs: keys}
	var errs []error
	for _, t := range targets {
		var res adminapi.WarmResult
		if err := call(ctx, a.Reach.Client(), http.MethodPost, t+adminapi.WarmPath, body, &res); err != nil {
			errs = append(errs, fmt.Errorf("edge %s: %w", t, err))
			continue // another edge reaches the same owners
		}
		return nil
	}
	return fmt.Errorf("warming %s: %w", region, errors.Join(errs...))
}

// hotKeys merges the hot keys of the source edges that served clients
// nearest to region, hottest first, bounded by n keys and limit bytes.
func (a *Actuator) hotKeys(ctx context.Context, region string, sources []string, n int, limit int64) ([]string, error) {
	type merged struct {
		bytes int64
		hits  uint64
	}
	var mu sync.Mutex
	all := map[string]*merged{}
	var errs []error
	var wg sync.WaitGroup
	q := url.Values{"n": {fmt.Sprint(n)}, "bytes": {fmt.Sprint(limit)}}.Encode()
	for _, s := range sources {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, a.callTimeout())
			defer cancel()
			var d adminapi.EdgeDemand
			if err := call(cctx, a.Reach.Client(), http.MethodGet, s+adminapi.EdgeDemandPath, nil, &d); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("edge %s: %w", s, err))
				mu.Unlock()
				return
			}
			if !servedFor(d, region) {
				return
			}
			var h adminapi.HotKeys
			err := call(cctx, a.Reach.Client(), http.MethodGet, s+adminapi.HotPath+"?"+q, nil, &h)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("edge %s: %w", s, err))
				return
			}
			for _, k := range h.Keys {
				m := all[k.URL]
				if m == nil {
					m = &merged{}
					all[k.URL] = m
				}
				m.bytes = max(m.bytes, k.Bytes)
				m.hits += k.Hits
			}
		})
	}
	wg.Wait()
	if len(all) == 0 && len(errs) > 0 {
		return nil, fmt.Errorf("no hot keys for %s: %w", region, errors.Join(errs...))
	}
	urls := make([]string, 0, len(all))
	for u := range all {
		urls = append(urls, u)
	}
	sort.Slice(urls, func(i, j int) bool {
		if all[urls[i]].hits != all[urls[j]].hits {
			return all[urls[i]].hits > all[urls[j]].hits
		}
		return urls[i] < urls[j]
	})
	var out []string
	var total int64
	for _, u := range urls {
		if len(out) == n || total+all[u].bytes > limit {
			break
		}
		total += all[u].bytes
		out = append(out, u)
	}
	return out, nil
}

// servedFor reports whether an edge served requests to clients nearest to
// region.
func servedFor(d adminapi.EdgeDemand, region string) bool {
	for _, r := range d.Regions {
		if r.Region == region && r.Requests > 0 {
			return true
		}
	}
	return false
}

// call sends one admin request (body as JSON, if any) and decodes a 200
// answer into out; the caller's context bounds it.
func call(ctx context.Context, c *http.Client, method, target string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	return autoscale.AdminClient{Client: c, Limit: maxAnswer}.Do(ctx, method, target, b, out)
}
