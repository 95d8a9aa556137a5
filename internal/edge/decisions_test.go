package edge

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Listen: "127.0.0.1:8080", Origin: "http://127.0.0.1:9000"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"no listen", func(c *Config) { c.Listen = "" }, "listen: required"},
		{"bad listen", func(c *Config) { c.Listen = "8080" }, "listen: \"8080\" is not host:port"},
		{"no origin", func(c *Config) { c.Origin = "" }, "origin: required"},
		{"origin scheme", func(c *Config) { c.Origin = "ftp://x" }, "origin: \"ftp://x\": scheme must be http or https"},
		{"origin no host", func(c *Config) { c.Origin = "http://" }, "origin: \"http://\": no host"},
		{"admin same as listen", func(c *Config) { c.Admin = c.Listen }, "admin: must differ from listen"},
		{"bad peer", func(c *Config) { c.Peers = []string{"http://a:1", "nope"} }, "peers[1]"},
		{"bad parent", func(c *Config) { c.Parent = "x" }, "parent:"},
		{"bad hostname", func(c *Config) { c.Hostnames = []string{"ok.example", "a/b"} }, "hostnames[1]"},
		{"negative memory", func(c *Config) { c.MemoryBytes = -1 }, "memory: must not be negative"},
		{"tiny slice", func(c *Config) { c.SliceBytes = 10 }, "slice: must be between"},
		{"tiny maxKey", func(c *Config) { c.MaxKeyBytes = 100 }, "maxKey: must be between"},
		{"huge maxKey", func(c *Config) { c.MaxKeyBytes = 1 << 20 }, "maxKey: must be between"},
		{"maxKey 4KiB", func(c *Config) { c.MaxKeyBytes = 4 << 10 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidateReportsEveryError(t *testing.T) {
	err := Config{}.Validate()
	if err == nil || !strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), "origin") {
		t.Fatalf("want errors for listen and origin, got %v", err)
	}
}

func TestOwnerIsStableAndSpreads(t *testing.T) {
	ring := []string{"http://a:1", "http://b:1", "http://c:1"}
	counts := map[string]int{}
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("http://www.example.com/asset/%d.js", i)
		o := owner(ring, k, fnvHash)
		// The order of the ring does not matter: every edge agrees.
		if o2 := owner([]string{ring[2], ring[0], ring[1]}, k, fnvHash); o2 != o {
			t.Fatalf("owner depends on ring order: %s vs %s", o, o2)
		}
		counts[o]++
	}
	for _, id := range ring {
		if counts[id] < 800 || counts[id] > 1200 {
			t.Errorf("edge %s owns %d of 3000 keys; want about 1000", id, counts[id])
		}
	}
	// Removing an edge moves only that edge's keys.
	moved := 0
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("http://www.example.com/asset/%d.js", i)
		before := owner(ring, k, fnvHash)
		after := owner(ring[:2], k, fnvHash)
		if before != after {
			if before != ring[2] {
				t.Fatalf("key %s moved from %s though %s left", k, before, ring[2])
			}
			moved++
		}
	}
	if moved != counts[ring[2]] {
		t.Errorf("moved %d keys, want %d", moved, counts[ring[2]])
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := &objMeta{
		Key: "http://www.example.com/a?b", VaryNames: []string{"Accept-Encoding"}, Status: 200,
		Header:  http.Header{"Content-Type": {"text/plain"}, "Etag": {`"x"`}, "Set-Cookie": {"a=b", "c=d"}},
		ReqTime: time.Unix(100, 5), RespTime: time.Unix(101, 7), Size: 1 << 30, Sliced: true, SliceBytes: 4 << 20,
		Invalidated: true, Tags: []string{"t1", "t2"},
	}
	got, err := decodeMeta(m.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	if got.numSlices() != 256 {
		t.Errorf("numSlices = %d, want 256", got.numSlices())
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add((&objMeta{Key: "k", Status: 200, Header: http.Header{"A": {"b"}}}).encode())
	f.Add([]byte{1, 0, 200})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same value.
		m2, err := decodeMeta(m.encode())
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %v\n%+v\n%+v", err, m, m2)
		}
	})
}

