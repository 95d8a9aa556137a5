package gslb

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/bearer"
)

// SetRouted takes region out of the answers (in false) or puts it back (in
// true), for the CDN hostnames and the app services alike; the region's
// "<region>.edges" name keeps answering (child regions reach their shield
// by it). A region out is not answered however healthy it is, unless no
// serving region of the address family is both healthy and in: then the
// dns fails open as when every region is down, and the policy chooses
// among every serving region with all their edges, as if none were out.
// Its demand is still counted: its users are displaced demand again.
//
// The switch is kept by region name for as long as the process runs,
// across reloads of the file; a region that a reload adds starts in. The
// answers change with the next query: the cached plans are those of the
// old view, which is replaced. It returns an *unknownRegionError for a name
// the running file does not have.
func (s *Server) SetRouted(region string, in bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.view.Load()
	if !v.st.hasRegion(region) {
		return &unknownRegionError{region}
	}
	if s.out[region] == !in {
		return nil
	}
	if in {
		delete(s.out, region)
	} else {
		s.out[region] = true
	}
	s.rebuildLocked(v.st)
	s.log.Warn("region routing changed", "region", region, "routed", in)
	return nil
}

// Routed reports whether region is in the answers (see SetRouted).
func (s *Server) Routed(region string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.out[region]
}

func (st *static) hasRegion(name string) bool {
	for _, r := range st.regions {
		if r.Name == name {
			return true
		}
	}
	return false
}

// exportRoutedLocked sets kubecdn_dns_region_routed for every region of st.
// s.mu must be held.
func (s *Server) exportRoutedLocked(st *static) {
	for _, r := range st.regions {
		s.m.regionRouted.WithLabelValues(r.Name).Set(b2f(!s.out[r.Name]))
	}
}

// maxRouteBody bounds a RouteRequest: it is one boolean.
const maxRouteBody = 1 << 10

// handleRoute serves POST adminapi.RoutePattern: the token first, then a
// RouteRequest whose "in" is required (an empty body takes nothing out).
func (s *Server) handleRoute(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r, "region routing") {
		return
	}
	var req adminapi.RouteRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRouteBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.In == nil {
		msg := `body must be {"in": true} or {"in": false}`
		if err != nil && !errors.Is(err, io.EOF) {
			msg += ": " + err.Error()
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	name := r.PathValue("name")
	if err := s.SetRouted(name, *req.In); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	writeJSON(w, adminapi.RegionRoute{Region: name, Routed: s.Routed(name)})
}

// authorized checks the admin bearer token of a write (or a lookup that
// reveals the answers to any network) and answers 401 when it is missing
// or wrong.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, what string) bool {
	if bearer.Authorized(r, s.o.AdminToken) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="kubecdn-dns"`)
	http.Error(w, what+" needs the admin bearer token", http.StatusUnauthorized)
	return false
}
