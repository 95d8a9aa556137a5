// Package registry says which DNS names a CDN owns, for every provider
// package publish writes to (Route 53, RFC 2136 servers). A provider lists
// its zone, asks the registry which names it may change, and only then
// plans and applies; it never decides ownership itself.
//
// Ownership is a TXT record beside each name, at RecordName(name), whose
// value is Value(owner) ("heritage=kubecdn,owner=OWNER", the scheme of
// ExternalDNS's TXT registry). The rules, the same for every provider:
//   - a name whose ownership TXT names the owner is the owner's, unless it
//     also names another owner (then it is that owner's and is refused);
//   - a name with no owner at all is free only if nothing occupies it: no
//     record at the name (SOA and NS at the apex and the records a server
//     keeps by itself do not count) and no record at its ownership name;
//     otherwise it was made by hand or by another tool and is refused;
//   - a refusal is an *OwnedError naming the name and its owner, and the
//     provider changes nothing of that name;
//   - names the owner holds that it no longer wants (Orphans) are deleted
//     with their ownership TXT.
//
// At a name it owns, kubecdn changes only the Managed types (A, AAAA,
// CNAME) and its own TXT value; other records beside them are left alone.
package registry

import (
	"fmt"
	"slices"
	"strings"
)

// Prefix is the label put in front of a name for its ownership TXT.
const Prefix = "_kubecdn-owner"

// valuePrefix starts every ownership TXT value.
const valuePrefix = "heritage=kubecdn,owner="

// RecordName is the name of the TXT record that says who owns fqdn.
func RecordName(fqdn string) string {
	return Prefix + "." + strings.TrimSuffix(fqdn, ".")
}

// OwnedName is the name whose ownership record is at name, with ok false
// when name is not an ownership record's name.
func OwnedName(name string) (fqdn string, ok bool) {
	return strings.CutPrefix(name, Prefix+".")
}

// Value is the TXT value (one string, without quotes) that says owner owns
// a name.
func Value(owner string) string { return valuePrefix + owner }

// Parse returns the owner in a TXT value written by Value (quoted or not),
// with ok false for any other value.
func Parse(v string) (owner string, ok bool) {
	v = strings.Trim(v, `"`)
	rest, found := strings.CutPrefix(v, valuePrefix)
	if !found || rest == "" {
		return "", false
	}
	return rest, true
}

// Owners are the distinct kubecdn owners that TXT values name, in the
// order found; values that are not ownership values are skipped.
func Owners(values []string) []string {
	var out []string
	for _, v := range values {
		if o, ok := Parse(v); ok && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// Managed reports whether kubecdn writes records of type typ (as spelled in
// presentation format, "A") at a name it owns.
func Managed(typ string) bool { return typ == "A" || typ == "AAAA" || typ == "CNAME" }

// ManagedTypes are the Managed types, in the order a provider should
// delete and add them.
func ManagedTypes() []string { return []string{"A", "AAAA", "CNAME"} }

// Occupies reports whether a record of type typ at name, in zone, makes
// the name someone's: every record does except those a server keeps by
// itself (DNSSEC, and SOA and NS at the apex).
func Occupies(zone, name, typ string) bool {
	switch typ {
	case "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY", "ZONEMD":
		return false
	case "SOA", "NS":
		return name != zone
	}
	return true
}

// Listing is what a provider found at one name, in the registry's terms.
type Listing struct {
	// Types of the records at the name itself (repeats are fine).
	Types []string
	// OwnershipTypes are the types of the records at RecordName(name).
	OwnershipTypes []string
	// TXT are the values of the TXT records at RecordName(name).
	TXT []string
}

// Registry decides ownership for one CDN in one zone.
type Registry struct {
	// Zone is the zone's apex, lower case, without a trailing dot.
	Zone string
	// Owner identifies the CDN.
	Owner string
}

// Check says whether the owner may change name: ours is true when the name
// is already the owner's, false when it is free (the provider then claims
// it by writing Value(Owner) at RecordName(name)); a name the owner may not
// change is an *OwnedError.
func (r Registry) Check(name string, l Listing) (ours bool, err error) {
	holders := Owners(l.TXT)
	for _, o := range holders {
		if o != r.Owner {
			return false, &OwnedError{Name: name, Owner: o}
		}
	}
	if len(holders) > 0 {
		return true, nil
	}
	if len(l.OwnershipTypes) > 0 || slices.ContainsFunc(l.Types, func(t string) bool { return Occupies(r.Zone, name, t) }) {
		return false, &OwnedError{Name: name}
	}
	return false, nil
}

// Orphans are the names the owner holds but no longer wants, sorted:
// txt maps each ownership record's name (RecordName) to its TXT values,
// and want holds the names still wanted.
func (r Registry) Orphans(txt map[string][]string, want map[string]bool) []string {
	var out []string
	for rec, values := range txt {
		name, ok := OwnedName(rec)
		if ok && !want[name] && slices.Contains(Owners(values), r.Owner) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Mine reports whether a TXT value is the owner's ownership value.
func (r Registry) Mine(v string) bool {
	o, ok := Parse(v)
	return ok && o == r.Owner
}

// OwnedError is a refusal to change a name that belongs to another owner
// or to no kubecdn at all (Owner empty: records made by hand or by another
// tool).
type OwnedError struct {
	Name  string
	Owner string
}

func (e *OwnedError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("%s: has records that no kubecdn owns (no %s TXT); not changing it", e.Name, RecordName(e.Name))
	}
	return fmt.Sprintf("%s: owned by kubecdn %q; not changing it", e.Name, e.Owner)
}
