// Package wire is the edge's request path below the cache: the code that
// reads HTTP/1.1 requests off client connections and moves their bytes
// through the kernel, and knows nothing of what is stored.
//
//   - ParseRequest is the fast path's strict parser: it accepts only a
//     subset of HTTP/1.1 (a plain GET or HEAD with nothing that bears on
//     framing, caching or routing) and refuses the rest, which net/http
//     then reads. It is never more lenient than net/http (see
//     FuzzParseRequest).
//   - FramingConn guards the connections net/http serves against request
//     smuggling: it follows the message framing of every request and stops
//     the connection at the first one a chain of proxies could read two
//     ways. PrefixConn replays the bytes a tier read before it handed a
//     connection on.
//   - Ring is a minimal io_uring binding (Linux), the rings and the few
//     operations the edge's event loop submits; Waiter parks idle
//     connections in an epoll set of its own, with no goroutine each.
//
// The edge (internal/edge) decides what to answer; this package only reads,
// checks and moves bytes.
package wire