func TestRangeSliceHint(t *testing.T) {
	const S = 1 << 20
	tests := []struct {
		rng, ifRange string
		first, last  int64
	}{
		{"", "", -1, -1},
		{"bytes=0-99", "", 0, 0},
		{"bytes=1048576-", "", 1, -1},
		{"bytes=5000000-5000001", "", 4, 4},
		{"bytes=1048575-3145728", "", 0, 3},
		{"bytes=-500", "", -1, -1},
		{"bytes=0-1,5-6", "", -1, -1},
		{"items=1-2", "", -1, -1},
		{"bytes=x-1", "", -1, -1},
		{"bytes=9-1", "", -1, -1},
		{"bytes=10-20", `"etag"`, -1, -1},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.rng != "" {
			h.Set("Range", tt.rng)
		}
		if tt.ifRange != "" {
			h.Set("If-Range", tt.ifRange)
		}
		if first, last := rangeSliceHint(h, S); first != tt.first || last != tt.last {
			t.Errorf("rangeSliceHint(%q) = %d, %d, want %d, %d", tt.rng, first, last, tt.first, tt.last)
		}
	}
}

func TestPurgeKeys(t *testing.T) {
	keys, prefixes, err := purgeKeys(adminapi.PurgeRequest{URLs: []string{"https://WWW.example.com/a.css?v=1"}, Prefixes: []string{"http://www.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"http://www.example.com/a.css?v=1", "https://www.example.com/a.css?v=1"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("keys = %q, want %q", keys, wantKeys)
	}
	if !reflect.DeepEqual(prefixes, []string{"http://www.example.com/", "https://www.example.com/"}) {
		t.Errorf("prefixes = %q", prefixes)
	}
	for _, bad := range []adminapi.PurgeRequest{{}, {URLs: []string{"/relative"}}, {Prefixes: []string{"ftp://x/"}}, {Tags: []string{" "}}} {
		if _, _, err := purgeKeys(bad); err == nil {
			t.Errorf("purgeKeys(%+v) accepted", bad)
		}
	}
}

func TestTagsOf(t *testing.T) {
	got := tagsOf([]string{"a b  c"}, []string{"d, e,,f"})
	if want := []string{"a", "b", "c", "d", "e", "f"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tagsOf = %q, want %q", got, want)
	}
}

func TestIndexMatch(t *testing.T) {
	x := newIndex(nil)
	x.add("http://h/a/1", "o:http://h/a/1", []string{"red"})
	x.add("http://h/a/2", "o:http://h/a/2", nil)
	x.add("http://h/b/1", "o:http://h/b/1", []string{"red", "blue"})
	if got := x.match(nil, nil, []string{"blue"}, false); len(got) != 1 {
		t.Fatalf("soft match by tag = %q, want one key", got)
	}
	if got := x.match(nil, nil, []string{"blue"}, false); len(got) != 1 {
		t.Fatalf("a soft purge forgot the tag: %q", got)
	}
	got := x.match([]string{"http://h/a/2"}, []string{"http://h/b/"}, []string{"red"}, true)
	if len(got) != 3 {
		t.Fatalf("match = %q, want all three keys", got)
	}
	if got := x.match(nil, nil, []string{"red"}, true); len(got) != 0 {
		t.Fatalf("a hard purge kept the tag: %q", got)
	}
	if got := x.match(nil, []string{"http://h/zzz"}, nil, true); len(got) != 0 {
		t.Fatalf("match on a prefix of nothing = %q", got)
	}
}

func TestIndexRemoveForgetsTags(t *testing.T) {
	x := newIndex(nil)
	x.add("http://h/a", "o:http://h/a", []string{"red", "blue"})
	x.add("http://h/b", "o:http://h/b", []string{"red"})
	x.remove("http://h/a")
	if got := x.match(nil, nil, []string{"blue"}, false); len(got) != 0 {
		t.Fatalf("removed key still tagged blue: %q", got)
	}
	if got := x.match(nil, nil, []string{"red"}, false); len(got) != 1 || got[0] != "http://h/b" {
		t.Fatalf("red = %q, want only /b", got)
	}
	if _, ok := x.tags["blue"]; ok {
		t.Fatal("an empty tag set was kept")
	}
}

// TestIndexFollowsStore: the index names only what the store holds, in
// whatever order a Put, its add and the store's eviction report come.
func TestIndexFollowsStore(t *testing.T) {
	held := map[string]bool{}
	x := newIndex(func(k string) bool { return held[k] })
	const pk = "http://h/a"
	sk, v1, v2 := "o:"+pk, "o:"+pk+"\x00gzip", "o:"+pk+"\x00br"

	// Refused on admission (or evicted) before the add: not indexed.
	x.add(pk, sk, []string{"red"})
	if x.len() != 0 || len(x.match(nil, nil, []string{"red"}, false)) != 0 {
		t.Fatalf("a key the store does not hold was indexed")
	}
	// Stored, then reported evicted after a newer Put stored it again: kept.
	held[sk] = true
	x.add(pk, sk, []string{"red"})
	if x.evicted(sk) || x.len() != 1 {
		t.Fatalf("an eviction report for a key stored again forgot it")
	}
	// Gone for real: forgotten with its tags.
	delete(held, sk)
	if !x.evicted(sk) || x.len() != 0 || len(x.tags) != 0 {
		t.Fatalf("an evicted key stayed: %d keys, tags %v", x.len(), x.tags)
	}
	// Variants: the primary key stays while one of them is held.
	held[v1], held[v2] = true, true
	x.add(pk, v1, nil)
	x.add(pk, v2, nil)
	delete(held, v1)
	if x.evicted(v1) || len(x.variants(pk)) != 1 {
		t.Fatalf("variants after one left: %q", x.variants(pk))
	}
	delete(held, v2)
	if !x.evicted(v2) || x.len() != 0 {
		t.Fatalf("primary key kept with no variant")
	}
}

// TestIndexManyVariants: an object with many variants keeps a set, and
// dropping them one by one leaves nothing behind.
func TestIndexManyVariants(t *testing.T) {
	held := map[string]bool{}
	x := newIndex(func(k string) bool { return held[k] })
	const pk = "http://h/v"
	var sks []string
	for i := range 3 * manyVariants {
		sk := fmt.Sprintf("o:%s\x00%d", pk, i)
		held[sk] = true
		sks = append(sks, sk)
		x.add(pk, sk, nil)
		x.add(pk, sk, nil) // twice: still one variant
	}
	if n := len(x.variants(pk)); n != len(sks) {
		t.Fatalf("%d variants, want %d", n, len(sks))
	}
	for i, sk := range sks {
		delete(held, sk)
		forgotten := x.evicted(sk)
		if forgotten != (i == len(sks)-1) {
			t.Fatalf("evicting variant %d: forgotten = %v", i, forgotten)
		}
	}
	if x.len() != 0 {
		t.Fatalf("index holds %d keys after every variant left", x.len())
	}
}

// TestIndexSharesStoreKeyBytes: the index keeps a primary key as a
// substring of the storage key (the bytes the store holds and weighs), not
// as a copy of its own.
func TestIndexSharesStoreKeyBytes(t *testing.T) {
	x := newIndex(nil)
	pk := "http://h/" + strings.Repeat("q", 1000)
	sk := "o:" + pk
	x.add(strings.Clone(pk), sk, nil)
	for k := range x.keys {
		if unsafe.StringData(k) != unsafe.StringData(sk[2:]) {
			t.Fatal("the index holds its own copy of the primary key")
		}
	}
}

// TestMetaEncodeExact: the encoded metadata is allocated once, at about its
// length, so the memory tier, which weighs a blob by len(meta), is not
// holding twice what it counts for a long key.
func TestMetaEncodeExact(t *testing.T) {
	m := &objMeta{
		Key: "https://h/p?" + strings.Repeat("q", 7<<10), Status: 200, Tags: []string{"a", "b"},
		Header: http.Header{"Content-Type": {"text/plain"}, "Cache-Control": {"max-age=60"}, "Set-Cookie": {"a=b", "c=d"}},
	}
	b := m.encode()
	if spare := cap(b) - len(b); spare > 256 {
		t.Fatalf("encoded meta of %d bytes has %d spare bytes of capacity", len(b), spare)
	}
}

func TestKeyScheme(t *testing.T) {
	pk := "https://www.test/a?b"
	vk := variantKey(pk, "gzip")
	if got, ok := variantOf(objKey(vk)); !ok || got != vk {
		t.Errorf("variantOf(objKey(%q)) = %q, %v", vk, got, ok)
	}
	if _, ok := variantOf(sliceKey(vk, 3)); ok {
		t.Error("a slice key is taken for an object's key")
	}
	if primaryOf(vk) != pk || primaryOf(pk) != pk {
		t.Errorf("primaryOf: %q, %q", primaryOf(vk), primaryOf(pk))
	}
	for _, tt := range []struct {
		vk   string
		want bool
	}{{pk, true}, {vk, true}, {pk + "x", false}, {variantKey(pk+"x", "gzip"), false}, {"https://www.test/a", false}} {
		if got := variantOfPrimary(tt.vk, pk); got != tt.want {
			t.Errorf("variantOfPrimary(%q, %q) = %v, want %v", tt.vk, pk, got, tt.want)
		}
	}
}
