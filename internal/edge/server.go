package edge

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubecdn/kubecdn/internal/accesslog"
	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/bearer"
	"github.com/kubecdn/kubecdn/internal/httpcache"
	"github.com/kubecdn/kubecdn/internal/store"
)

// HealthPath is the reserved path every edge answers on its public listener
// (never forwarded upstream); the dns probes it.
const HealthPath = "/.well-known/kubecdn/health"

// sendfileMin is the body size from which the fast path prefers a blob's
// disk copy to its memory copy.
const sendfileMin = 256 << 10

// Options are the edge's injected dependencies. Every field is optional.
type Options struct {
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// Hash is the hash of rendezvous hashing. If nil, FNV-1a with a
	// finalizer; every edge of a region must use the same.
	Hash func(string) uint64
	// Store replaces the tiers built from the config (tests).
	Store store.Store
	// Listener and AdminListener are used instead of listening on
	// Config.Listen and Config.Admin (tests bind :0 first).
	Listener, AdminListener net.Listener
	// Observer, if set, is told of every public client connection, by
	// every serving tier (the rtt feed reads TCP_INFO there).
	Observer ConnObserver
	// AccessLogStdout is where Config.AccessLog "-" writes. If nil,
	// os.Stdout.
	AccessLogStdout io.Writer
}

// Server is one edge. Build it with New, then Run it.
type Server struct {
	rt        atomic.Pointer[liveConfig]
	store     store.Store
	log       *slog.Logger
	now       func() time.Time
	hash      func(string) uint64
	transport *http.Transport
	tls       *tlsState // nil without a TLS listener
	metrics   *metrics
	index     *index
	reqBodies *bodyGate  // request bodies passed upstream (reqbody.go)
	reloads   reloadGate // blocking playlist reloads waiting upstream (video.go)
	opts      Options

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	mu     sync.Mutex
	fills  map[string]*fill   // a miss's fill per storage key, until its object is stored
	bodies map[string][]*fill // fills streaming a sliced object, per variant key (see fill.go)

	draining atomic.Bool
	metas    *metaCache
	disk     *store.Disk // nil without a disk tier (or with Options.Store)
	fast     fastConns
	waiter   atomic.Pointer[waiter]      // set while Run runs (Linux)
	uring    atomic.Pointer[uringServer] // set while Run runs, when io_uring serves the plain listener
	// parkAfter and fastIdle: how long an idle fast connection keeps its
	// goroutine, and how long it may stay idle in all.
	parkAfter, fastIdle time.Duration
	// fastWrite bounds sending a body on the fast paths (see
	// fastWriteTimeout).
	fastWrite time.Duration
	date      atomic.Pointer[cachedDate]
	upLog     rateLog     // upstream failures logged (upstreamFailed)
	ready     atomic.Bool // Run serves every listener, the io_uring accept armed (/readyz)

	addrMu    sync.Mutex
	addr      net.Addr
	adminAddr net.Addr
	started   chan struct{}

	alog     *accesslog.Logger // nil when the access log is off (accesslog.go)
	alogSink accesslog.Sink

	demand *demand  // requests and bytes by the client's nearest region (demand.go)
	hot    *hotKeys // the URLs served most (hot.go)
	// connDrain: end kept-alive connections (drain.go); httpSrvs are the
	// public net/http servers it turns keep-alives off in.
	connDrain atomic.Bool
	srvMu     sync.Mutex
	httpSrvs  []*http.Server
	h3        atomic.Pointer[h3State] // set once HTTP/3's UDP socket is bound (h3.go)
}

// liveConfig is the part of the configuration that a reload may change.
type liveConfig struct {
	cfg        Config
	origin     *url.URL
	originHost string
	parent     *url.URL
	peers      map[string]*url.URL // peer id (its URL) -> URL, without self
	ring       []string            // every edge of the region, self included
	self       string
	loopID     string
	hosts      map[string]bool
	opts       httpcache.Options
	hopKeys    [][]byte        // Config.HopKeys; the first signs
	pass       map[string]bool // canonical names of Config.PassHeaders
}

