package edge

import (
	"net/http"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

// Connection drain (adminapi.DrainPath): once the dns no longer answers
// with this edge's region, clients that keep a connection open would stay
// here for as long as they keep it. While draining, every tier ends each
// kept-alive connection after its current response, with Connection:
// close, and closes the idle ones, so clients reconnect where the dns now
// sends them; the edge serves on meanwhile. net/http does both itself with
// keep-alives off (an HTTP/2 connection sends GOAWAY when its next stream
// ends; an idle one is left to the idle timeout); the fast path closes after the
// response (serveFast) and closes its idle connections here; the io_uring
// loop does the same on its own thread (uringServer.shedIdle); HTTP/3
// connections get GOAWAY, and each one opened meanwhile gets it after its
// first request (h3.go). A
// connection that has not had its first request yet is left alone: its
// client is about to send one.

// SetDrain turns the connection drain on or off.
func (s *Server) SetDrain(on bool) {
	s.srvMu.Lock()
	s.connDrain.Store(on)
	for _, h := range s.httpSrvs {
		h.SetKeepAlivesEnabled(!on) // off also closes the idle connections
	}
	s.srvMu.Unlock()
	if !on {
		return
	}
	s.fast.mu.Lock()
	for c, fc := range s.fast.conns {
		if fc.kept.Load() && !fc.busy.Load() {
			c.Close()
		}
	}
	s.fast.mu.Unlock()
	s.uring.Load().wakeUp()
	s.h3.Load().goAway()
}

// addHTTPServer puts h under the drain (Run, for each net/http server of
// the public listeners).
func (s *Server) addHTTPServer(h *http.Server) {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	s.httpSrvs = append(s.httpSrvs, h)
	if s.connDrain.Load() {
		h.SetKeepAlivesEnabled(false)
	}
}

// handleDrain serves GET and POST adminapi.DrainPath.
func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request) {
	if !s.authorizedOr401(w, r) {
		return
	}
	if r.Method == http.MethodPost {
		var req adminapi.DrainRequest
		if err := decodeJSON(r, 1<<10, &req); err != nil {
			http.Error(w, "bad drain request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if req.Drain != s.connDrain.Load() {
			s.log.Info("connection drain", "drain", req.Drain)
		}
		s.SetDrain(req.Drain)
	}
	writeJSON(w, adminapi.DrainRequest{Drain: s.connDrain.Load()})
}
