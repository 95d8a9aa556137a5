// Package adminapi holds the contracts of kubecdn's admin endpoints: the
// paths and the JSON shapes that the edge and dns admin listeners serve and
// that their clients (ops, the status page, the CLI, local runs) send and
// decode. Servers and clients both import it, so a client never compiles a
// server (as ExternalDNS's endpoint package). It imports only the standard
// library and holds no logic: validation and the building of these values
// stay in the server that owns them.
package adminapi

import (
	"net/url"
	"time"
)

// Paths of the admin endpoints that more than one package spells.
const (
	// PurgePath is the edge's purge endpoint: POST a PurgeRequest, with
	// the admin bearer token, for a PurgeResponse.
	PurgePath = "/v1/purge"
	// StatePath is the dns's state endpoint: GET returns a State.
	StatePath = "/v1/state"
	// DemandPath is the dns's demand endpoint: GET returns a DemandView.
	DemandPath = "/v1/demand"
	// RTTPath is the dns's latency feed: an edge POSTs an rtt.Report,
	// with the admin bearer token.
	RTTPath = "/v1/rtt"
	// RoutePattern is the dns's drain switch (see RoutePath): POST a
	// RouteRequest, with the admin bearer token, for a RegionRoute.
	RoutePattern = "/v1/regions/{name}/route"
	// ResolvePath is the dns's dry lookup: GET with the query parameters
	// name, network (a CIDR or an address) and type (A, the default, or
	// AAAA), with the admin bearer token, for a Resolution. It runs the
	// routing of a real query from that network and counts no demand.
	ResolvePath = "/v1/resolve"
)

// RoutePath is RoutePattern for one region.
func RoutePath(region string) string { return "/v1/regions/" + url.PathEscape(region) + "/route" }

// PurgeRequest is the body of POST /v1/purge on the edge's admin listener.
type PurgeRequest struct {
	URLs     []string `json:"urls,omitempty"`     // absolute URLs; both http and https are purged
	Prefixes []string `json:"prefixes,omitempty"` // absolute URL prefixes
	Tags     []string `json:"tags,omitempty"`     // Surrogate-Key / Cache-Tag values
	Soft     bool     `json:"soft,omitempty"`     // mark stale instead of removing
}

// PurgeResponse is the edge's answer to a purge.
type PurgeResponse struct {
	Purged int `json:"purged"`
}

// State is the JSON of the dns's GET /v1/state.
type State struct {
	Zone      string        `json:"zone"`
	Policy    string        `json:"policy"`
	Region    string        `json:"region,omitempty"`
	Serial    uint32        `json:"serial"`
	Loaded    time.Time     `json:"loaded"`
	FailOpen  bool          `json:"failOpen"`
	Regions   []RegionState `json:"regions"`
	Unlocated DemandRate    `json:"unlocatedDemand"`
	// Services are the app services (spec.apps[].services[]), routed like
	// the hostnames among the regions that list endpoints for them.
	Services []ServiceState `json:"services,omitempty"`
}

// ServiceState is one app service in State.
type ServiceState struct {
	Hostname  string `json:"hostname"`
	App       string `json:"app"`
	Service   string `json:"service"`
	Namespace string `json:"namespace,omitempty"`
	// Health is the probe: "tcp", or "http" with Path.
	Health string `json:"health"`
	Path   string `json:"path,omitempty"`
	// FailOpen is true while none of its regions is healthy.
	FailOpen bool                 `json:"failOpen"`
	Regions  []ServiceRegionState `json:"regions"`
}

// ServiceRegionState is one region of an app service: the endpoints it
// lists for the hostname and their probe state.
type ServiceRegionState struct {
	Name      string      `json:"name"`
	Healthy   bool        `json:"healthy"`
	Endpoints []EdgeState `json:"endpoints"`
}

// RegionState is one region in State.
type RegionState struct {
	Name      string    `json:"name"`
	Provider  string    `json:"provider"`
	Autoscale bool      `json:"autoscale"`
	Serving   bool      `json:"serving"`
	Healthy   bool      `json:"healthy"`
	Location  *Location `json:"location,omitempty"`
	// EdgesName answers the region's edges whatever the policy
	// ("<region>.edges.<zone>."), for regions with edges.
	EdgesName string      `json:"edgesName,omitempty"`
	Edges     []EdgeState `json:"edges"`
	Demand    DemandRate  `json:"demand"`
	// Routed is false while the region is taken out of the answers
	// (POST RoutePath with {"in": false}): it is answered only when the
	// dns fails open, however healthy it is.
	Routed bool `json:"routed"`
}

// Location is a region's point on Earth in degrees, as the CDN file gives
// it (config.Location has the same JSON).
type Location struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// EdgeState is one edge's (or app endpoint's) probe state.
type EdgeState struct {
	Addr      string    `json:"addr"`
	Healthy   bool      `json:"healthy"`
	Probed    bool      `json:"probed"`
	LastError string    `json:"lastError,omitempty"`
	Since     time.Time `json:"since,omitzero"`
}

// DemandRate is demand for one region: queries whose nearest region it is.
type DemandRate struct {
	Region  string  `json:"region"`
	Total   uint64  `json:"total"`
	Rate10s float64 `json:"rate10s"`
	Rate1m  float64 `json:"rate1m"`
}

// DemandView is the JSON of the dns's GET /v1/demand.
type DemandView struct {
	Regions []DemandRate `json:"regions"`
	// Unlocated counts clients the locator could not place.
	Unlocated DemandRate `json:"unlocated"`
	// Routed says, for every region of the dns's file, whether it is in
	// the answers (false: taken out by POST RoutePath). An autoscaler
	// compares it with what it decided: a restarted dns has forgotten.
	// Nil from a dns that predates it.
	Routed map[string]bool `json:"routed,omitempty"`
}

// RouteRequest is the body of POST RoutePath(region) on the dns's admin
// listener: in false takes the region out of the answers (draining), in
// true puts it back. In is required.
type RouteRequest struct {
	In *bool `json:"in"`
}

// RegionRoute is the dns's answer to a RouteRequest: the region's routing
// state once applied.
type RegionRoute struct {
	Region string `json:"region"`
	Routed bool   `json:"routed"`
}

// Resolution is the JSON of the dns's GET ResolvePath: what it would answer
// a resolver asking for Name on behalf of a client in Network.
type Resolution struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	Type    string `json:"type"`
	// Rcode is the response code's name (NOERROR, NXDOMAIN, REFUSED...).
	Rcode string `json:"rcode"`
	// Addrs are the A or AAAA records answered, after any CNAME in the
	// zone.
	Addrs []string `json:"addrs"`
	// Regions are the regions whose edges (or app endpoints) were
	// answered, in answer order; empty for a name that is not routed.
	Regions []string `json:"regions,omitempty"`
	// Nearest is the region nearest to the network, open or not, which a
	// real query from it counts demand for; empty when it cannot be
	// placed or the name is not routed.
	Nearest  string `json:"nearest,omitempty"`
	FailOpen bool   `json:"failOpen,omitempty"`
}
