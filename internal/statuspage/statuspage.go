// Package statuspage serves the status page of a CDN: one card per region
// (state, health, requests/s, hit ratio, bytes served, cache fill), the
// client networks each region answers, updated every second over
// server-sent events with a polling fallback. The page is plain HTML, CSS
// and JavaScript embedded in the binary: no build step, nothing fetched
// from elsewhere, so it works offline.
//
//	GET /            the page
//	GET /v1/status   the current status (JSON)
//	GET /v1/events   the status as server-sent events, one per Interval
//	GET /static/...  the page's CSS and JavaScript
//	GET /favicon.ico 204: the page has no icon
package statuspage

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/ops"
)

// Source lists the regions to show.
type Source interface {
	Regions(ctx context.Context) ([]ops.Target, error)
}

// NetworkSource is optionally implemented by a Source that knows which
// region answers which client network (for example by asking the dns with
// EDNS Client Subnet). Without it the page shows
// the dns's demand per nearest region instead.
type NetworkSource interface {
	Networks(ctx context.Context, targets []ops.Target) ([]ops.NetworkRoute, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context) ([]ops.Target, error)

// Regions calls f.
func (f SourceFunc) Regions(ctx context.Context) ([]ops.Target, error) { return f(ctx) }

// Options configure the page. Zero values get the documented defaults.
type Options struct {
	// Title heads the page; if empty, "kubecdn".
	Title string
	// Now is the clock the rates are computed with; if nil, time.Now.
	Now func() time.Time
	// Interval is the time between two updates; if zero, 1s.
	Interval time.Duration
	// Client reads the admin APIs; if nil, a client without a proxy.
	Client *http.Client
}

// Status is the JSON of /v1/status and of each event.
type Status struct {
	Title          string `json:"title"`
	IntervalMillis int64  `json:"intervalMillis"`
	SourceError    string `json:"sourceError,omitempty"` // the Source failed: the regions are unknown
	ops.Snapshot
}

//go:embed assets
var assets embed.FS

// Handler serves the status page over src.
func Handler(src Source, opts Options) http.Handler {
	if opts.Title == "" {
		opts.Title = "kubecdn"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	co := ops.CollectorOptions{Client: opts.Client, Now: opts.Now, Timeout: max(opts.Interval, 2*time.Second)}
	if ns, ok := src.(NetworkSource); ok {
		co.Networks = ns.Networks
	}
	h := &handler{src: src, opts: opts, col: ops.NewCollector(co), subs: map[chan []byte]bool{}}
	static, _ := fs.Sub(assets, "assets")
	h.index = template.Must(template.ParseFS(static, "index.html"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.serveIndex)
	mux.HandleFunc("GET /v1/status", h.serveStatus)
	mux.HandleFunc("GET /v1/events", h.serveEvents)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	// The page declares no icon (rel=icon data:,); a client that asks anyway
	// gets an empty answer rather than a 404 in its console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=86400")
		w.WriteHeader(http.StatusNoContent)
	})
	return securityHeaders(mux)
}

type handler struct {
	src   Source
	opts  Options
	col   *ops.Collector
	index *template.Template

	refreshMu sync.Mutex // one collection at a time
	mu        sync.Mutex
	latest    []byte
	latestAt  time.Time
	subs      map[chan []byte]bool
	running   bool
}

// securityHeaders: the page loads nothing from elsewhere and runs no inline
// script, so a strict policy costs nothing.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (h *handler) serveIndex(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := h.index.Execute(&b, map[string]any{"Title": h.opts.Title, "IntervalMillis": h.opts.Interval.Milliseconds()}); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b.Bytes())
}

func (h *handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	b := h.current(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// current returns a status no older than half an interval, collecting one
// if needed (concurrent callers share it).
func (h *handler) current(ctx context.Context) []byte {
	h.refreshMu.Lock()
	defer h.refreshMu.Unlock()
	h.mu.Lock()
	b, at := h.latest, h.latestAt
	h.mu.Unlock()
	if b != nil && h.opts.Now().Sub(at) < h.opts.Interval/2 {
		return b
	}
	return h.collect(ctx)
}

// collect takes a snapshot, stores it and sends it to every subscriber.
// Called with refreshMu held.
func (h *handler) collect(ctx context.Context) []byte {
	st := Status{Title: h.opts.Title, IntervalMillis: h.opts.Interval.Milliseconds()}
	targets, err := h.src.Regions(ctx)
	if err != nil {
		st.SourceError = err.Error()
		st.Snapshot = ops.Snapshot{At: h.opts.Now(), Regions: []ops.RegionStatus{}, Errors: []string{"listing the regions: " + err.Error()}}
	} else {
		st.Snapshot = h.col.Collect(ctx, targets)
	}
	b, err := json.Marshal(st)
	if err != nil { // cannot happen with these types; keep the last one
		return h.latest
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest, h.latestAt = b, h.opts.Now()
	for ch := range h.subs {
		select {
		case <-ch: // drop an unread one: only the newest matters
		default:
		}
		ch <- b
	}
	return b
}

// subscribe registers a subscriber and starts the update loop if it is the
// first; the loop ends when the last one leaves.
func (h *handler) subscribe() chan []byte {
	ch := make(chan []byte, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[ch] = true
	if !h.running {
		h.running = true
		go h.loop()
	}
	return ch
}

func (h *handler) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, ch)
}

func (h *handler) loop() {
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for range t.C {
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), max(h.opts.Interval, 2*time.Second))
		h.refreshMu.Lock()
		h.collect(ctx)
		h.refreshMu.Unlock()
		cancel()
	}
}

func (h *handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	ch := h.subscribe()
	defer h.unsubscribe(ch)
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil {
		return
	}
	send := func(b []byte) error {
		if _, err := w.Write(append(append([]byte("event: status\ndata: "), b...), '\n', '\n')); err != nil {
			return err
		}
		return rc.Flush()
	}
	last := h.current(r.Context())
	if err := send(last); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-ch:
			if len(b) > 0 && len(last) > 0 && &b[0] == &last[0] {
				continue // the first one, sent already
			}
			last = b
			if err := send(b); err != nil {
				return
			}
		}
	}
}
