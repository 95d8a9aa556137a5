package edge

import (
	"strconv"
	"strings"
)

// The store's key scheme, in one place. An object is stored under the key
// of its variant: the primary cache key (httpcache.Key), followed for a
// response that varies by NUL and the request's vary key. The variant's
// metadata (and its body, when not sliced) is under objKey; each slice of a
// sliced body under sliceKey. A response that varies also leaves a marker
// under the primary key's objKey that names the fields it varies on.

// objKey is the storage key of variant vk's metadata.
func objKey(vk string) string { return "o:" + vk }

// sliceKey is the storage key of slice i of variant vk.
func sliceKey(vk string, i int64) string { return "s:" + vk + "#" + strconv.FormatInt(i, 10) }

// variantKey is the variant key of primary key pk for vary key varyKey.
func variantKey(pk, varyKey string) string { return pk + "\x00" + varyKey }

// variantOf returns the variant key inside an object's storage key, and
// whether key is one.
func variantOf(key string) (vk string, ok bool) { return strings.CutPrefix(key, "o:") }

// primaryOf returns the primary key of a variant key, as a substring of it.
func primaryOf(vk string) string {
	if i := strings.IndexByte(vk, 0); i >= 0 {
		return vk[:i]
	}
	return vk
}

// variantOfPrimary reports whether variant key vk belongs to primary key pk.
func variantOfPrimary(vk, pk string) bool {
	return vk == pk || (len(vk) > len(pk) && vk[len(pk)] == 0 && vk[:len(pk)] == pk)
}
