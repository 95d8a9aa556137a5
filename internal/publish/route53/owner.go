package route53

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/publish/registry"
)

// This file is the hosted zone as package registry sees it: what is listed
// at a name and its ownership name, and the ownership TXT set a claim or a
// release writes. Whether a name may be changed is the registry's call.

// listing is what the hosted zone holds at fqdn, for the registry.
func listing(byName map[string][]rset, fqdn string) registry.Listing {
	var l registry.Listing
	for _, s := range byName[fqdn] {
		l.Types = append(l.Types, s.Type)
	}
	own := byName[registry.RecordName(fqdn)]
	for _, s := range own {
		l.OwnershipTypes = append(l.OwnershipTypes, s.Type)
	}
	if txt := ownershipTXT(own); txt != nil {
		l.TXT = txt.Values
	}
	return l
}

// ownershipTXT is the simple TXT set among the sets of an ownership name.
func ownershipTXT(sets []rset) *rset {
	for i, s := range sets {
		if s.Type == "TXT" && s.SetID == "" {
			return &sets[i]
		}
	}
	return nil
}

// ownershipValues maps every ownership name in the zone to the values of
// its TXT set, for registry.Orphans.
func ownershipValues(byName map[string][]rset) map[string][]string {
	out := map[string][]string{}
	for name, sets := range byName {
		if _, ok := registry.OwnedName(name); !ok {
			continue
		}
		if txt := ownershipTXT(sets); txt != nil {
			out[name] = txt.Values
		}
	}
	return out
}

// managedSets are the sets at a name that kubecdn writes.
func managedSets(sets []rset) []rset {
	var out []rset
	for _, s := range sets {
		if registry.Managed(s.Type) {
			out = append(out, s)
		}
	}
	return out
}

// ownershipChange is the change of pl's ownership TXT set: created for a
// claimed name, and for a released one deleted, or rewritten without the
// owner's value when other owners' values share the set. ok is false when
// the set stays as it is.
func ownershipChange(pl *namePlan, reg registry.Registry) (c types.Change, rep publish.Change, ok bool) {
	own := registry.RecordName(pl.fqdn)
	value := registry.Value(reg.Owner)
	switch {
	case pl.claim:
		txt := rset{Name: own, Type: "TXT", TTL: ownershipTTL, Values: []string{`"` + value + `"`}}
		c = types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: ptr(txt.toSDK())}
		return c, publish.Change{Action: publish.Create, Name: own, Type: "TXT", Detail: value}, true
	case pl.release:
		rest := slices.DeleteFunc(slices.Clone(pl.txt.Values), reg.Mine)
		if len(rest) == 0 {
			c = types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: pl.txt.raw}
		} else {
			txt := *pl.txt
			txt.Values = rest
			c = types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: ptr(txt.toSDK())}
		}
		return c, publish.Change{Action: publish.Delete, Name: own, Type: "TXT", Detail: value}, true
	}
	return types.Change{}, publish.Change{}, false
}
