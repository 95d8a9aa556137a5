package certs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/certs/certstest"
)

// TestExpiries: every served certificate once, soonest first, and a renewed
// certificate replaces the old one's expiry at the next load.
func TestExpiries(t *testing.T) {
	ca := certstest.NewCA(t, "test ca")
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	soon, later := now.Add(48*time.Hour), now.Add(90*24*time.Hour)
	wc, wk := ca.Issue(t, []string{"www.example.com", "example.com"}, now.Add(-time.Hour), later).Write(t, dir, "www")
	ic, ik := ca.Issue(t, []string{"*.img.example.com"}, now.Add(-time.Hour), soon).Write(t, dir, "img")
	s, err := New(Options{Pairs: []Pair{{Cert: wc, Key: wk}, {Cert: ic, Key: ik}}, NoOCSP: true})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Expiries()
	if len(got) != 2 {
		t.Fatalf("%d expiries, want 2: %+v", len(got), got)
	}
	if !slices.Equal(got[0].Names, []string{"*.img.example.com"}) || !got[0].NotAfter.Equal(soon) {
		t.Errorf("first: %+v, want *.img.example.com at %s", got[0], soon)
	}
	if !slices.Equal(got[1].Names, []string{"www.example.com", "example.com"}) || !got[1].NotAfter.Equal(later) {
		t.Errorf("second: %+v, want www.example.com at %s", got[1], later)
	}
	if got[0].Serial == "" || got[0].Serial == got[1].Serial {
		t.Errorf("serials %q and %q", got[0].Serial, got[1].Serial)
	}

	// Renew the image certificate in place: the next load serves it.
	renewed := now.Add(60 * 24 * time.Hour)
	rc, rk := ca.Issue(t, []string{"*.img.example.com"}, now.Add(-time.Hour), renewed).Write(t, t.TempDir(), "img")
	for _, f := range [][2]string{{rc, ic}, {rk, ik}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Clean(f[1]), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	got = s.Expiries()
	if len(got) != 2 || !got[0].NotAfter.Equal(renewed) || !got[1].NotAfter.Equal(later) {
		t.Errorf("after renewal: %+v, want the image certificate at %s first", got, renewed)
	}
}
