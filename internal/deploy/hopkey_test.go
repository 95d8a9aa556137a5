package deploy

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

func TestChooseHopKey(t *testing.T) {
	const k1, k2, k3 = "1111111111111111", "2222222222222222", "3333333333333333"
	random := bytes.Repeat([]byte{0xab}, hopKeyBytes)
	made := strings.Repeat("ab", hopKeyBytes)
	has := func(region string, keys ...string) hopFound {
		return hopFound{region: region, exists: true, keys: keys}
	}
	none := func(region string) hopFound { return hopFound{region: region} }
	broken := func(region string) hopFound { return hopFound{region: region, exists: true} }
	for _, tc := range []struct {
		name    string
		found   []hopFound
		unread  []string
		failing bool // random fails
		value   string
		note    bool
		errHas  []string // each in the error; none: no error
	}{
		{name: "no region has one: one made for all", found: []hopFound{none("a"), none("b")}, value: made},
		{name: "one region's key goes to the others", found: []hopFound{none("a"), has("b", k1), none("c")}, value: k1},
		{name: "all agree", found: []hopFound{has("a", k1), has("b", k1)}, value: k1},
		{name: "mid-rotation: every signing key held everywhere", found: []hopFound{has("a", k1, k2), has("b", k1), none("c")}, value: k1 + "\n" + k2},
		{name: "swapped order mid-rotation", found: []hopFound{has("a", k2, k1), has("b", k1, k2)}, value: k2 + "\n" + k1},
		{name: "disagree: none created", found: []hopFound{has("a", k1), has("b", k2), none("c")},
			errHas: []string{"a signs with a key not held by b", "b signs with a key not held by a"}},
		{name: "a signing key one region lacks", found: []hopFound{has("a", k3, k1), has("b", k1, k3), has("c", k1)},
			errHas: []string{"a signs with a key not held by c"}},
		{name: "unread region may hold one: none made", found: []hopFound{none("a")}, unread: []string{"b"}, note: true},
		{name: "unread region, the read ones' key used", found: []hopFound{has("a", k1), none("c")}, unread: []string{"b"}, value: k1},
		{name: "a Secret without a usable key is left and reported", found: []hopFound{broken("a"), has("b", k1), none("c")}, value: k1,
			errHas: []string{"a's Secret has no usable key"}},
		{name: "no randomness: none made", found: []hopFound{none("a")}, failing: true, errHas: []string{"making one"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(random)
			p := chooseHopKey(tc.found, tc.unread, r)
			if tc.failing {
				p = chooseHopKey(tc.found, tc.unread, iotest.ErrReader(iotest.ErrTimeout))
			}
			if p.value != tc.value {
				t.Errorf("value = %q, want %q", p.value, tc.value)
			}
			if (p.note != "") != tc.note {
				t.Errorf("note = %q, want one: %v", p.note, tc.note)
			}
			if len(tc.errHas) == 0 && p.err != nil {
				t.Errorf("err = %v, want none", p.err)
			}
			for _, s := range tc.errHas {
				if p.err == nil || !strings.Contains(p.err.Error(), s) {
					t.Errorf("err = %v, want it to say %q", p.err, s)
				}
			}
			if p.value != "" && p.value != made && r.Len() != len(random) {
				t.Error("randomness used for a key that was copied")
			}
		})
	}
}
