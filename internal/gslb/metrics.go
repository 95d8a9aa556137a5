package gslb

import (
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics live in a registry private to one Server.
type metrics struct {
	reg *prometheus.Registry

	queries       *prometheus.CounterVec // proto, rcode
	queryCounters [2][24]prometheus.Counter
	demand        *prometheus.CounterVec // region
	answers       *prometheus.CounterVec // region
	failOpen      prometheus.Counter
	failOpenState prometheus.Gauge
	regionHealthy *prometheus.GaugeVec   // region
	regionRouted  *prometheus.GaugeVec   // region
	edgeHealthy   *prometheus.GaugeVec   // region, edge
	transitions   *prometheus.CounterVec // region, state
	probes        *prometheus.CounterVec // result
	planComputes  prometheus.Counter
	rrl           *prometheus.CounterVec // action
	rttSamples    *prometheus.CounterVec // region
	rttReports    *prometheus.CounterVec // result
	rttNetworks   prometheus.Gauge
	reloads       *prometheus.CounterVec // result
	info          *prometheus.GaugeVec   // region, zone, policy

	// app services, labelled by hostname (service)
	serviceAnswers     *prometheus.CounterVec // service, region
	serviceHealthy     *prometheus.GaugeVec   // service, region
	endpointHealthy    *prometheus.GaugeVec   // service, region, endpoint
	serviceTransitions *prometheus.CounterVec // service, region, state
}

func newMetrics() *metrics {
	const ns, sub = "kubecdn", "dns"
	m := &metrics{reg: prometheus.NewRegistry()}
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "queries_total",
		Help: "DNS queries answered (or dropped by RRL, rcode=\"DROPPED\"), by transport and response code."}, []string{"proto", "rcode"})
	m.demand = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "demand_queries_total",
		Help: "A/AAAA queries for the CDN hostnames and app service hostnames by the region nearest to the client among all regions in the file (open or closed); region=\"unknown\" when the client could not be located."}, []string{"region"})
	m.answers = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "answers_total",
		Help: "A/AAAA answers for the CDN hostnames by region answered."}, []string{"region"})
	m.failOpen = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fail_open_answers_total",
		Help: "Answers given while no serving region was healthy (every serving region answered)."})
	m.failOpenState = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "fail_open",
		Help: "1 while no serving region is healthy and routed in, and the server fails open."})
	m.regionHealthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "region_healthy",
		Help: "1 if at least one edge of the region passes its health probe."}, []string{"region"})
	m.regionRouted = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "region_routed",
		Help: "1 if the region is in the answers, 0 while it is taken out (drained) by POST /v1/regions/NAME/route."}, []string{"region"})
	m.edgeHealthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "edge_healthy",
		Help: "1 if the edge passes its health probe."}, []string{"region", "edge"})
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "region_transitions_total",
		Help: "Region health changes, by the state entered (up or down)."}, []string{"region", "state"})
	m.probes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "health_probes_total",
		Help: "Health probes of the edges and the app service endpoints, by result."}, []string{"result"})
	m.planComputes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "plan_computations_total",
		Help: "Routing decisions computed (answer cache misses)."})
	m.rrl = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rrl_limited_total",
		Help: "UDP responses limited by response rate limiting, by action (drop or slip)."}, []string{"action"})
	m.rttSamples = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rtt_samples_total",
		Help: "RTT samples (client networks) received from the edges, by region."}, []string{"region"})
	m.rttReports = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rtt_reports_total",
		Help: "RTT reports received, by result: ok, unauthorized (no or a wrong bearer token), refused (malformed, too large, unknown region)."}, []string{"result"})
	m.rttNetworks = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "rtt_networks",
		Help: "Client networks in the RTT table (bounded; the network reported longest ago makes room for a new one)."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reloads_total",
		Help: "CDN file reloads by result."}, []string{"result"})
	m.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "info",
		Help: "Constant 1 with the replica's region, the zone and the routing policy."}, []string{"region", "zone", "policy"})
	m.serviceAnswers = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "service_answers_total",
		Help: "A/AAAA answers for the app service hostnames by service (hostname) and region answered."}, []string{"service", "region"})
	m.serviceHealthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "service_healthy",
		Help: "1 if at least one of the region's endpoints of the app service (hostname) passes its health probe."}, []string{"service", "region"})
	m.endpointHealthy = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "service_endpoint_healthy",
		Help: "1 if the app service endpoint passes its health probe (tcp connect or http)."}, []string{"service", "region", "endpoint"})
	m.serviceTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "service_transitions_total",
		Help: "Health changes of an app service in a region, by the state entered (up or down)."}, []string{"service", "region", "state"})
	m.reg.MustRegister(m.queries, m.demand, m.answers, m.failOpen, m.failOpenState, m.regionHealthy, m.regionRouted, m.edgeHealthy,
		m.transitions, m.probes, m.planComputes, m.rrl, m.rttSamples, m.rttReports, m.rttNetworks, m.reloads, m.info,
		m.serviceAnswers, m.serviceHealthy, m.endpointHealthy, m.serviceTransitions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for p, proto := range []string{"udp", "tcp"} {
		for rc := range m.queryCounters[p] {
			name, ok := dns.RcodeToString[rc]
			if !ok {
				continue
			}
			m.queryCounters[p][rc] = m.queries.WithLabelValues(proto, name)
		}
	}
	return m
}

func (m *metrics) query(tcp bool, rcode int) {
	p := 0
	if tcp {
		p = 1
	}
	if rcode >= 0 && rcode < len(m.queryCounters[p]) && m.queryCounters[p][rcode] != nil {
		m.queryCounters[p][rcode].Inc()
		return
	}
	m.queries.WithLabelValues([]string{"udp", "tcp"}[p], "OTHER").Inc()
}
