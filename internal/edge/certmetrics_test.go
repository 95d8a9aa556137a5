package edge

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCertificateExpiryMetric scrapes the admin listener of an HTTPS edge:
// one expiry series per certificate, with its NotAfter as the value; a
// plain-HTTP edge has none.
func TestCertificateExpiryMetric(t *testing.T) {
	f := newTLSFixture(t)
	notAfter := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	c, k := f.ca.Issue(t, []string{"video.example.com", "*.video.example.com"}, time.Time{}, notAfter).Write(t, f.dir, "video")
	f.certs = append(f.certs, TLSCert{Cert: c, Key: k})
	o := cachedOrigin(t)

	e := startEdge(t, Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	_, body := get(t, e.admin+"/metrics")
	const name = "kubecdn_edge_tls_certificate_expiry_timestamp_seconds"
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+"{") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d expiry series, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	want := regexp.MustCompile(fmt.Sprintf(`^%s\{names="video\.example\.com,\*\.video\.example\.com",serial="[0-9a-f]+"\} %s$`,
		name, regexp.QuoteMeta(fmt.Sprintf("%g", float64(notAfter.Unix())))))
	if !slices.ContainsFunc(lines, want.MatchString) {
		t.Errorf("no series matching %s in\n%s", want, strings.Join(lines, "\n"))
	}

	plain := startEdge(t, Config{Origin: o.URL})
	if _, body := get(t, plain.admin+"/metrics"); strings.Contains(body, name) {
		t.Errorf("plain-HTTP edge exports %s", name)
	}
}
