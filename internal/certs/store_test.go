package certs

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/certs/certstest"
)

func served(t *testing.T, s *Store, sni string) string {
	t.Helper()
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	if err != nil {
		t.Fatalf("GetCertificate(%q): %v", sni, err)
	}
	return c.Leaf.Subject.CommonName
}

func TestSelectBySNI(t *testing.T) {
	ca := certstest.NewCA(t, "test ca")
	dir := t.TempDir()
	var pairs []Pair
	for _, names := range [][]string{
		{"default.example"},
		{"www.example.com", "example.com"},
		{"*.example.com"},
		{"*.img.example.com", "img.example.com"},
	} {
		c, k := ca.Issue(t, names, time.Time{}, time.Time{}).Write(t, dir, strings.ReplaceAll(names[0], "*", "star"))
		pairs = append(pairs, Pair{Cert: c, Key: k})
	}
	s, err := New(Options{Pairs: pairs})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ sni, want string }{
		{"www.example.com", "www.example.com"},
		{"WWW.Example.COM.", "www.example.com"},
		{"example.com", "www.example.com"},
		{"cdn.example.com", "*.example.com"},
		{"a.b.example.com", "default.example"}, // a wildcard covers one label only
		{"x.img.example.com", "*.img.example.com"},
		{"img.example.com", "*.img.example.com"},
		{"other.org", "default.example"},
		{"", "default.example"},
	} {
		if got := served(t, s, tc.sni); got != tc.want {
			t.Errorf("SNI %q: served %q, want %q", tc.sni, got, tc.want)
		}
	}
	if !s.Covers("cdn.example.com") || s.Covers("other.org") {
		t.Errorf("Covers wrong")
	}
}

