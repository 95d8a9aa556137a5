package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in    string
		owner string
		ok    bool
	}{
		{Value("demo"), "demo", true},
		{`"heritage=kubecdn,owner=demo"`, "demo", true},
		{"heritage=kubecdn,owner=", "", false},
		{"heritage=external-dns,owner=demo", "", false},
		{"v=spf1 -all", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		owner, ok := Parse(tt.in)
		if owner != tt.owner || ok != tt.ok {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tt.in, owner, ok, tt.owner, tt.ok)
		}
	}
}

func TestRecordName(t *testing.T) {
	for _, name := range []string{"www.cdn.example", "www.cdn.example.", "cdn.example"} {
		rec := RecordName(name)
		back, ok := OwnedName(rec)
		if !ok || back+"." != name && back != name {
			t.Errorf("OwnedName(RecordName(%q)) = %q, %v", name, back, ok)
		}
	}
	if _, ok := OwnedName("www.cdn.example"); ok {
		t.Error("OwnedName of a plain name says it is an ownership record")
	}
}

func TestCheck(t *testing.T) {
	r := Registry{Zone: "z", Owner: "a"}
	tests := []struct {
		name   string
		at     string
		l      Listing
		ours   bool
		refuse bool   // an *OwnedError is wanted
		holder string // its Owner
	}{
		{name: "an empty name is free", at: "www.z"},
		{name: "the owner's name", at: "www.z", l: Listing{Types: []string{"A", "MX"}, OwnershipTypes: []string{"TXT"}, TXT: []string{`"` + Value("a") + `"`}}, ours: true},
		{name: "another owner's name", at: "www.z", l: Listing{Types: []string{"A"}, OwnershipTypes: []string{"TXT"}, TXT: []string{Value("b")}}, refuse: true, holder: "b"},
		{name: "held by the owner and another", at: "www.z", l: Listing{OwnershipTypes: []string{"TXT"}, TXT: []string{Value("a"), Value("b")}}, refuse: true, holder: "b"},
		{name: "hand-made records", at: "www.z", l: Listing{Types: []string{"MX"}}, refuse: true},
		{name: "hand-made address", at: "www.z", l: Listing{Types: []string{"A"}}, refuse: true},
		{name: "a foreign TXT at the ownership name", at: "www.z", l: Listing{OwnershipTypes: []string{"TXT"}, TXT: []string{"v=spf1"}}, refuse: true},
		{name: "the apex's SOA and NS leave it free", at: "z", l: Listing{Types: []string{"SOA", "NS", "RRSIG", "DNSKEY"}}},
		{name: "NS below the apex is a delegation", at: "sub.z", l: Listing{Types: []string{"NS"}}, refuse: true},
		{name: "DNSSEC records leave a name free", at: "www.z", l: Listing{Types: []string{"RRSIG", "NSEC"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ours, err := r.Check(tt.at, tt.l)
			var oe *OwnedError
			if errors.As(err, &oe) != tt.refuse {
				t.Fatalf("Check error %v, want a refusal %v", err, tt.refuse)
			}
			if tt.refuse && (oe.Owner != tt.holder || oe.Name != tt.at) {
				t.Errorf("refusal %+v, want name %s owner %q", oe, tt.at, tt.holder)
			}
			if ours != tt.ours {
				t.Errorf("ours %v, want %v", ours, tt.ours)
			}
		})
	}
}

func TestOrphans(t *testing.T) {
	r := Registry{Zone: "z", Owner: "a"}
	txt := map[string][]string{
		RecordName("old.z"):   {`"` + Value("a") + `"`},
		RecordName("www.z"):   {Value("a")},
		RecordName("b.z"):     {Value("b")},
		RecordName("both.z"):  {Value("b"), Value("a")},
		RecordName("spf.z"):   {"v=spf1"},
		"not-ownership.z":     {Value("a")},
		RecordName("older.z"): {Value("a")},
	}
	got := r.Orphans(txt, map[string]bool{"www.z": true})
	want := []string{"both.z", "old.z", "older.z"}
	if !slices.Equal(got, want) {
		t.Errorf("Orphans = %q, want %q", got, want)
	}
}

func TestMine(t *testing.T) {
	r := Registry{Owner: "a"}
	for v, want := range map[string]bool{Value("a"): true, `"` + Value("a") + `"`: true, Value("ab"): false, Value("b"): false, "a": false} {
		if r.Mine(v) != want {
			t.Errorf("Mine(%q) = %v, want %v", v, !want, want)
		}
	}
}

func TestManagedTypes(t *testing.T) {
	for _, typ := range ManagedTypes() {
		if !Managed(typ) {
			t.Errorf("%s is listed but not Managed", typ)
		}
	}
	for _, typ := range []string{"TXT", "MX", "NS", "SOA", "a"} {
		if Managed(typ) {
			t.Errorf("%s is Managed", typ)
		}
	}
}

// FuzzParse checks that Parse never returns an empty owner and that every
// owner Value writes (owners are names, without quotes) parses back.
func FuzzParse(f *testing.F) {
	f.Add("demo")
	f.Add(`"`)
	f.Add("heritage=kubecdn,owner=x")
	f.Fuzz(func(t *testing.T, s string) {
		if o, ok := Parse(s); ok && o == "" {
			t.Fatalf("Parse(%q) gives an empty owner", s)
		}
		if strings.Contains(s, `"`) {
			return
		}
		if o, ok := Parse(Value(s)); o != s || ok != (s != "") {
			t.Fatalf("Parse(Value(%q)) = %q, %v", s, o, ok)
		}
	})
}
