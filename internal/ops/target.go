// Package ops is what the operator tools (kubecdn status, kubecdn purge and
// the status page) know about a running CDN: it reads every region's edge
// admin listeners and the dns admin API in parallel and turns the counters
// into rates, ratios and health, and it purges every region at once.
//
// The arithmetic (rates across counter resets, hit ratios, health) is in
// pure functions in compute.go; collect.go and purge.go are the I/O.
package ops

import "time"

// Region states as the operator tools report them.
const (
	StateOpen   = "open"   // serving
	StateDown   = "down"   // stopped by an operator, or dead
	StateClosed = "closed" // an autoscale region that is not open
)

// Target is one region as seen by the operator tools.
type Target struct {
	Region   string   `json:"region"`
	State    string   `json:"state"`    // "open", "down" (stopped by an operator or dead), "closed" (an autoscale region not open)
	Admin    []string `json:"admin"`    // base URLs of the region's edge admin listeners, e.g. http://127.0.0.2:9090
	Public   []string `json:"public"`   // public addresses of its edges, e.g. 127.0.0.2:8080
	DNSAdmin string   `json:"dnsAdmin"` // base URL of a dns admin listener that knows this region, e.g. http://127.0.0.1:9053
	// Error says why the region's admin listeners could not be found (its
	// Kubernetes API server did not answer); the region is then shown as
	// unreachable and nothing of it is asked.
	Error string `json:"error,omitempty"`
	// Autoscale is the autoscaler's view of an autoscale region, where an
	// autoscaler runs beside the control API (kubecdn up).
	Autoscale *Autoscale `json:"autoscale,omitempty"`
}

// Autoscale is where an autoscale region is in its life cycle, since when,
// and why: what status and the status page show of the autoscaler.
type Autoscale struct {
	Phase string    `json:"phase"` // closed, opening, warming, open, draining
	Since time.Time `json:"since"` // zero: never changed
	Pin   string    `json:"pin,omitempty"`
	// Decision is the region's latest decision with its inputs, and
	// Result how it went ("done", "failed: …", "dry run", "" in flight).
	Decision string `json:"decision,omitempty"`
	Result   string `json:"result,omitempty"`
	// Waiting says why the region is not moving (cooldown, backoff, …);
	// Frozen why no decision is made at all (paused, a source missing).
	Waiting string `json:"waiting,omitempty"`
	Frozen  string `json:"frozen,omitempty"`
	// Demand is the newest sample's figures for the region: the demand
	// displaced from it while closed (with the RTT gain opening it would
	// bring), the load it serves while running.
	Demand string `json:"demand,omitempty"`
}
