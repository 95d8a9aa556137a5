package render

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardMetrics checks the Grafana dashboard shipped in deploy/ parses
// and names only metrics the edge and the dns register, with the region
// label the rendered pods carry.
func TestDashboardMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/kubecdn-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	exported := exportedMetrics(t)
	metric := regexp.MustCompile(`kubecdn_(edge|dns)_([a-z_]+)`)
	ids := map[int]bool{}
	n := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllStringSubmatch(tg.Expr, -1) {
				if !exported[strings.TrimSuffix(m[0], "_bucket")] {
					t.Errorf("panel %d: %s is not a %s metric", p.ID, m[0], m[1])
				}
				n++
			}
			if strings.Contains(tg.Expr, "kubecdn_edge_") && !strings.Contains(tg.Expr, "kubecdn_io_region") {
				t.Errorf("panel %d: edge query without the region label: %s", p.ID, tg.Expr)
			}
		}
	}
	// The per-region row shows what the alerts watch.
	var all strings.Builder
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			all.WriteString(tg.Expr + "\n")
		}
	}
	for _, want := range []string{
		`kubecdn_edge_tls_certificate_expiry_timestamp_seconds{kubecdn_io_region="$region"}`,
		`upstream="origin",outcome=~"error|5xx"`,
		`kubecdn_dns_fail_open{kubecdn_io_region="$region"}`,
		`kubecdn_dns_reloads_total{kubecdn_io_region="$region",result="error"}`,
		`ALERTS{alertstate="firing",kubecdn_io_region="$region"}`,
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no panel reads %s", want)
		}
	}
	if n < 20 {
		t.Errorf("only %d metric references", n)
	}
	var region bool
	for _, v := range dash.Templating.List {
		region = region || v.Name == "region" && strings.Contains(v.Definition, "kubecdn_io_region")
	}
	if !region {
		t.Error("no region template variable over kubecdn_io_region")
	}
}
