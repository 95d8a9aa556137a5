// Package edge is kubecdn's data plane: an HTTP caching reverse proxy (a
// shared cache in the sense of RFC 9111) in front of one origin.
//
// # Serving tiers
//
// A plain-HTTP connection meets up to three servers, each handing what it
// cannot answer, with the bytes already read, to the next:
//
//  1. The io_uring loop (uringserve_linux.go, on wire.Ring; Linux, when
//     the kernel allows it): one thread accepts, receives into a shared
//     buffer pool and answers fresh hits held in the memory tier. It owns
//     the idle timeout (fastIdleTimeout), the header timeout
//     (fastReadTimeout) and the send-progress timeout (fastWriteTimeout)
//     of the connections it serves.
//  2. The goroutine fast path (fastpath.go): a strict parser
//     (wire.ParseRequest) answers fresh hits and misses joining a fill in flight;
//     an idle plain connection is parked in the waiter (no goroutine, no
//     buffer) after fastParkAfter, and closed after fastIdleTimeout.
//  3. net/http (handler.go): everything else; its server's IdleTimeout and
//     ReadHeaderTimeout (server.go) apply from the hand-over on. TLS
//     connections (tls.go, h2guard.go) start at tier 2 and HTTP/2 at 3.
//
// # A request's way through the cache
//
// handler.go decides what a request is (refusals, hop trust in hop.go,
// request bodies in reqbody.go) and serves it from the store or through a
// fill. fill.go is the one home of the miss, fill and slice life cycle;
// body.go writes a stored or streaming body to one client; fetch.go sends
// requests up the chain: the peer that owns the key inside the region
// (rendezvous hashing over the region's edges), then the parent (shield)
// edge, then the origin. keys.go is the store's key scheme; purge.go and
// index.go purge by URL, prefix and tag.
//
// The pure decisions (freshness, keys, ranges) live in internal/httpcache,
// the tiers in internal/store.
package edge
