package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/bearer"
)

// PurgeResult is what one region's edges said to a purge.
type PurgeResult struct {
	Region string `json:"region"`
	// Skipped is set for a region that is not open (its edges do not run,
	// so there is nothing to purge now).
	Skipped  bool          `json:"skipped,omitempty"`
	State    string        `json:"state"`
	Edges    int           `json:"edges"`
	Purged   int           `json:"purged"` // objects, summed over the edges
	Duration time.Duration `json:"duration"`
	Err      error         `json:"-"` // every failed edge, joined; nil when all succeeded
}

// Purge sends req to every edge admin of every open region at once, with
// the bearer token, and returns one result per target in the order given.
// Each request is bounded by ctx and 5s.
func Purge(ctx context.Context, targets []Target, token string, req adminapi.PurgeRequest) []PurgeResult {
	return PurgeWith(ctx, defaultClient(), targets, token, req)
}

// PurgeWith is Purge with a given HTTP client (nil: Purge's).
func PurgeWith(ctx context.Context, client *http.Client, targets []Target, token string, req adminapi.PurgeRequest) []PurgeResult {
	if client == nil {
		client = defaultClient()
	}
	body, err := json.Marshal(req)
	out := make([]PurgeResult, len(targets))
	if err != nil {
		for i, t := range targets {
			out[i] = PurgeResult{Region: t.Region, State: t.State, Err: fmt.Errorf("encoding the purge: %w", err)}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, t := range targets {
		r := &out[i]
		*r = PurgeResult{Region: t.Region, State: t.State, Edges: len(t.Admin)}
		if t.State != StateOpen {
			r.Skipped, r.Edges = true, 0
			continue
		}
		if t.Error != "" {
			r.Err = errors.New(t.Error)
			continue
		}
		if len(t.Admin) == 0 {
			r.Err = fmt.Errorf("region %s has no edge admin URL", t.Region)
			continue
		}
		wg.Go(func() {
			start := time.Now()
			n := make([]int, len(t.Admin))
			errs := make([]error, len(t.Admin))
			var ewg sync.WaitGroup
			for j, admin := range t.Admin {
				ewg.Go(func() { n[j], errs[j] = purgeOne(ctx, client, admin, token, body) })
			}
			ewg.Wait()
			for _, k := range n {
				r.Purged += k
			}
			r.Err = errors.Join(errs...)
			r.Duration = time.Since(start)
		})
	}
	wg.Wait()
	return out
}

// purgeOne posts one purge to one edge admin listener.
func purgeOne(ctx context.Context, client *http.Client, admin, token string, body []byte) (int, error) {
	url := strings.TrimRight(admin, "/") + adminapi.PurgePath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	bearer.Set(req, token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err // already names the URL
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, fmt.Errorf("%s: reading the answer: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s: %s", url, resp.Status, firstLine(b))
	}
	var pr adminapi.PurgeResponse
	if err := json.Unmarshal(b, &pr); err != nil {
		return 0, fmt.Errorf("%s: bad answer: %w", url, err)
	}
	return pr.Purged, nil
}