func newRuntime(cfg Config) (*liveConfig, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rt := &liveConfig{cfg: cfg, peers: map[string]*url.URL{}, hosts: map[string]bool{}}
	rt.origin, _ = url.Parse(cfg.Origin)
	switch cfg.OriginHost {
	case "":
		rt.originHost = rt.origin.Host
	case "preserve":
	default:
		rt.originHost = cfg.OriginHost
	}
	if cfg.Parent != "" {
		rt.parent, _ = url.Parse(cfg.Parent)
	}
	rt.self = strings.TrimSuffix(cfg.Self, "/")
	rt.ring = append(rt.ring, rt.self)
	for _, p := range cfg.Peers {
		p = strings.TrimSuffix(p, "/")
		if p == rt.self {
			continue
		}
		u, _ := url.Parse(p)
		if _, dup := rt.peers[p]; !dup {
			rt.peers[p] = u
			rt.ring = append(rt.ring, p)
		}
	}
	if u, err := url.Parse(rt.self); err == nil {
		rt.loopID = u.Host
	}
	for _, h := range cfg.Hostnames {
		rt.hosts[h] = true
	}
	for _, k := range cfg.HopKeys {
		rt.hopKeys = append(rt.hopKeys, []byte(k))
	}
	rt.pass = canonicalPass(cfg.PassHeaders)
	rt.opts = httpcache.Options{HeuristicMax: cfg.HeuristicMax}
	if cfg.StaleIfError > 0 {
		rt.opts.StaleIfErrorCap = cfg.StaleIfError
	}
	return rt, nil
}

