package gslb

import (
	"net/netip"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/locate"
)

// RegionView is what the routing decision knows of one region.
type RegionView struct {
	Name string
	// Loc is the region's coordinates; HasLoc is false when unknown.
	Loc    config.Location
	HasLoc bool
	// Weight for the weighted policy.
	Weight int
	// Serving is false for regions without edges (an autoscale region that
	// is closed): they count for demand but are never answered.
	Serving bool
	// Healthy is true when at least one of the region's edges passes its
	// health probe.
	Healthy bool
	// Out is true while the region is taken out of the answers (drained
	// by an operator or the autoscaler): it is answered only when no
	// serving region is both healthy and in, and the policy then chooses
	// among every serving region (failing open).
	Out bool
}

// Client is who asks: the client network (from ECS, else the resolver's
// address) and, when the locator knows it, its location.
type Client struct {
	Net    netip.Prefix
	Loc    config.Location
	HasLoc bool
}

// RTTFunc returns the measured round-trip time in ms from the client's
// network to region i, if there is a measurement.
type RTTFunc func(region int) (ms float64, ok bool)

// Plan is the routing decision for one client network and one health state.
type Plan struct {
	// Choices are sets of region indices; one set is answered per query.
	Choices [][]int
	// Shares are the probabilities of Choices (nil: always Choices[0]).
	Shares []float64
	// Best is the region that would serve this client best among all
	// regions in the file, open or not, healthy or not (-1 if unknown): the
	// demand signal.
	Best int
	// FailOpen is true when no serving region is healthy (and not Out)
	// and every serving region is answered.
	FailOpen bool
	// ClientDependent is false when the answer is the same for every
	// client (weighted, failover, all); ECS answers then carry scope 0.
	ClientDependent bool
}

// Route is the routing decision, a pure function of the policy, the regions
// (with health), the failover order, the client and the RTT table.
func Route(policy config.Policy, regions []RegionView, order []int, c Client, rtt RTTFunc, explore float64) Plan {
	p := Plan{Best: best(regions, c)}
	var eligible []int
	for i, r := range regions {
		if r.Serving && r.Healthy && !r.Out {
			eligible = append(eligible, i)
		}
	}
	if len(eligible) == 0 {
		for i, r := range regions {
			if r.Serving {
				eligible = append(eligible, i)
			}
		}
		p.FailOpen = len(eligible) > 0
		if len(eligible) == 0 {
			return p
		}
	}
	switch policy {
	case config.PolicyAll:
		p.Choices = [][]int{eligible}
	case config.PolicyFailover:
		p.Choices = [][]int{{firstInOrder(eligible, order)}}
	case config.PolicyWeighted:
		var total float64
		for _, i := range eligible {
			if w := regions[i].Weight; w > 0 {
				p.Choices = append(p.Choices, []int{i})
				p.Shares = append(p.Shares, float64(w))
				total += float64(w)
			}
		}
		if total == 0 { // only zero-weight regions are healthy: use them evenly
			p.Choices, p.Shares = nil, nil
			for _, i := range eligible {
				p.Choices = append(p.Choices, []int{i})
				p.Shares = append(p.Shares, 1)
				total++
			}
		}
		for i := range p.Shares {
			p.Shares[i] /= total
		}
		if len(p.Choices) == 1 {
			p.Shares = nil
		}
	case config.PolicyGeo:
		if !c.HasLoc {
			p.Choices = [][]int{eligible}
			return p
		}
		p.ClientDependent = true
		first, _ := lowest(eligible, func(i int) (float64, bool) {
			if !regions[i].HasLoc {
				return 0, false
			}
			return config.DistanceKm(c.Loc, regions[i].Loc), true
		})
		if first < 0 {
			p.Choices = [][]int{eligible}
			return p
		}
		p.Choices = [][]int{{first}}
	default: // latency
		est := func(i int) (float64, bool) {
			if rtt != nil {
				if ms, ok := rtt(i); ok {
					return ms, true
				}
			}
			if c.HasLoc && regions[i].HasLoc {
				return locate.EstimateRTT(config.DistanceKm(c.Loc, regions[i].Loc)), true
			}
			return 0, false
		}
		first, second := lowest(eligible, est)
		if first < 0 {
			p.Choices = [][]int{eligible}
			return p
		}
		p.ClientDependent = true
		p.Choices = [][]int{{first}}
		if second >= 0 && explore > 0 {
			p.Choices = append(p.Choices, []int{second})
			p.Shares = []float64{1 - explore, explore}
		}
	}
	return p
}

// best is the nearest region to the client among all regions (demand), by
// distance: the rule the edges label their requests with (package locate).
// Measured RTTs do not enter it: the closed regions, which demand is
// about, have none.
func best(regions []RegionView, c Client) int {
	pts := make([]locate.Point, len(regions))
	for i, r := range regions {
		pts[i] = locate.Point{Name: r.Name, Loc: r.Loc, HasLoc: r.HasLoc}
	}
	return locate.NearestIndex(c.Loc, c.HasLoc, pts, nil)
}

// lowest returns the indices with the lowest and second-lowest cost among
// those with a known cost (-1 when missing); ties go to the earlier index.
func lowest(idx []int, cost func(int) (float64, bool)) (first, second int) {
	first, second = -1, -1
	var c1, c2 float64
	for _, i := range idx {
		c, ok := cost(i)
		if !ok {
			continue
		}
		switch {
		case first < 0 || c < c1:
			second, c2 = first, c1
			first, c1 = i, c
		case second < 0 || c < c2:
			second, c2 = i, c
		}
	}
	return first, second
}

func firstInOrder(eligible, order []int) int {
	in := map[int]bool{}
	for _, i := range eligible {
		in[i] = true
	}
	for _, i := range order {
		if in[i] {
			return i
		}
	}
	return eligible[0]
}
