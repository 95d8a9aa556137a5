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
//  2. The goroutine fast path (fastpath.go): the strict parser
//     (wire.ParseRequest) lets through plain GETs and HEADs, which are
//     answered when they are fresh hits or misses joining a fill in
//     flight; an idle plain connection is parked in the waiter
//     (wire.Waiter: no goroutine, no buffer) after fastParkAfter, and
//     closed after fastIdleTimeout.
//  3. net/http (handler.go; HTTP/1.1 behind the smuggling guard,
//     wire.FramingConn): everything else; its server's IdleTimeout and
//     ReadHeaderTimeout (server.go) apply from the hand-over on. TLS
//     connections (tls.go, h2guard.go) start at tier 2 and HTTP/2 at 3.
//
// Package internal/edge/wire holds what these tiers do to bytes and
// sockets without the cache: the parser, the guard, the io_uring binding
// and the waiter. A request the first two tiers serve is a fastExchange
// (its header, its connection's state, its settings); one net/http serves
// is an exchange (writer, request, settings, reqInfo), and the handler's
// steps and writers are methods of it.
//
// # A request's way through the cache
//
// handler.go decides what a request is (refusals, hop trust in hop.go,
// request bodies in reqbody.go) and serves it from the store or through a
// fill. Every tier reads an object's metadata (meta.go's encoding) through
// the decoded-metadata cache, metacache.go. fill.go is the one home of the
// miss, fill and slice life cycle; body.go writes a stored or streaming
// body to one client; fetch.go sends requests up the chain: the peer that
// owns the key inside the region (rendezvous hashing over the region's
// edges), then the parent (shield) edge, then the origin. video.go gives HLS and DASH their lifetimes (config.Video). keys.go is the
// store's key scheme; purge.go and index.go purge by URL, prefix and tag.
//
// The pure decisions (freshness, keys, ranges) live in internal/httpcache,
// the tiers in internal/store.
//
// # For the autoscaler
//
// The admin listener serves what regional autoscaling asks of an edge
// (adminapi/autoscale.go): demand.go counts requests and bytes by the
// client's nearest region on every tier, hot.go keeps the URLs served
// most, warm.go fetches a list of URLs through the miss path, drain.go
// ends kept-alive connections so clients follow the dns.
package edge
