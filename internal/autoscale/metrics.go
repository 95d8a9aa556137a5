package autoscale

import "github.com/prometheus/client_golang/prometheus"

// ctrlMetrics are the kubecdn_autoscale_* series.
type ctrlMetrics struct {
	reg       *prometheus.Registry
	phase     *prometheus.GaugeVec
	decisions *prometheus.CounterVec
	steps     *prometheus.CounterVec
	frozen    prometheus.Gauge
	// demand is the newest sample's figures, by region and signal.
	demand *prometheus.GaugeVec
}

func newCtrlMetrics() *ctrlMetrics {
	m := &ctrlMetrics{
		reg: prometheus.NewRegistry(),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubecdn_autoscale_region_phase",
			Help: "1 for the phase each region is in (closed, opening, warming, open, draining)."}, []string{"region", "phase"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubecdn_autoscale_decisions_total",
			Help: "Decisions taken, by region and action (open, close)."}, []string{"region", "action"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubecdn_autoscale_steps_total",
			Help: "Life-cycle steps run against regions, by the phase they ran in and result (ok, error)."}, []string{"region", "phase", "result"}),
		frozen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kubecdn_autoscale_frozen",
			Help: "1 while decisions are frozen (paused, or demand samples stale or incomplete)."}),
	}
	m.demand = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubecdn_autoscale_demand",
		Help: "The newest demand sample, by region and signal: displaced_requests and served_requests (per second), displaced_bytes and served_bytes (body bytes per second), rtt_gain_ms (the round trip opening the region saves its displaced users' requests, on average, where the edges could place them)."},
		[]string{"region", "signal"})
	m.reg.MustRegister(m.phase, m.decisions, m.steps, m.frozen, m.demand)
	return m
}

// observe sets the demand gauges from a sample; an incomplete sample
// leaves them as they were (its sums are short of what was missing).
func (m *ctrlMetrics) observe(s Sample) {
	if !s.Complete() {
		return
	}
	m.demand.Reset()
	for signal, v := range map[string]map[string]float64{
		"displaced_requests": s.Displaced, "served_requests": s.Served,
		"displaced_bytes": s.DisplacedBytes, "served_bytes": s.ServedBytes, "rtt_gain_ms": s.RTTGain,
	} {
		for region, x := range v {
			m.demand.WithLabelValues(region, signal).Set(x)
		}
	}
}

// publishMetricsLocked sets the phase gauges from the state.
func (c *Controller) publishMetricsLocked() {
	for _, r := range c.st.Regions {
		for _, p := range []Phase{Closed, Opening, Warming, Open, Draining} {
			c.metrics.phase.WithLabelValues(r.Name, string(p)).Set(b2f(r.Phase == p || (p == Closed && r.Phase == "")))
		}
	}
}
