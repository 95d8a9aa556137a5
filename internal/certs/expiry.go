package certs

import (
	"cmp"
	"crypto/tls"
	"slices"
	"time"
)

// Expiry is when one certificate being served stops being valid.
type Expiry struct {
	// Names are the leaf's DNS names (or its CN when it has none).
	Names []string
	// Serial is the leaf's serial number in hexadecimal: two certificates
	// for the same names (an RSA and an ECDSA one, or both sides of a
	// rotation) stay apart.
	Serial   string
	NotAfter time.Time
}

// Expiries returns the certificates the store serves now, soonest expiry
// first. It reads the current lookup table and takes no lock, so a metrics
// scrape never waits behind a load (which may be fetching OCSP staples).
func (s *Store) Expiries() []Expiry {
	t := s.table.Load()
	if t == nil {
		return nil
	}
	seen := map[*tls.Certificate]bool{}
	var out []Expiry
	add := func(c *tls.Certificate) {
		if c == nil || c.Leaf == nil || seen[c] {
			return
		}
		seen[c] = true
		out = append(out, Expiry{Names: leafNames(c.Leaf), Serial: c.Leaf.SerialNumber.Text(16), NotAfter: c.Leaf.NotAfter})
	}
	add(t.def)
	for _, m := range []map[string][]*tls.Certificate{t.exact, t.wild} {
		for _, cs := range m {
			for _, c := range cs {
				add(c)
			}
		}
	}
	slices.SortFunc(out, func(a, b Expiry) int {
		return cmp.Or(a.NotAfter.Compare(b.NotAfter), cmp.Compare(a.Serial, b.Serial))
	})
	return out
}
