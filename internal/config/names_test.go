package config

import "testing"

func TestEdgesName(t *testing.T) {
	tests := []struct {
		region, zone string
		want         string
	}{
		{"us-east-1", "cdn.example.com", "us-east-1.edges.cdn.example.com"},
		{"eu-west-1", "cdn.example.com.", "eu-west-1.edges.cdn.example.com."},
		// the case is kept: the dns lowers it, deploy publishes as written
		{"EU-West-1", "CDN.example.com", "EU-West-1.edges.CDN.example.com"},
		// render's parent URL template is the name of placeholders
		{"{region}", "{zone}", "{region}.edges.{zone}"},
	}
	for _, tt := range tests {
		if got := EdgesName(tt.region, tt.zone); got != tt.want {
			t.Errorf("EdgesName(%q, %q) = %q, want %q", tt.region, tt.zone, got, tt.want)
		}
	}
}

func TestEdgesDomain(t *testing.T) {
	for zone, want := range map[string]string{
		"cdn.example.com":  "edges.cdn.example.com",
		"cdn.example.com.": "edges.cdn.example.com.",
	} {
		if got := EdgesDomain(zone); got != want {
			t.Errorf("EdgesDomain(%q) = %q, want %q", zone, got, want)
		}
	}
}
