package locate

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubecdn/kubecdn/internal/config"
)

// writeMMDB writes a minimal MaxMind DB (format 2.0, IPv4 tree, 24-bit
// records) mapping non-overlapping IPv4 networks to
// {location: {latitude, longitude}}, the GeoIP2 City layout. There is no
// mmdb writer among the project's dependencies; the format is small.
func writeMMDB(t *testing.T, nets map[string]config.Location) string {
	t.Helper()
	type node [2]int // child node index, or -1 empty, or -(2+dataIndex)
	nodes := []node{{-1, -1}}
	var data bytes.Buffer
	var offsets []int
	for cidr, loc := range nets {
		p := netip.MustParsePrefix(cidr).Masked()
		offsets = append(offsets, data.Len())
		writeMap(&data, 1)
		writeString(&data, "location")
		writeMap(&data, 2)
		writeString(&data, "latitude")
		writeDouble(&data, loc.Lat)
		writeString(&data, "longitude")
		writeDouble(&data, loc.Lon)
		ref := -(2 + len(offsets) - 1)
		a := p.Addr().As4()
		cur := 0
		for i := 0; i < p.Bits(); i++ {
			bit := int(a[i/8]>>(7-uint(i%8))) & 1
			if i == p.Bits()-1 {
				nodes[cur][bit] = ref
				break
			}
			if nodes[cur][bit] < 0 {
				nodes = append(nodes, node{-1, -1})
				nodes[cur][bit] = len(nodes) - 1
			}
			cur = nodes[cur][bit]
		}
	}
	n := len(nodes)
	var out bytes.Buffer
	for _, nd := range nodes {
		for _, rec := range nd {
			v := n // empty
			switch {
			case rec >= 0:
				v = rec
			case rec <= -2:
				v = n + 16 + offsets[-rec-2]
			}
			out.Write([]byte{byte(v >> 16), byte(v >> 8), byte(v)})
		}
	}
	out.Write(make([]byte, 16))
	out.Write(data.Bytes())
	out.WriteString("\xAB\xCD\xEFMaxMind.com")
	writeMap(&out, 8)
	writeString(&out, "node_count")
	writeUint(&out, 6, uint64(n), 4)
	writeString(&out, "record_size")
	writeUint(&out, 5, 24, 2)
	writeString(&out, "ip_version")
	writeUint(&out, 5, 4, 2)
	writeString(&out, "database_type")
	writeString(&out, "kubecdn-test-City")
	writeString(&out, "languages")
	out.Write([]byte{0<<5 | 0, 11 - 7}) // empty array
	writeString(&out, "binary_format_major_version")
	writeUint(&out, 5, 2, 2)
	writeString(&out, "binary_format_minor_version")
	writeUint(&out, 5, 0, 2)
	writeString(&out, "build_epoch")
	out.Write([]byte{0<<5 | 8, 9 - 7})
	binary.Write(&out, binary.BigEndian, uint64(1700000000))
	path := filepath.Join(t.TempDir(), "test.mmdb")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeMap(b *bytes.Buffer, pairs int) { b.WriteByte(7<<5 | byte(pairs)) }

func writeString(b *bytes.Buffer, s string) {
	if len(s) >= 29 {
		panic("test mmdb strings must be short")
	}
	b.WriteByte(2<<5 | byte(len(s)))
	b.WriteString(s)
}

func writeDouble(b *bytes.Buffer, f float64) {
	b.WriteByte(3<<5 | 8)
	binary.Write(b, binary.BigEndian, math.Float64bits(f))
}

func writeUint(b *bytes.Buffer, typ byte, v uint64, size int) {
	b.WriteByte(typ<<5 | byte(size))
	for i := size - 1; i >= 0; i-- {
		b.WriteByte(byte(v >> (8 * uint(i))))
	}
}

func TestMMDBLocator(t *testing.T) {
	path := writeMMDB(t, map[string]config.Location{
		"198.51.100.0/24": {Lat: 40.7, Lon: -74.0},
		"203.0.113.0/25":  {Lat: 48.9, Lon: 2.4},
	})
	m, err := openMMDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tt := range []struct {
		ip  string
		ok  bool
		lat float64
	}{
		{"198.51.100.7", true, 40.7},
		{"::ffff:198.51.100.7", true, 40.7},
		{"203.0.113.100", true, 48.9},
		{"203.0.113.200", false, 0},
		{"192.0.2.1", false, 0},
	} {
		loc, ok := m.Locate(netip.MustParseAddr(tt.ip))
		if ok != tt.ok || loc.Lat != tt.lat {
			t.Errorf("Locate(%s) = %v, %v; want lat %v, %v", tt.ip, loc, ok, tt.lat, tt.ok)
		}
	}
}

func TestCIDRTableMostSpecific(t *testing.T) {
	tab, err := newCIDRTable([]config.GeoNetwork{
		{CIDR: "10.0.0.0/8", Location: &config.Location{Lat: 1}},
		{CIDR: "10.1.0.0/16", Location: &config.Location{Lat: 2}},
		{CIDR: "2001:db8::/32", Location: &config.Location{Lat: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ip  string
		ok  bool
		lat float64
	}{{"10.1.2.3", true, 2}, {"10.2.2.3", true, 1}, {"2001:db8:1::1", true, 3}, {"11.0.0.1", false, 0}, {"::ffff:10.1.0.1", true, 2}} {
		loc, ok := tab.Locate(netip.MustParseAddr(tt.ip))
		if ok != tt.ok || loc.Lat != tt.lat {
			t.Errorf("Locate(%s) = %v, %v", tt.ip, loc, ok)
		}
	}
}