func TestStartErrors(t *testing.T) {
	ca := certstest.NewCA(t, "test ca")
	other := certstest.NewCA(t, "other ca")
	dir := t.TempDir()
	good := ca.Issue(t, []string{"good.example"}, time.Time{}, time.Time{})
	goodC, goodK := good.Write(t, dir, "good")
	expC, expK := ca.Issue(t, []string{"old.example"}, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)).Write(t, dir, "old")
	_, otherK := other.Issue(t, []string{"x.example"}, time.Time{}, time.Time{}).Write(t, dir, "x")
	garbage := filepath.Join(dir, "garbage.crt")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o644)
	for _, tc := range []struct {
		name string
		opts Options
		want []string // substrings of the error
	}{
		{"none", Options{}, []string{"none configured"}},
		{"missing cert", Options{Pairs: []Pair{{filepath.Join(dir, "nope.crt"), goodK}}}, []string{"nope.crt", "no such file"}},
		{"missing key", Options{Pairs: []Pair{{goodC, filepath.Join(dir, "nope.key")}}}, []string{"nope.key"}},
		{"not pem", Options{Pairs: []Pair{{garbage, goodK}}}, []string{"garbage.crt", "no PEM"}},
		{"key mismatch", Options{Pairs: []Pair{{goodC, otherK}}}, []string{"good.crt", "good.example", "x.key", "does not match"}},
		{"expired", Options{Pairs: []Pair{{expC, expK}}}, []string{"old.crt", "old.example", "expired"}},
		{"empty dir", Options{Dirs: []string{t.TempDir()}}, []string{"no NAME.crt/NAME.key pair"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := New(Options{Pairs: []Pair{{goodC, goodK}}}); err != nil {
		t.Errorf("good pair: %v", err)
	}
}

// TestSecretDirs mounts two TLS Secrets the way the kubelet does: each a
// directory of symlinks into a "..data" directory.
func TestSecretDirs(t *testing.T) {
	ca := certstest.NewCA(t, "test ca")
	root := t.TempDir()
	for _, n := range []string{"a.example", "b.example"} {
		sec := filepath.Join(root, n)
		data := filepath.Join(sec, "..2026_01_01_00_00_00.1")
		os.MkdirAll(data, 0o755)
		leaf := ca.Issue(t, []string{n}, time.Time{}, time.Time{})
		leaf.Write(t, data, "tls")
		os.Symlink(filepath.Base(data), filepath.Join(sec, "..data"))
		os.Symlink("..data/tls.crt", filepath.Join(sec, "tls.crt"))
		os.Symlink("..data/tls.key", filepath.Join(sec, "tls.key"))
	}
	// A flat NAME.crt/NAME.key pair beside them.
	ca.Issue(t, []string{"c.example"}, time.Time{}, time.Time{}).Write(t, root, "c")
	s, err := New(Options{Dirs: []string{root}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.example", "b.example", "c.example"} {
		if got := served(t, s, n); got != n {
			t.Errorf("SNI %s: served %s", n, got)
		}
	}
	if got := strings.Join(s.Names(), " "); got != "a.example b.example c.example" {
		t.Errorf("Names = %q", got)
	}
}

func TestReload(t *testing.T) {
	ca := certstest.NewCA(t, "test ca")
	other := certstest.NewCA(t, "other ca")
	dir := t.TempDir()
	first := ca.Issue(t, []string{"www.example.com"}, time.Time{}, time.Time{})
	certFile, keyFile := first.Write(t, dir, "www")
	s, err := New(Options{Pairs: []Pair{{certFile, keyFile}}})
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "www.example.com"})
		return c.Leaf.SerialNumber.Int64()
	}
	want := first.Cert.SerialNumber.Int64()
	bad := []struct {
		name       string
		cert, key  []byte
		wantErrors []string
	}{
		{"garbage", []byte("junk"), first.KeyPEM, []string{"www.crt", "no PEM", "still serving the previous certificate for www.example.com"}},
		{"mismatched key", first.CertPEM, other.Issue(t, []string{"www.example.com"}, time.Time{}, time.Time{}).KeyPEM, []string{"www.crt", "www.example.com", "does not match"}},
		{"expired", nil, nil, []string{"www.crt", "www.example.com", "expired"}},
	}
	expired := ca.Issue(t, []string{"www.example.com"}, time.Now().Add(-72*time.Hour), time.Now().Add(-time.Hour))
	bad[2].cert, bad[2].key = expired.CertPEM, expired.KeyPEM
	for _, tc := range bad {
		os.WriteFile(certFile, tc.cert, 0o644)
		os.WriteFile(keyFile, tc.key, 0o600)
		err := s.Reload()
		if err == nil {
			t.Fatalf("%s: reload succeeded", tc.name)
		}
		for _, w := range tc.wantErrors {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
		if got := serial(); got != want {
			t.Errorf("%s: serving serial %d, want the old %d", tc.name, got, want)
		}
	}
	next := ca.Issue(t, []string{"www.example.com"}, time.Time{}, time.Time{})
	next.Write(t, dir, "www")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != next.Cert.SerialNumber.Int64() {
		t.Errorf("after a good reload: serial %d, want %d", got, next.Cert.SerialNumber.Int64())
	}
}

func TestWatch(t *testing.T) {
	ca := certstest.NewCA(t, "test ca")
	dir := t.TempDir()
	ca.Issue(t, []string{"a.example"}, time.Time{}, time.Time{}).Write(t, dir, "a")
	s, err := New(Options{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, 10*time.Millisecond)
	// A new pair appears, and an existing one changes.
	ca.Issue(t, []string{"b.example"}, time.Time{}, time.Time{}).Write(t, dir, "b")
	next := ca.Issue(t, []string{"a.example"}, time.Time{}, time.Time{})
	next.Write(t, dir, "a")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ca, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example"})
		cb, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.example"})
		if ca.Leaf.SerialNumber.Cmp(next.Cert.SerialNumber) == 0 && cb.Leaf.Subject.CommonName == "b.example" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch did not pick up the changes: a serial %v, b served %s", ca.Leaf.SerialNumber, cb.Leaf.Subject.CommonName)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
