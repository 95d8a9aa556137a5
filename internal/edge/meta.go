package edge

import (
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// objMeta is what the edge stores beside an object's body. An object whose
// body is at most one slice is stored inline with it; a larger one is stored
// as this metadata alone and slice blobs (see sliceKey).
type objMeta struct {
	Key         string   // primary cache key (scheme://host/path?query)
	VaryNames   []string // on a vary marker: the names the variants vary on
	Marker      bool     // a vary marker: no response, only VaryNames
	Status      int
	Header      http.Header
	ReqTime     time.Time
	RespTime    time.Time
	Size        int64 // body size in bytes
	Sliced      bool  // body in slice blobs of SliceBytes each
	SliceBytes  int64
	Invalidated bool // soft purged or invalidated: stale from now on
	Tags        []string
}

const metaVersion = 1

var errBadMeta = errors.New("edge: malformed object metadata")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// encodedLen bounds the length of m's encoding, so encode allocates once
// and exactly: the memory tier weighs a blob by the length of its meta, and
// the spare capacity of a slice grown by appending would be held unweighed.
func (m *objMeta) encodedLen() int {
	const varint = binary.MaxVarintLen64
	n := 2 + 6*varint + len(m.Key) + varint
	for _, ss := range [][]string{m.VaryNames, m.Tags} {
		n += varint
		for _, s := range ss {
			n += varint + len(s)
		}
	}
	n += varint
	for k, vs := range m.Header {
		n += 2*varint + len(k)
		for _, v := range vs {
			n += varint + len(v)
		}
	}
	return n
}

func (m *objMeta) encode() []byte {
	b := make([]byte, 0, m.encodedLen())
	b = append(b, metaVersion)
	var flags byte
	if m.Marker {
		flags |= 1
	}
	if m.Sliced {
		flags |= 2
	}
	if m.Invalidated {
		flags |= 4
	}
	b = append(b, flags)
	b = appendString(b, m.Key)
	b = appendStrings(b, m.VaryNames)
	b = binary.AppendUvarint(b, uint64(m.Status))
	b = binary.AppendVarint(b, m.ReqTime.UnixNano())
	b = binary.AppendVarint(b, m.RespTime.UnixNano())
	b = binary.AppendVarint(b, m.Size)
	b = binary.AppendVarint(b, m.SliceBytes)
	b = appendStrings(b, m.Tags)
	b = binary.AppendUvarint(b, uint64(len(m.Header)))
	for k, vs := range m.Header {
		b = appendString(b, k)
		b = appendStrings(b, vs)
	}
	return b
}

type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadMeta
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadMeta
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errBadMeta
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *metaReader) strings() []string {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errBadMeta
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = r.string()
	}
	return ss
}

func decodeMeta(b []byte) (*objMeta, error) {
	if len(b) < 2 || b[0] != metaVersion {
		return nil, errBadMeta
	}
	m := &objMeta{}
	flags := b[1]
	m.Marker, m.Sliced, m.Invalidated = flags&1 != 0, flags&2 != 0, flags&4 != 0
	r := &metaReader{b: b[2:]}
	m.Key = r.string()
	m.VaryNames = r.strings()
	m.Status = int(r.uvarint())
	m.ReqTime = time.Unix(0, r.varint())
	m.RespTime = time.Unix(0, r.varint())
	m.Size = r.varint()
	m.SliceBytes = r.varint()
	m.Tags = r.strings()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		return nil, errBadMeta
	}
	m.Header = make(http.Header, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.string()
		m.Header[k] = r.strings()
	}
	if r.err != nil {
		return nil, r.err
	}
	if m.Size < 0 || m.SliceBytes < 0 || (m.Sliced && m.SliceBytes == 0) {
		return nil, errBadMeta
	}
	return m, nil
}

// numSlices is how many slice blobs a sliced object has.
func (m *objMeta) numSlices() int64 {
	if !m.Sliced {
		return 1
	}
	return (m.Size + m.SliceBytes - 1) / m.SliceBytes
}

// validator identifies the representation, so slices of one object can be
// checked to agree: the strong ETag, else Last-Modified, else "".
func validator(h http.Header) string {
	if et := h.Get("Etag"); et != "" && !hasWeakPrefix(et) {
		return "e:" + et
	}
	if lm := h.Get("Last-Modified"); lm != "" {
		return "l:" + lm
	}
	return ""
}

func hasWeakPrefix(s string) bool { return len(s) >= 2 && s[0] == 'W' && s[1] == '/' }
