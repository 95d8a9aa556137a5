package httpcache

import (
	"strings"
	"testing"
)

func TestNormalizeTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/a/b?x=1", "/a/b?x=1"},
		{"/../secret", "/secret"},
		{"/a/../../secret", "/secret"},
		{"/a/b/c/./../../g", "/a/g"}, // RFC 3986 §5.2.4's example
		{"/a/./b", "/a/b"},
		{"/a/.", "/a/"},
		{"/a/..", "/"},
		{"/.", "/"},
		{"/..", "/"},
		{"/a/b/..", "/a/"},
		{"//../x", "/x"},
		{"/a//b/../c", "/a//c"},
		{"/%2e%2e/secret", "/secret"},
		{"/%2E%2e/secret", "/secret"},
		{"/a/%2e/b", "/a/b"},
		{"/a/.%2e/b", "/b"},
		{"/a/%2e./b", "/b"},
		{"/a%2eb", "/a.b"}, // the unreserved dot is decoded wherever it is
		{"/a/..b/c", "/a/..b/c"},
		{"/a/...", "/a/..."},
		{"/.well-known/x", "/.well-known/x"},
		{"/a/..?q=/../x", "/?q=/../x"},         // the query is not a path
		{"/a?q=%2e%2e", "/a?q=%2e%2e"},         // nor are its dots
		{"/a/%2f../b", "/a/%2f../b"},           // "%2f.." is one segment
		{"/a/%252e%252e/b", "/a/%252e%252e/b"}, // "%25" is a percent, not a dot
		{"*", "*"},
	} {
		if got := NormalizeTarget(tc.in); got != tc.want {
			t.Errorf("NormalizeTarget(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if NormalTarget(tc.in) != (tc.in == tc.want) {
			t.Errorf("NormalTarget(%q) = %v, want %v", tc.in, NormalTarget(tc.in), tc.in == tc.want)
		}
		if NormalTarget([]byte(tc.in)) != NormalTarget(tc.in) {
			t.Errorf("NormalTarget disagrees between []byte and string for %q", tc.in)
		}
	}
}

func TestNormalTargetAllocs(t *testing.T) {
	b := []byte("/assets/app.js?v=3")
	if n := testing.AllocsPerRun(100, func() { NormalTarget(b) }); n != 0 {
		t.Errorf("NormalTarget allocates %v times", n)
	}
}

// FuzzNormalizeTarget checks the properties the edge relies on: no panic,
// idempotence, a normal result, no ".." left to climb with (even after an
// origin decodes the dots), and the query untouched.
func FuzzNormalizeTarget(f *testing.F) {
	for _, s := range []string{"/", "/../a", "/a/%2e%2E/b", "//..//.", "/a?b=/../", "/%2", "/%2e", "/a/.%2", "/..%2f..", "/x/./y/../z/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.HasPrefix(s, "/") {
			s = "/" + s
		}
		got := NormalizeTarget(s)
		if again := NormalizeTarget(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, again)
		}
		if !NormalTarget(got) {
			t.Fatalf("result %q of %q is not normal", got, s)
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("result %q of %q leaves the root", got, s)
		}
		path, query, hasQuery := strings.Cut(got, "?")
		for _, seg := range strings.Split(decodeDots(path), "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("result %q of %q keeps a dot segment", got, s)
			}
		}
		_, inQuery, inHasQuery := strings.Cut(s, "?")
		if hasQuery != inHasQuery || query != inQuery {
			t.Fatalf("query changed: %q -> %q", s, got)
		}
		if NormalTarget(s) && got != s {
			t.Fatalf("normal target %q changed to %q", s, got)
		}
	})
}
