package dns

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
)

// edgeHealth is the probe state of one edge. The first probe result sets
// the state; after that FailAfter failures in a row mark it down and
// PassAfter successes in a row mark it up.
type edgeHealth struct {
	known  bool
	up     bool
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
		h.known, h.up, h.since = true, ok, now
		return true
	case h.up && h.fails >= failAfter:
		h.up, h.since = false, now
		return true
	case !h.up && h.passes >= passAfter:
		h.up, h.since = true, now
		return true
	}
	return false
}

// probeLoop probes one edge every interval (first probe immediately) until
// ctx ends.
func (s *Server) probeLoop(ctx context.Context, gen uint64, e edgeStatic, h config.Health) {
	t := time.NewTicker(h.Interval.D())
	defer t.Stop()
	url := fmt.Sprintf("http://%s%s", e.addr, config.HealthPath)
	for {
		err := s.probe(ctx, url, h.Timeout.D())
		if ctx.Err() != nil {
			return
		}
		s.probeResult(gen, e.key, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kubecdn-dns-health")
	resp, err := s.probeClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// probeResult records a probe and rebuilds the view when an edge changes.
func (s *Server) probeResult(gen uint64, key string, err error) {
	result := "ok"
	if err != nil {
		result = "fail"
	}
	s.m.probes.WithLabelValues(result).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.view.Load().st
	h := s.health[key]
	if h == nil || gen != s.probeGen {
		return // a loop of an older file version
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	hc := st.cfg.Spec.Routing.Health
	if h.observe(err == nil, msg, hc.FailAfter, hc.PassAfter, s.now()) {
		level := s.log.Info
		if !h.up {
			level = s.log.Warn
		}
		level("edge health changed", "edge", key, "up", h.up, "err", msg)
		s.rebuildLocked(st)
	}
}

// startProbesLocked (re)starts one probe loop per edge of st; the previous
// loops stop (their late results are ignored). Health of edges that stay in
// the file is kept.
func (s *Server) startProbesLocked(st *static) {
	if s.stopProbes != nil {
		s.stopProbes()
		s.stopProbes = nil
	}
	s.probeGen++
	gen := s.probeGen
	keep := map[string]*edgeHealth{}
	for _, r := range st.regions {
		for _, e := range r.edges {
			if h := s.health[e.key]; h != nil {
				keep[e.key] = h
			} else {
				keep[e.key] = &edgeHealth{}
			}
		}
	}
	s.health = keep
	if s.runCtx == nil {
		return // not running yet: Run starts them
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	s.stopProbes = cancel
	hc := st.cfg.Spec.Routing.Health
	for _, r := range st.regions {
		for _, e := range r.edges {
			s.probeWG.Add(1)
			go func() {
				defer s.probeWG.Done()
				s.probeLoop(ctx, gen, e, hc)
			}()
		}
	}
}
