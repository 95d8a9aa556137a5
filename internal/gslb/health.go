package gslb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
)

// edgeHealth is the probe state of one edge or app endpoint. The first
// probe result sets the state; after that FailAfter failures in a row mark
// it down and PassAfter successes in a row mark it up again. An address
// that has never been up (its edges start after the dns, or a region just
// opened) is up at its first success: PassAfter guards against an address
// that failed flapping back, and holding a new one down for PassAfter
// intervals would answer its region as down while /readyz says ready.
type edgeHealth struct {
	known  bool
	up     bool
	wasUp  bool // up at some probe since it was first probed
	fails  int
	passes int
	err    string
	since  time.Time
}

// observe applies one probe result and says whether the up/down state
// changed. It is the pure core of health checking.
func (h *edgeHealth) observe(ok bool, errMsg string, failAfter, passAfter int, now time.Time) (changed bool) {
	if ok {
		h.passes++
		h.fails = 0
		h.err = ""
	} else {
		h.fails++
		h.passes = 0
		h.err = errMsg
	}
	switch {
	case !h.known:
		h.known, h.up, h.wasUp, h.since = true, ok, ok, now
		return true
	case h.up && h.fails >= failAfter:
		h.up, h.since = false, now
		return true
	case !h.up && ok && (!h.wasUp || h.passes >= passAfter):
		h.up, h.wasUp, h.since = true, true, now
		return true
	}
	return false
}

// probeLoop probes one address every interval (first probe immediately)
// until ctx ends.
func (s *Server) probeLoop(ctx context.Context, gen uint64, p probeSpec, h config.Health) {
	t := time.NewTicker(h.Interval.D())
	defer t.Stop()
	for {
		err := s.probeOnce(ctx, p, h.Timeout.D())
		if ctx.Err() != nil {
			return
		}
		s.probeResult(gen, p, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOnce runs one probe of p within timeout: nil is healthy.
func (s *Server) probeOnce(ctx context.Context, p probeSpec, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch p.kind {
	case probeTCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.addr.String())
		if err != nil {
			return err
		}
		c.Close()
		return nil
	case probeHTTP:
		url := "http://" + p.addr.String() + p.path
		return s.probeHTTP(ctx, s.appClient, url, p.host, func(code int) bool { return code >= 200 && code < 400 })
	}
	return s.probeHTTP(ctx, s.probeClient, "http://"+p.addr.String()+config.HealthPath, "", func(code int) bool { return code == http.StatusOK })
}

// noRedirects is c that returns a redirect instead of following it: an app
// answering 3xx is up, wherever it points.
func noRedirects(c *http.Client) *http.Client {
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &nc
}

// probeHTTP GETs url (with the Host header host, if set) and checks the
// status with ok.
func (s *Server) probeHTTP(ctx context.Context, c *http.Client, url, host string, ok func(int) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("User-Agent", "kubecdn-dns-health")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if !ok(resp.StatusCode) {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// probeResult records a probe and rebuilds the view when an address
// changes state.
func (s *Server) probeResult(gen uint64, p probeSpec, err error) {
	result := "ok"
	if err != nil {
		result = "fail"
	}
	s.m.probes.WithLabelValues(result).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.view.Load().st
	h := s.health[p.key]
	if h == nil || gen != s.probeGen {
		return // a loop of an older file version
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	hc := st.cfg.Spec.Routing.Health
	if h.observe(err == nil, msg, hc.FailAfter, hc.PassAfter, s.now()) {
		s.log.Log(context.Background(), healthLevel(h.up), p.what()+" health changed", "key", p.key, "up", h.up, "err", msg)
		s.rebuildLocked(st)
	}
}

// startProbesLocked (re)starts one probe loop per edge and app endpoint of
// st; the previous loops stop (their late results are ignored). Health of
// addresses that stay in the file is kept.
func (s *Server) startProbesLocked(st *static) {
	if s.stopProbes != nil {
		s.stopProbes()
		s.stopProbes = nil
	}
	s.probeGen++
	gen := s.probeGen
	keep := map[string]*edgeHealth{}
	for _, p := range st.probes {
		if h := s.health[p.key]; h != nil {
			keep[p.key] = h
		} else {
			keep[p.key] = &edgeHealth{}
		}
	}
	s.health = keep
	if s.runCtx == nil {
		return // not running yet: Run starts them
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	s.stopProbes = cancel
	hc := st.cfg.Spec.Routing.Health
	for _, p := range st.probes {
		s.probeWG.Add(1)
		go func() {
			defer s.probeWG.Done()
			s.probeLoop(ctx, gen, p, hc)
		}()
	}
}

// upLocked says whether the address with this health key counts as up:
// unknown until its first probe counts as up. s.mu must be held.
func (s *Server) upLocked(key string) bool {
	h := s.health[key]
	return h == nil || !h.known || h.up
}

// healthLevel is the log level of a health change: going down is a
// warning, coming (back) up is news.
func healthLevel(up bool) slog.Level {
	if up {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
