package rtt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/kubecdn/kubecdn/internal/bearer"
)

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	// Region is the edge's region name, sent in every Report.
	Region string
	// Targets are the full URLs of the dns admin endpoints, e.g.
	// http://10.0.0.53:9053/v1/rtt; every report goes to each.
	Targets []string
	// Token is the admin bearer token the dns requires of reports (the
	// edges' KUBECDN_ADMIN_TOKEN); without it the dns refuses them.
	Token string
	// Interval between reports; if zero, 10s.
	Interval time.Duration
	// Client sends the reports; if nil, one with a 5s timeout.
	Client *http.Client
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
}

// Reporter periodically drains a Collector and POSTs a Report to every
// target. Samples are not resent when a target is down: RTT estimates are
// only useful fresh.
type Reporter struct {
	col *Collector
	o   ReporterOptions
}

// NewReporter returns a Reporter of col's samples.
func NewReporter(col *Collector, o ReporterOptions) *Reporter {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Reporter{col: col, o: o}
}

// Run reports every Interval until ctx ends, then sends a last report.
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.Background(), time.Second)
			err := r.Flush(last)
			cancel()
			if err != nil {
				r.o.Logger.Warn("last rtt report failed", "err", err)
			}
			return nil
		case <-t.C:
			if err := r.Flush(ctx); err != nil {
				r.o.Logger.Warn("rtt report failed", "err", err)
			}
		}
	}
}

// Flush drains the collector and sends one report now (nothing when there
// are no samples). It returns the first error of any target.
func (r *Reporter) Flush(ctx context.Context) error {
	samples := r.col.Drain()
	if len(samples) == 0 {
		return nil
	}
	body, err := json.Marshal(Report{Region: r.o.Region, Samples: samples})
	if err != nil {
		return fmt.Errorf("encoding rtt report: %w", err)
	}
	var first error
	for _, t := range r.o.Targets {
		if err := r.post(ctx, t, body); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (r *Reporter) post(ctx context.Context, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("posting rtt report to %s: %w", target, err)
	}
	req.Header.Set("Content-Type", "application/json")
	bearer.Set(req, r.o.Token)
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("posting rtt report: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("posting rtt report to %s: refused: the dns and this edge need the same admin token", target)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting rtt report to %s: status %s", target, resp.Status)
	}
	return nil
}