// New builds an edge from a validated config; it opens the cache tiers.
func New(cfg Config, opts Options) (*Server, error) {
	rt, err := newRuntime(cfg)
	if err != nil {
		return nil, err
	}
	cfg = rt.cfg
	s := &Server{
		log:       opts.Logger,
		now:       opts.Now,
		hash:      opts.Hash,
		opts:      opts,
		fills:     map[string]*fill{},
		bodies:    map[string][]*fill{},
		started:   make(chan struct{}),
		metas:     newMetaCache(metaCacheBytes(cfg.MemoryBytes)),
		reqBodies: newBodyGate(defaultBodyLimits()),
		fast:      fastConns{conns: map[net.Conn]*fastConn{}},

		parkAfter: fastParkAfter,
		fastIdle:  fastIdleTimeout,
		fastWrite: fastWriteTimeout,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.hash == nil {
		s.hash = fnvHash
	}
	s.rt.Store(rt)
	// The index asks the store whether a key is still held; s.store is set
	// below, before anything is stored or evicted.
	s.index = newIndex(func(k string) bool { return s.store.Contains(k) })
	if s.tls, err = newTLSState(cfg, s.log, s.now); err != nil {
		return nil, err
	}
	upTLS, err := upstreamTLS(cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.store = opts.Store
	if s.store == nil {
		// The memory tier keeps blobs up to an eighth of its size; with a
		// disk tier, the fast path still sends large bodies from their disk
		// copy (sendfile from the page cache, measured faster for whole
		// large hits), while net/http's path uses the memory copy.
		//
		// Whatever a tier evicts leaves the index and the decoded-metadata
		// cache too, so neither outgrows the tiers.
		mem := store.NewMemoryWith(store.MemoryOptions{MaxBytes: cfg.MemoryBytes, OnEvict: s.storeEvicted})
		var disk *store.Disk
		if cfg.CacheDir != "" {
			disk, err = store.OpenDisk(store.DiskOptions{Dir: cfg.CacheDir, MaxBytes: cfg.DiskBytes, OnEvict: s.storeEvicted})
			if err != nil {
				return nil, fmt.Errorf("cacheDir: %w", err)
			}
		}
		s.store = store.NewTiered(mem, disk)
		s.disk = disk
	}
	s.rebuildIndex()
	s.metrics = newMetrics(s.store.Stats, func() int { return s.waiter.Load().Len() },
		func() int { return s.uring.Load().connections() })
	if s.demand, err = newDemand(cfg, s.now()); err != nil {
		return nil, err
	}
	s.demand.register(s.metrics.reg)
	s.hot = newHotKeys(s.now)
	if err := s.openAccessLog(cfg, opts.AccessLogStdout); err != nil {
		s.demand.finder.Close()
		return nil, err
	}
	s.registerCertExpiry()
	s.transport = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       upTLS,
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	return s, nil
}

// storeEvicted is the tiers' OnEvict hook: key left a tier. The decoded
// metadata goes at once (it would keep the evicted bytes alive); the index
// forgets the key if no tier holds it any more.
func (s *Server) storeEvicted(key string) {
	if _, ok := variantOf(key); !ok {
		return // a slice: neither indexed nor decoded
	}
	s.metas.forget(key)
	s.index.evicted(key)
}

// rebuildIndex reads the stored objects' metadata (the disk tier survives a
// restart) so purges by prefix and tag find them.
func (s *Server) rebuildIndex() {
	_ = s.store.Scan(func(key string, meta []byte) bool {
		if _, ok := variantOf(key); !ok {
			return true
		}
		if m, err := decodeMeta(meta); err == nil && !m.Marker {
			s.index.add(m.Key, key, m.Tags)
		}
		return true
	})
}

// Reload swaps in a new configuration for the parts that can change without
// a restart (origin, parent, peers, hostnames, token, policies). Listen
// addresses and cache sizes keep their values until a restart.
func (s *Server) Reload(cfg Config) error {
	rt, err := newRuntime(cfg)
	if err != nil {
		return err
	}
	old := s.rt.Load().cfg
	if rt.cfg.Listen != old.Listen || rt.cfg.Admin != old.Admin || rt.cfg.CacheDir != old.CacheDir ||
		rt.cfg.MemoryBytes != old.MemoryBytes || rt.cfg.DiskBytes != old.DiskBytes || rt.cfg.SliceBytes != old.SliceBytes ||
		rt.cfg.IOUring != old.IOUring || rt.cfg.HTTP3Off != old.HTTP3Off || rt.cfg.HTTP3RetryAbove != old.HTTP3RetryAbove {
		s.log.Warn("reload: listen, admin, memory, cacheDir, disk, slice, ioUring and http3 take effect only after a restart")
		rt.cfg.Listen, rt.cfg.Admin, rt.cfg.CacheDir = old.Listen, old.Admin, old.CacheDir
		rt.cfg.MemoryBytes, rt.cfg.DiskBytes, rt.cfg.SliceBytes = old.MemoryBytes, old.DiskBytes, old.SliceBytes
		rt.cfg.IOUring, rt.cfg.HTTP3Off, rt.cfg.HTTP3RetryAbove = old.IOUring, old.HTTP3Off, old.HTTP3RetryAbove
	}
	s.rt.Store(rt)
	s.log.Info("configuration reloaded", "origin", rt.cfg.Origin, "peers", len(rt.peers), "hostnames", len(rt.hosts))
	return nil
}

// Addr and AdminAddr are the bound addresses, once Run has started.
func (s *Server) Addr() net.Addr {
	<-s.started
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.addr
}
func (s *Server) AdminAddr() net.Addr {
	<-s.started
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.adminAddr
}

// Started is closed once the listeners are bound.
func (s *Server) Started() <-chan struct{} { return s.started }

// Run serves until ctx ends, then finishes the requests in flight (at most
// 10 s) and closes the store.
func (s *Server) Run(ctx context.Context) error {
	rt := s.rt.Load()
	ln, aln := s.opts.Listener, s.opts.AdminListener
	var err error
	if ln == nil {
		if ln, err = s.listen(ctx, "public", rt.cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", rt.cfg.Listen, err)
		}
	}
	if aln == nil {
		// After the public listener: the admin's /readyz answering
		// means this process holds the public address.
		if aln, err = s.listen(ctx, "admin", rt.cfg.Admin); err != nil {
			ln.Close()
			return fmt.Errorf("admin listen %s: %w", rt.cfg.Admin, err)
		}
	}
	tln, err := s.listenTLS(rt.cfg)
	if err != nil {
		ln.Close()
		aln.Close()
		return err
	}
	h3, err := s.listenH3(rt.cfg, tln)
	if err != nil {
		ln.Close()
		aln.Close()
		tln.Close()
		return err
	}
	s.addrMu.Lock()
	s.addr, s.adminAddr = ln.Addr(), aln.Addr()
	s.addrMu.Unlock()

	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	pub := &http.Server{
		Handler:           s.accessLogged(s),
		MaxHeaderBytes:    rt.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          errLog,
	}
	if obs := s.opts.Observer; obs != nil {
		pub.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateIdle {
				obs.ObserveConn(c)
			}
		}
	}
	// The admin listener reads purge bodies: a client gets 30 s for a whole
	// request, so a slow one cannot hold a connection open.
	adm := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, ErrorLog: errLog}
	go s.sweepIndex(s.bgCtx, 10*time.Second, 2000)
	errc := make(chan error, 8)
	fl := &fastListener{inner: ln, handoff: make(chan net.Conn), closed: make(chan struct{})}
	if w, err := newWaiter(s); err != nil {
		s.log.Warn("idle connections keep their goroutines", "err", err)
	} else if w != nil {
		s.waiter.Store(w)
	}
	s.addHTTPServer(pub)
	go func() { errc <- pub.Serve(fl) }()
	if !s.startUring(rt.cfg, ln, fl, errc) {
		go func() { errc <- s.acceptLoop(ln, fl, nil) }()
	}
	go func() { errc <- adm.Serve(aln) }()
	var tlsSrv *http.Server
	if tln != nil {
		tlsSrv = s.serveTLS(s.bgCtx, tln, rt.cfg, errLog, errc)
	}
	if h3 != nil {
		s.serveH3(h3, errc)
		s.h3.Store(h3) // from here on, Alt-Svc names it
	}
	s.ready.Store(true)
	close(s.started)
	s.log.Info("edge serving", "listen", ln.Addr().String(), "admin", aln.Addr().String(), "origin", rt.cfg.Origin)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.draining.Store(true)
	s.ready.Store(false)
	s.uring.Load().stop()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fl.Close()
	s.closeIdleFast()
	s.waiter.Load().Close()
	_ = pub.Shutdown(sctx)
	_ = adm.Shutdown(sctx)
	if tlsSrv != nil {
		_ = tlsSrv.Shutdown(sctx)
	}
	h3.shutdown(sctx)
	fastDone := make(chan struct{})
	go func() { s.fast.wg.Wait(); close(fastDone) }()
	select {
	case <-fastDone:
	case <-sctx.Done():
	}
	s.bgCancel()
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
	}
	s.transport.CloseIdleConnections()
	s.closeAccessLog()
	s.demand.finder.Close() // no request is served any more
	if err := s.store.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// startUring serves the plain listener from the io_uring loop, unless the
