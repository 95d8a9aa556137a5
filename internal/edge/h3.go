package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/time/rate"

	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// HTTP/3: the TLS address is also bound for UDP and served by quic-go's
// http3 with the same handler as HTTP/1.1 and HTTP/2, so a request takes
// the same cache path whatever its version. What is particular to QUIC:
//
//   - Alt-Svc names the UDP port on HTTPS responses of the other versions,
//     only once the socket is bound (altSvc is empty until then);
//   - requests that arrive in 0-RTT early data can be replayed by anyone
//     who saw them, so only GET and HEAD are served from it; any other
//     method gets 425 Too Early (RFC 8470) and the client retries it after
//     the handshake;
//   - a client must prove its address (a Retry round trip) when new
//     handshakes come faster than Config.HTTP3RetryAbove per second, so a
//     flood from spoofed addresses cannot make the edge send its larger
//     handshake packets to victims;
//   - GOAWAY on shutdown and on a connection drain: connections are served
//     by the http3.Server in cur; draining swaps in a fresh one and shuts
//     the old one down, which sends GOAWAY on each of its connections
//     while new ones keep being accepted.

// defaultHTTP3RetryAbove is Config.HTTP3RetryAbove's default: far above
// what an edge's real clients open per second in a steady state, far below
// what a flood sends.
const defaultHTTP3RetryAbove = 500

// h3AltSvcMaxAge is how long a client may remember the Alt-Svc (a day).
const h3AltSvcMaxAge = 24 * time.Hour

type h3State struct {
	tr      *quic.Transport
	ln      *quic.EarlyListener
	handler http.Handler
	maxHdr  int

	cur    atomic.Pointer[http3.Server]
	altSvc atomic.Pointer[string] // the Alt-Svc value, set once bound
	conns  sync.WaitGroup         // ServeQUICConn calls
	olds   sync.WaitGroup         // servers shut down by a drain
}

