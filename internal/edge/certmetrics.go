package edge

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubecdn/kubecdn/internal/certs"
)

// certExpiry exports when each certificate the edge serves from files (TLS
// Secrets) expires, read from the certificate store at every scrape, so a
// renewed Secret shows at once. Certificates obtained by ACME are renewed
// by the edge itself and are not listed.
type certExpiry struct {
	desc  *prometheus.Desc
	store *certs.Store
}

func newCertExpiry(store *certs.Store) *certExpiry {
	return &certExpiry{
		store: store,
		desc: prometheus.NewDesc("kubecdn_edge_tls_certificate_expiry_timestamp_seconds",
			"When a served TLS certificate expires (its NotAfter), by its DNS names and serial number.",
			[]string{"names", "serial"}, nil),
	}
}

func (c *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certExpiry) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.store.Expiries() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(e.NotAfter.Unix()),
			strings.Join(e.Names, ","), e.Serial)
	}
}

// registerCertExpiry adds certExpiry to the edge's metrics when it serves
// certificates from files.
func (s *Server) registerCertExpiry() {
	if s.tls != nil && s.tls.certs != nil {
		s.metrics.reg.MustRegister(newCertExpiry(s.tls.certs))
	}
}

var _ prometheus.Collector = (*certExpiry)(nil)
