package httpcache

import (
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// hdr builds a header from name, value pairs; a name may repeat.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  CacheControl
	}{
		{"empty", nil, CacheControl{}},
		{"basic §5.2", []string{"max-age=60, public"}, CacheControl{"max-age": "60", "public": ""}},
		{"names are case-insensitive §5.2", []string{"MaX-aGe=60"}, CacheControl{"max-age": "60"}},
		{"quoted field names §5.2.2.4", []string{`no-cache="Set-Cookie, X-Foo"`}, CacheControl{"no-cache": "Set-Cookie, X-Foo"}},
		{"directive inside quoted string is not one", []string{`extension="max-age=3600", max-age=1`}, CacheControl{"extension": "max-age=3600", "max-age": "1"}},
		{"space before = is garbage", []string{"max-age =3600, public"}, CacheControl{"public": ""}},
		{"space after = is garbage", []string{"max-age= 3600"}, CacheControl{}},
		{"trailing text is garbage", []string{"max-age=3600 junk, public"}, CacheControl{"public": ""}},
		{"empty list elements", []string{",,, ,public,,"}, CacheControl{"public": ""}},
		{"quoted-pair", []string{`a="x\"y\\z"`}, CacheControl{"a": `x"y\z`}},
		{"unterminated quote swallows the rest", []string{`a="x, max-age=5`}, CacheControl{}},
		{"single quotes are token chars", []string{"max-age='3600'"}, CacheControl{"max-age": "'3600'"}},
		{"parameters are garbage", []string{"foo;bar=1, max-age=5"}, CacheControl{"max-age": "5"}},
		{"empty argument is garbage", []string{"max-age=, public"}, CacheControl{"public": ""}},
		{"quoted empty argument", []string{`no-cache=""`}, CacheControl{"no-cache": ""}},
		{"first occurrence wins §4.2.1, same line", []string{"max-age=1800, max-age=1"}, CacheControl{"max-age": "1800", "\x00max-age": "1"}},
		{"first occurrence wins §4.2.1, two lines", []string{"max-age=1", "max-age=1800"}, CacheControl{"max-age": "1", "\x00max-age": "1800"}},
		{"identical duplicates do not conflict", []string{"max-age=5", `max-age="5"`}, CacheControl{"max-age": "5"}},
		{"control char in quoted string is garbage", []string{"a=\"x\x01\", public"}, CacheControl{"public": ""}},
		{"tab OWS", []string{"public\t,\tmax-age=5\t"}, CacheControl{"public": "", "max-age": "5"}},
		{"non-token start", []string{"=5, @x, public"}, CacheControl{"public": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseCacheControl(tt.lines)
			if !maps.Equal(got, tt.want) {
				t.Errorf("ParseCacheControl(%q) = %q, want %q", tt.lines, got, tt.want)
			}
		})
	}
}