// listenH3 binds UDP on the TLS listener's address and port; nil, nil when
// HTTP/3 is off or there is no TLS listener.
func (s *Server) listenH3(cfg Config, tln net.Listener) (*h3State, error) {
	if s.tls == nil || tln == nil || cfg.HTTP3Off {
		return nil, nil
	}
	tcp := tln.Addr().(*net.TCPAddr)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: tcp.IP, Port: tcp.Port, Zone: tcp.Zone})
	if err != nil {
		return nil, fmt.Errorf("http3 listen udp %s: %w", tcp, err)
	}
	h := &h3State{tr: &quic.Transport{Conn: udp}, maxHdr: cfg.MaxHeaderBytes}
	above := cfg.HTTP3RetryAbove
	if above == 0 {
		above = defaultHTTP3RetryAbove
	}
	if above < 0 {
		h.tr.VerifySourceAddress = func(net.Addr) bool { return true }
	} else {
		lim := rate.NewLimiter(rate.Limit(above), above)
		h.tr.VerifySourceAddress = func(net.Addr) bool { return !lim.Allow() }
	}
	// The certificates and ticket keys are s.tls.config's at each
	// handshake (GetConfigForClient), so reloads reach QUIC too; http3
	// sets the ALPN to h3 on the config returned.
	base := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.tls.config, nil }}
	h.ln, err = h.tr.ListenEarly(http3.ConfigureTLSConfig(base), &quic.Config{
		Allow0RTT:            true,
		HandshakeIdleTimeout: 10 * time.Second,
		MaxIdleTimeout:       120 * time.Second,
		MaxIncomingStreams:   100, // concurrent requests per connection
	})
	if err != nil {
		h.tr.Close()
		return nil, fmt.Errorf("http3 listen %s: %w", tcp, err)
	}
	port := cfg.HTTPSPort
	if port == 0 {
		port = udp.LocalAddr().(*net.UDPAddr).Port
	}
	v := `h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.Itoa(int(h3AltSvcMaxAge/time.Second))
	h.altSvc.Store(&v)
	return h, nil
}

// newServer is an http3.Server for the connections accepted from now on.
func (h *h3State) newServer() *http3.Server {
	return &http3.Server{Handler: h.handler, MaxHeaderBytes: h.maxHdr, IdleTimeout: 120 * time.Second}
}

// serveH3 serves HTTP/3 until the listener is closed (shutdownH3).
func (s *Server) serveH3(h *h3State, errc chan<- error) {
	h.handler = s.accessLogged(s.tooEarly(s))
	h.cur.Store(h.newServer())
	go func() {
		for {
			conn, err := h.ln.Accept(context.Background())
			if err != nil {
				if !errors.Is(err, quic.ErrServerClosed) {
					errc <- fmt.Errorf("http3 accept: %w", err)
				}
				return
			}
			h.conns.Add(1)
			go func() {
				defer h.conns.Done()
				if err := h.cur.Load().ServeQUICConn(conn); errors.Is(err, http.ErrServerClosed) {
					// Shut down between Accept and here.
					conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
				}
			}()
		}
	}()
	s.log.Info("edge serving http3", "listen", h.ln.Addr().String(), "alt-svc", *h.altSvc.Load())
}

// goAway sends GOAWAY on every HTTP/3 connection open now, which finish
// their requests in flight and close (bounded by 10 s); connections
// accepted from now on are served on.
func (h *h3State) goAway() {
	if h != nil {
		h.goAwayFrom(h.cur.Load())
	}
}

// goAwayFrom is goAway if old still serves the new connections (requests
// of one server's connections call it at once; one swap is enough).
func (h *h3State) goAwayFrom(old *http3.Server) {
	if old == nil || !h.cur.CompareAndSwap(old, h.newServer()) {
		return
	}
	h.olds.Add(1)
	go func() {
		defer h.olds.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = old.Shutdown(ctx)
	}()
}

// shutdown sends GOAWAY on every connection, waits for the requests in
// flight until ctx ends, then closes the socket.
func (h *h3State) shutdown(ctx context.Context) {
	if h == nil {
		return
	}
	h.altSvc.Store(nil)
	h.ln.Close() // no new connections; those accepted stay open
	_ = h.cur.Load().Shutdown(ctx)
	done := make(chan struct{})
	go func() { h.olds.Wait(); h.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = h.cur.Load().Close()
	}
	h.tr.Close()
}

// setAltSvc advertises HTTP/3 on a response of another version, once the
// UDP socket is bound.
func (s *Server) setAltSvc(hdr http.Header, r *http.Request) {
	if r.ProtoMajor >= 3 {
		return
	}
	if v := s.h3AltSvc(); v != "" {
		hdr["Alt-Svc"] = []string{v}
	}
}

// h3AltSvc is the Alt-Svc value, "" while no UDP socket is bound. The fast
// path appends it on HTTPS responses.
func (s *Server) h3AltSvc() string {
	h := s.h3.Load()
	if h == nil {
		return ""
	}
	if v := h.altSvc.Load(); v != nil {
		return *v
	}
	return ""
}

// tooEarly answers 425 to a request other than GET and HEAD that arrived in
// 0-RTT early data (its handshake had not completed when it was read),
// which an attacker could have replayed (RFC 8470); the client sends it
// again once the handshake is complete. While the connection drain is on,
// each HTTP/3 request also sends GOAWAY on the connection it came on.
func (s *Server) tooEarly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if early(r) && r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Cache-Status", httpcache.CacheStatus{Cache: s.rt.Load().cfg.Name, Fwd: "bypass", Detail: "early-data"}.String())
			http.Error(w, "425 Too Early: "+r.Method+" sent in 0-RTT early data; send it again after the handshake", http.StatusTooEarly)
			return
		}
		next.ServeHTTP(w, r)
		if s.connDrain.Load() {
			if h := s.h3.Load(); h != nil {
				srv, _ := r.Context().Value(http3.ServerContextKey).(*http3.Server)
				h.goAwayFrom(srv)
			}
		}
	})
}

// early reports whether r was read before its connection's handshake had
// completed: in TLS 1.3 early data.
func early(r *http.Request) bool {
	return r.TLS != nil && !r.TLS.HandshakeComplete
}

// appendAltSvc appends an Alt-Svc field of value v to a response head the
// fast path writes, nothing when v is "".
func appendAltSvc(b []byte, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, "\r\nAlt-Svc: "...)
	return append(b, v...)
}
