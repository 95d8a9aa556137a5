package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubecdn/kubecdn/internal/config"
)

// StateName is the ConfigMap, in the CDN's namespace of every region, in
// which deploy keeps what it needs next time: the region's inventory (every
// object it applied, for pruning) and the CDN's regions with how to reach
// them and their addresses (so a region removed from the file can still be
// taken out of DNS and torn down, and a region that cannot be reached keeps
// its last known addresses in DNS).
const StateName = "kubecdn-state"

// State is the content of the state ConfigMap.
type State struct {
	CDN     string    `json:"cdn"`
	Updated time.Time `json:"updated"`
	// Inventory is every object deploy applied in this region.
	Inventory []Ref `json:"inventory"`
	// Regions is every region of the CDN deployed as of Updated.
	Regions map[string]RegionState `json:"regions"`
}

// RegionState is what deploy knows of one region.
type RegionState struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	Provider   string `json:"provider,omitempty"`
	// Open is set for an autoscale region that is open.
	Open bool `json:"open,omitempty"`
	// Edges and DNS are the load-balancer addresses of the region's edges
	// and dns; Endpoints those of the app services by hostname.
	Edges     []Address            `json:"edges,omitempty"`
	DNS       []Address            `json:"dns,omitempty"`
	Endpoints map[string][]Address `json:"endpoints,omitempty"`
	// LeftDNS is when a region removed from the file was taken out of DNS;
	// its objects are deleted a TTL later.
	LeftDNS *time.Time `json:"leftDNS,omitempty"`
}

// Address is one load-balancer ingress: an IP or a host name, and the port.
type Address struct {
	IP       string `json:"ip,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	Port     int32  `json:"port,omitempty"`
}

var configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// readState reads the region's state; a missing one (first deploy) is the
// zero State.
func (c *Cluster) readState(ctx context.Context, ns string) (State, bool, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	u, err := c.resourceFor(configMapGVR, ns).Get(ctx, StateName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("read %s/%s: %w", ns, StateName, err)
	}
	raw, _, _ := unstructured.NestedString(u.Object, "data", "state.json")
	var s State
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return State{}, false, fmt.Errorf("read %s/%s: state.json: %w", ns, StateName, err)
	}
	return s, true, nil
}

// stateObject is the state as a ConfigMap to apply.
func stateObject(ns string, labels map[string]string, s State) (*unstructured.Unstructured, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": StateName, "namespace": ns},
		"data":       map[string]any{"state.json": string(b)},
	}}
	u.SetLabels(labels)
	return u, nil
}

// writeState saves the region's state (inventory and regions).
func (d *deployer) writeState(ctx context.Context, c *Cluster, region string, st State) error {
	u, err := stateObject(d.opts.Render.Namespace, d.labels(region), st)
	if err != nil {
		return err
	}
	_, err = c.Apply(ctx, u, d.opts.Render.Namespace, false)
	return err
}

// writeRegions replaces the regions part of a region's state, keeping its
// inventory.
func (d *deployer) writeRegions(ctx context.Context, c *Cluster, region string, next State) error {
	cur, _, err := c.readState(ctx, d.opts.Render.Namespace)
	if err != nil {
		return err
	}
	next.Inventory = cur.Inventory
	return d.writeState(ctx, c, region, next)
}

// remember writes next's regions into the state of every active region
// reached (step 6), so that any of them can tell the next run; a failure
// is the region's error unless it has one already. A dry run writes
// nothing.
func (d *deployer) remember(ctx context.Context, active []config.RegionRef, results map[string]*RegionResult, next State) {
	if d.opts.DryRun {
		return
	}
	for _, r := range active {
		rr := results[r.Name]
		if c := d.clusters[r.Name]; c != nil {
			if err := d.writeRegions(ctx, c, r.Name, next); err != nil && rr.Err == nil {
				rr.Err = err
			}
		}
	}
}
