package edge

import "net/http"

// serveCacheableKey serves a GET or HEAD through the cache, unless its cache
// key is longer than the configured cap: then it is passed to the upstream
// and the response is not stored. Every byte of a stored key is held in
// memory (the tier's item, the purge index), so without a cap a client
// sending unique long URLs fills the memory with keys.
func (s *Server) serveCacheableKey(w http.ResponseWriter, r *http.Request, rt *liveConfig, ri reqInfo) {
	if keyTooLong(ri.pk, rt.cfg.MaxKeyBytes) {
		s.metrics.longKeys.Inc()
		s.pass(w, r, rt, ri, "bypass")
		return
	}
	s.serveCacheable(w, r, rt, ri, true)
}

// keyTooLong reports whether a primary key exceeds max bytes (0: no cap).
func keyTooLong(pk string, max int) bool { return max > 0 && len(pk) > max }
