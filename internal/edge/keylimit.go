package edge

// serveCacheableKey serves a GET or HEAD through the cache, unless its cache
// key is longer than the configured cap: then it is passed to the upstream
// and the response is not stored. Every byte of a stored key is held in
// memory (the tier's item, the purge index), so without a cap a client
// sending unique long URLs fills the memory with keys.
func (x *exchange) serveCacheableKey() {
	if keyTooLong(x.ri.pk, x.rt.cfg.MaxKeyBytes) {
		x.s.metrics.longKeys.Inc()
		x.pass("bypass")
		return
	}
	x.serveCacheable(true)
}

// keyTooLong reports whether a primary key exceeds max bytes (0: no cap).
func keyTooLong(pk string, max int) bool { return max > 0 && len(pk) > max }