func TestCacheControlSeconds(t *testing.T) {
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"max-age=60", 60 * time.Second, true},
		{"max-age=003600", 3600 * time.Second, true},
		{`max-age="3600"`, 3600 * time.Second, true}, // §5.2: recipients accept both forms
		{"max-age=2147483648", 2147483648 * time.Second, true},
		{"max-age=99999999999", 2147483648 * time.Second, true}, // §1.2.2 clamp
		{"max-age=999999999999999999999999999999", 2147483648 * time.Second, true},
		{"max-age=0", 0, true},
		{"max-age=-1", 0, false},
		{"max-age=3600.0", 0, false},
		{"max-age=a3600", 0, false},
		{"max-age=3600a", 0, false},
		{"max-age='3600'", 0, false},
		{"max-age", 0, false},
		{"public", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseCacheControl([]string{tt.in}).Seconds("Max-Age")
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Seconds = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCacheControlHasConflicting(t *testing.T) {
	cc := ParseCacheControl([]string{"No-Store, max-age=1, max-age=2"})
	if !cc.Has("no-store") || !cc.Has("NO-STORE") || cc.Has("no-cache") {
		t.Errorf("Has wrong for %q", cc)
	}
	if !cc.Conflicting() {
		t.Error("Conflicting() = false for max-age=1, max-age=2")
	}
	if ParseCacheControl([]string{"max-age=1, max-age=1, public"}).Conflicting() {
		t.Error("Conflicting() = true for identical duplicates")
	}
}

func TestCacheControlString(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"public, max-age=60"}, "max-age=60, public"},
		{[]string{`no-cache="a, b", PRIVATE`}, `no-cache="a, b", private`},
		{[]string{`x="q\"b\\s"`}, `x="q\"b\\s"`},
		{[]string{"max-age=1", "max-age=2"}, "max-age=1, max-age=2"},
		{[]string{`no-cache="", no-cache=x`}, "no-cache, no-cache=x"},
		{nil, ""},
	}
	for _, tt := range tests {
		cc := ParseCacheControl(tt.in)
		got := cc.String()
		if got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back := ParseCacheControl([]string{got}); !maps.Equal(back, cc) {
			t.Errorf("round trip of %q: %q != %q", tt.in, back, cc)
		}
	}
}

func TestCacheControlFieldNames(t *testing.T) {
	tests := []struct {
		in, name string
		want     []string
	}{
		{`no-cache="set-cookie, X-Foo , x-foo,,bad name"`, "no-cache", []string{"Set-Cookie", "X-Foo"}},
		{`private=authorization`, "private", []string{"Authorization"}},
		{`private`, "private", nil},
		{`public`, "private", nil},
	}
	for _, tt := range tests {
		got := ParseCacheControl([]string{tt.in}).FieldNames(tt.name)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("FieldNames(%q, %q) = %q, want %q", tt.in, tt.name, got, tt.want)
		}
	}
}

// TestDirectivesAgreeWithMap checks that the allocation-free scanner used by
// the decisions sees what ParseCacheControl sees.
func TestDirectivesAgreeWithMap(t *testing.T) {
	inputs := []string{
		"max-age=60, public", "no-store", `no-cache="a"`, "no-cache", `private="x", private`,
		"MUST-REVALIDATE, proxy-revalidate", "s-maxage=1, s-maxage=2", `stale-if-error="30"`,
		"max-age =5, stale-while-revalidate=10", `x="max-age=5", must-understand`,
	}
	for _, in := range inputs {
		cc := ParseCacheControl([]string{in})
		ds := parseDirectives([]string{in}, false)
		checks := []struct {
			name string
			got  bool
		}{
			{"no-store", ds.noStore}, {"no-cache", ds.noCache}, {"private", ds.private},
			{"public", ds.public}, {"must-revalidate", ds.mustRevalidate},
			{"proxy-revalidate", ds.proxyRevalidate}, {"must-understand", ds.mustUnderstand},
			{"max-age", ds.maxAge.set}, {"s-maxage", ds.sMaxAge.set},
			{"stale-while-revalidate", ds.swr.set}, {"stale-if-error", ds.sie.set},
		}
		for _, c := range checks {
			if c.got != cc.Has(c.name) {
				t.Errorf("%q: directives %s=%v, map Has=%v", in, c.name, c.got, cc.Has(c.name))
			}
		}
		if d, ok := cc.Seconds("max-age"); ok != ds.maxAge.valid || d != ds.maxAge.d {
			t.Errorf("%q: max-age map %v,%v directives %v,%v", in, d, ok, ds.maxAge.d, ds.maxAge.valid)
		}
		if _, dup := cc["\x00s-maxage"]; dup != ds.sMaxAge.conflict {
			t.Errorf("%q: s-maxage conflict map %v directives %v", in, dup, ds.sMaxAge.conflict)
		}
	}
}

func TestIsTchar(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c < 128 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0)
		if got := isTchar(byte(c)); got != want {
			t.Errorf("isTchar(%#x) = %v, want %v", c, got, want)
		}
	}
}