// config turns it off or the kernel has none; false: the caller serves it
// with acceptLoop.
func (s *Server) startUring(cfg Config, ln net.Listener, fl *fastListener, errc chan<- error) bool {
	if cfg.IOUring == IOUringOff {
		return false
	}
	u, err := newUringServer(s, ln, fl)
	if err != nil {
		s.log.Info("serving without io_uring: a goroutine per connection", "reason", err)
		return false
	}
	s.uring.Store(u)
	s.fast.wg.Add(1)
	go func() {
		<-u.done
		s.fast.wg.Done()
		if u.err != nil {
			errc <- u.err
		}
	}()
	return true
}

// AdminHandler serves purge, metrics, health and the autoscaler's
// endpoints (demand, hot keys, warm, drain) on the admin listener.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+adminapi.PurgePath, s.handlePurge)
	mux.HandleFunc("GET "+adminapi.EdgeDemandPath, s.handleDemand)
	mux.HandleFunc("GET "+adminapi.HotPath, s.handleHot)
	mux.HandleFunc("POST "+adminapi.WarmPath, s.handleWarm)
	mux.HandleFunc("GET "+adminapi.DrainPath, s.handleDrain)
	mux.HandleFunc("POST "+adminapi.DrainPath, s.handleDrain)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if s.rt.Load().cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if !s.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// authorized checks the admin bearer token the way every admin listener
// does (internal/bearer), so a purge through a Kubernetes API server's pod
// proxy is accepted too.
func (s *Server) authorized(r *http.Request) bool {
	return bearer.Authorized(r, s.rt.Load().cfg.AdminToken)
}

func fnvHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	x := h.Sum64()
	// splitmix64 finalizer: FNV alone spreads similar strings poorly.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// owner picks the edge of ring that owns key (rendezvous hashing: the
// highest hash of edge and key wins, so a change of membership moves only the
// keys of the edges that came or went).
func owner(ring []string, key string, hash func(string) uint64) string {
	var best string
	var bestScore uint64
	for i, id := range ring {
		sc := hash(id + "\x00" + key)
		if i == 0 || sc > bestScore || (sc == bestScore && id < best) {
			best, bestScore = id, sc
		}
	}
	return best
}
