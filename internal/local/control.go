package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// controlHandler serves the control API on the control listener:
//
//	GET  /v1/regions             every region as an ops.Target (JSON list)
//	POST /v1/regions/{name}/down stop the region's edges
//	POST /v1/regions/{name}/up   start them again (or open a closed region)
//	GET  /v1/token               the edges' admin token, text/plain (loopback clients only)
//	GET  /healthz                200 while up runs
//	(and the autoscaler's routes, see autoscaler.handle)
//	GET  /                       the status page
func (u *Up) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/regions", func(w http.ResponseWriter, r *http.Request) {
		ts, _ := u.Regions(r.Context())
		writeJSON(w, http.StatusOK, ts)
	})
	setRegion := func(open bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			t, err := u.SetRegion(r.PathValue("name"), open)
			var pe *PortError
			switch {
			case errors.Is(err, ErrUnknownRegion):
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case errors.As(err, &pe), errors.Is(err, ErrAutoscaled):
				writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			case err != nil:
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			default:
				writeJSON(w, http.StatusOK, t)
			}
		}
	}
	mux.HandleFunc("POST /v1/regions/{name}/down", setRegion(false))
	mux.HandleFunc("POST /v1/regions/{name}/up", setRegion(true))
	mux.HandleFunc("GET /v1/token", func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the token is given to loopback clients only"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, u.token)
	})
	if u.as != nil {
		u.as.handle(mux)
		mux.Handle("GET /metrics", promhttp.HandlerFor(u.as.ctrl.Registry(), promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if u.o.StatusPage != nil {
		mux.Handle("/", u.o.StatusPage(u))
	} else {
		mux.HandleFunc("GET /{$}", u.plainStatus)
	}
	return mux
}

// plainStatus is the page served at / when no status page is wired in: the
// regions and their addresses.
func (u *Up) plainStatus(w http.ResponseWriter, r *http.Request) {
	ts, _ := u.Regions(r.Context())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<!doctype html><title>kubecdn up</title><h1>kubecdn up</h1><table><tr><th>region</th><th>state</th><th>edges</th><th>admin</th></tr>")
	for _, t := range ts {
		fmt.Fprintf(w, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>", html.EscapeString(t.Region),
			html.EscapeString(t.State), html.EscapeString(fmt.Sprint(t.Public)), html.EscapeString(fmt.Sprint(t.Admin)))
	}
	fmt.Fprint(w, "</table>")
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
