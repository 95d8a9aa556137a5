package edge

// softLimitHeadroom is what the Go runtime may hold beyond the memory tier
// and the decoded-metadata cache before the collector works harder:
// the purge index's entries, requests in flight and their garbage,
// goroutine stacks. With the metadata cache at most 64 MiB, the limit stays
// under the 256 MiB the rendered pods get beyond the tier.
const softLimitHeadroom = 128 << 20

// SoftMemoryLimit is the Go memory limit (runtime/debug.SetMemoryLimit) for
// an edge process running cfg. Every per-key structure is bounded by the
// tier, but by default the collector lets the heap grow to twice what is
// live, so a full tier plus the garbage of a burst of long requests would
// pass the pod's limit; with this limit the collector runs before that. The
// `edge` command sets it unless GOMEMLIMIT is given.
func SoftMemoryLimit(cfg Config) int64 {
	mem := cfg.withDefaults().MemoryBytes
	return mem + metaCacheBytes(mem) + softLimitHeadroom
}
