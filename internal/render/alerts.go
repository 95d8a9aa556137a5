package render

import (
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

// ruleGroup and rule are a Prometheus rule file's groups, which are also
// the spec of a Prometheus Operator PrometheusRule: one list of rules
// serves both the Prometheus render writes and the operator's.
type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// regionLabel is the label every kubecdn series carries for the region of
// the pod it was scraped from: Prometheus's sanitised kubecdn.io/region
// (labelmap in the rendered Prometheus, podTargetLabels in the
// ServiceMonitors).
const regionLabel = "kubecdn_io_region"

// Recorded hit ratios: a short window to alert on, a long one as its
// baseline.
const (
	hitRatio15m = regionLabel + ":kubecdn_edge_hit_ratio:rate15m"
	hitRatio6h  = regionLabel + ":kubecdn_edge_hit_ratio:rate6h"
)

// hitRatio is the share of cacheable answers served from cache over w, per
// region (bypass and error answers are neither).
func hitRatio(w string) string {
	return fmt.Sprintf(`sum by (%[1]s) (rate(kubecdn_edge_requests_total{cache=~"hit|stale|revalidated"}[%[2]s]))
/
sum by (%[1]s) (rate(kubecdn_edge_requests_total{cache=~"hit|stale|revalidated|miss"}[%[2]s]))`, regionLabel, w)
}

// alertGroups are the rules of every region's Prometheus. The metric names
// are the ones internal/edge and internal/gslb export (a test checks that
// each exists); the jobs are the rendered scrape jobs, and the
// ServiceMonitors' jobLabel gives the same names.
func alertGroups() []ruleGroup {
	warn := map[string]string{"severity": "warning"}
	crit := map[string]string{"severity": "critical"}
	return []ruleGroup{
		{Name: "kubecdn.records", Rules: []rule{
			{Record: hitRatio15m, Expr: hitRatio("15m")},
			{Record: hitRatio6h, Expr: hitRatio("6h")},
		}},
		{Name: "kubecdn.alerts", Rules: []rule{
			{
				// Every dns replica that sees the region agrees: none of
				// its edges passes the health probes, so it has left the
				// answers. The region the alert is about becomes its
				// kubecdn_io_region, like the other alerts'.
				Alert:  "KubecdnRegionDown",
				Expr:   `label_replace(max by (region) (kubecdn_dns_region_healthy), "` + regionLabel + `", "$1", "region", "(.+)") == 0`,
				For:    "1m",
				Labels: crit,
				Annotations: map[string]string{
					"summary":     "Region {{ $labels.region }} is down",
					"description": "No edge of region {{ $labels.region }} passes the dns's health probes: the region is out of the DNS answers and its users go to other regions.",
				},
			},
			{
				Alert:  "KubecdnEdgesUnreachable",
				Expr:   `sum by (` + regionLabel + `) (up{job="kubecdn-edge"}) == 0`,
				For:    "5m",
				Labels: crit,
				Annotations: map[string]string{
					"summary":     "No edge of region {{ $labels." + regionLabel + " }} answers Prometheus",
					"description": "Every edge target of region {{ $labels." + regionLabel + " }} has failed its scrape for 5 minutes.",
				},
			},
			{
				Alert:  "KubecdnEdgesAbsent",
				Expr:   `absent(up{job="kubecdn-edge"})`,
				For:    "10m",
				Labels: crit,
				Annotations: map[string]string{
					"summary":     "Prometheus finds no edge to scrape",
					"description": "There has been no kubecdn-edge target for 10 minutes: the edges are gone, or their pods lost the labels the scrape selects by.",
				},
			},
			{
				Alert:  "KubecdnDNSUnreachable",
				Expr:   `sum by (` + regionLabel + `) (up{job="kubecdn-dns"}) == 0`,
				For:    "5m",
				Labels: crit,
				Annotations: map[string]string{
					"summary":     "No dns replica of region {{ $labels." + regionLabel + " }} answers Prometheus",
					"description": "Every dns target of region {{ $labels." + regionLabel + " }} has failed its scrape for 5 minutes.",
				},
			},
			{
				// Against the region's own 6-hour baseline, with at least
				// one request a second, so a quiet region or a purge's
				// short dip does not page.
				Alert: "KubecdnHitRatioDropping",
				Expr: hitRatio15m + " < " + hitRatio6h + " - 0.2\nand on (" + regionLabel + ")\n" +
					`sum by (` + regionLabel + `) (rate(kubecdn_edge_requests_total[15m])) > 1`,
				For:    "15m",
				Labels: warn,
				Annotations: map[string]string{
					"summary":     "Hit ratio of region {{ $labels." + regionLabel + " }} is dropping",
					"description": "The 15-minute hit ratio of region {{ $labels." + regionLabel + " }} is {{ $value | humanizePercentage }}, more than 20 points under its 6-hour average: more misses reach the parent and the origin.",
				},
			},
			{
				Alert: "KubecdnOriginErrors",
				Expr: `sum by (` + regionLabel + `) (rate(kubecdn_edge_upstream_fetches_total{upstream="origin",outcome=~"error|5xx"}[5m]))
/
sum by (` + regionLabel + `) (rate(kubecdn_edge_upstream_fetches_total{upstream="origin"}[5m])) > 0.05
and on (` + regionLabel + `)
sum by (` + regionLabel + `) (rate(kubecdn_edge_upstream_fetches_total{upstream="origin",outcome=~"error|5xx"}[5m])) > 0.1`,
				For:    "10m",
				Labels: warn,
				Annotations: map[string]string{
					"summary":     "Origin errors in region {{ $labels." + regionLabel + " }}",
					"description": "{{ $value | humanizePercentage }} of the origin fetches of region {{ $labels." + regionLabel + " }} fail (5xx or no answer); cached objects keep being served, misses fail.",
				},
			},
			{
				Alert:  "KubecdnCertificateExpiringSoon",
				Expr:   `min by (` + regionLabel + `, names) (kubecdn_edge_tls_certificate_expiry_timestamp_seconds) - time() < 14 * 86400`,
				For:    "1h",
				Labels: warn,
				Annotations: map[string]string{
					"summary":     "TLS certificate for {{ $labels.names }} expires in {{ $value | humanizeDuration }}",
					"description": "The edges of region {{ $labels." + regionLabel + " }} serve a certificate for {{ $labels.names }} that expires within 14 days; renew its TLS Secret (the edges reload it without a restart).",
				},
			},
			{
				Alert:  "KubecdnCertificateExpiring",
				Expr:   `min by (` + regionLabel + `, names) (kubecdn_edge_tls_certificate_expiry_timestamp_seconds) - time() < 3 * 86400`,
				For:    "10m",
				Labels: crit,
				Annotations: map[string]string{
					"summary":     "TLS certificate for {{ $labels.names }} expires in {{ $value | humanizeDuration }}",
					"description": "The edges of region {{ $labels." + regionLabel + " }} serve a certificate for {{ $labels.names }} that expires within 3 days; after that, HTTPS clients refuse the edges.",
				},
			},
			{
				Alert:  "KubecdnDNSReloadRefused",
				Expr:   `increase(kubecdn_dns_reloads_total{result="error"}[15m]) > 0`,
				Labels: warn,
				Annotations: map[string]string{
					"summary":     "dns {{ $labels.pod }} refused a new CDN file",
					"description": "The dns {{ $labels.pod }} of region {{ $labels." + regionLabel + " }} refused to reload the CDN file and keeps answering from the previous one; its log names the field at fault.",
				},
			},
			{
				Alert:  "KubecdnDNSFailOpen",
				Expr:   `max by (` + regionLabel + `) (kubecdn_dns_fail_open) == 1`,
				For:    "1m",
				Labels: crit,
				Annotations: map[string]string{
					"summary":     "The dns of region {{ $labels." + regionLabel + " }} answers fail-open",
					"description": "The dns of region {{ $labels." + regionLabel + " }} sees no healthy region and answers with every serving region: users may be sent to edges that are down.",
				},
			},
		}},
	}
}

// rulesFile is alertGroups as a Prometheus rule file.
func rulesFile() (string, error) {
	b, err := yaml.Marshal(map[string]any{"groups": alertGroups()})
	if err != nil {
		return "", fmt.Errorf("alert rules: %w", err)
	}
	return string(b), nil
}

// ruleGroupsAny is alertGroups in the map form of an unstructured object.
func ruleGroupsAny() ([]any, error) {
	js, err := json.Marshal(alertGroups())
	if err != nil {
		return nil, fmt.Errorf("alert rules: %w", err)
	}
	var out []any
	if err := json.Unmarshal(js, &out); err != nil {
		return nil, fmt.Errorf("alert rules: %w", err)
	}
	return out, nil
}
