// Package units parses and prints the sizes and durations used in kubecdn's
// flags and files: "512MiB", "50GiB", "4MB", "1024"; "30s", "365d",
// "31536000". Size and Duration are the types configuration schemas use, so
// every file and flag reads them the same way.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var suffixes = []struct {
	name string
	mult int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseSize parses a byte size: a non-negative number with an optional
// binary (KiB, MiB, GiB, TiB, or Ki/Mi/Gi/Ti as Kubernetes writes them) or
// decimal (KB, MB, GB, TB, K, M, G, T) suffix. Fractions are allowed
// ("1.5GiB").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := int64(1)
	for _, suf := range suffixes {
		if strings.HasSuffix(t, suf.name) {
			mult = suf.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, suf.name))
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.ContainsAny(t, "eExXpP") || math.IsNaN(f) {
		return 0, fmt.Errorf("invalid size %q (want a number with an optional unit such as 512MiB or 4GB)", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("invalid size %q: negative", s)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}

// FormatSize prints n bytes with the largest binary unit that keeps it exact
// to one decimal, e.g. 536870912 -> "512MiB".
func FormatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f%s", f, units[i])
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}
