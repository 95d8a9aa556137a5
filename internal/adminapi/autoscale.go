package adminapi

// The edge's endpoints for the autoscaler (issue: regional autoscaling).
// All are on the edge's admin listener, behind the admin token.
const (
	// EdgeDemandPath: GET returns an EdgeDemand, the requests and bytes
	// this edge served, by the client's nearest region.
	EdgeDemandPath = "/v1/demand"
	// HotPath: GET ?n=N&bytes=B returns a HotKeys, the URLs this edge
	// served most recently and most often, at most N and B bytes of
	// objects in all (bounds the edge caps).
	HotPath = "/v1/hot"
	// WarmPath: POST a WarmRequest; the edge fetches the URLs into its
	// cache (through its normal miss path, at a bounded concurrency) and
	// answers a WarmResult when done or when the request's deadline ends.
	WarmPath = "/v1/warm"
	// DrainPath: POST a DrainRequest; while draining the edge answers
	// every response on a kept-alive connection with Connection: close
	// and closes idle ones, so clients reconnect where the dns now sends
	// them. GET returns the DrainRequest in force.
	DrainPath = "/v1/drain"
)

// EdgeDemand is the JSON of GET EdgeDemandPath. Counters are cumulative
// since the edge started (StartedAt, Unix seconds), so a reader takes rates
// from two looks; kubecdn's own traffic (health probes, peer and child
// edges' fetches, warming, the autoscaler's checks) is not counted.
type EdgeDemand struct {
	Edge      string             `json:"edge"`
	Region    string             `json:"region"`
	StartedAt float64            `json:"startedAt"`
	Regions   []EdgeRegionDemand `json:"regions"`
}

// EdgeRegionDemand is what an edge served to clients whose nearest region
// is Region ("unknown" when the client could not be located).
type EdgeRegionDemand struct {
	Region   string `json:"region"`
	Requests uint64 `json:"requests"`
	Bytes    uint64 `json:"bytes"`
	// GainRequests counts the requests whose client and both regions are
	// located, and GainMicros sums, over them, the round trip (µs, from
	// the distances) each client would have saved had Region served it
	// instead of the edge's region: divided, the RTT gain of opening
	// Region for its users.
	GainRequests uint64 `json:"gainRequests,omitempty"`
	GainMicros   uint64 `json:"gainMicros,omitempty"`
}

// HotKeys is the JSON of GET HotPath.
type HotKeys struct {
	Keys []HotKey `json:"keys"`
}

// HotKey is one object an edge served often.
type HotKey struct {
	URL   string `json:"url"`
	Bytes int64  `json:"bytes"`
	Hits  uint64 `json:"hits"`
}

// WarmRequest is the body of POST WarmPath.
type WarmRequest struct {
	URLs []string `json:"urls"`
}

// WarmResult is the answer to POST WarmPath.
type WarmResult struct {
	Fetched int `json:"fetched"`
	Failed  int `json:"failed"`
	// Bytes stored by the warming.
	Bytes int64 `json:"bytes"`
}

// DrainRequest is the body of POST DrainPath and the JSON of GET.
type DrainRequest struct {
	Drain bool `json:"drain"`
}
