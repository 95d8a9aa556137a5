package units

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count as configuration files and flags write it: "512MiB",
// "50GiB" or a plain number. It is a flag.Value and reads and writes itself
// as JSON (and so as YAML through sigs.k8s.io/yaml).
type Size int64

// String prints s with a binary unit when that is exact ("512MiB"), else
// as a plain number, so it always parses back to s.
func (s Size) String() string {
	f := FormatSize(int64(s))
	if back, err := ParseSize(f); err == nil && back == int64(s) {
		return f
	}
	return strconv.FormatInt(int64(s), 10)
}

// Set parses v (flag.Value).
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// UnmarshalJSON accepts a size string or a number of bytes.
func (s *Size) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	str, err := scalar(b)
	if err != nil {
		return errors.New("must be a size such as 512MiB or 50GiB")
	}
	return s.Set(str)
}

// MarshalJSON writes s as its String.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Duration is a length of time as people write it in configuration: a Go
// duration ("30s", "8760h", "1h30m"), whole days ("365d", "1d12h"), or a
// bare number of seconds ("31536000", as HSTS max-age is usually given). It
// is a flag.Value and reads and writes itself as JSON.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String prints d as a Go duration without trailing zero units ("24h",
// "1h30m", "500ms"), which ParseDuration reads back to d.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Set parses v (flag.Value).
func (d *Duration) Set(v string) error {
	x, err := ParseDuration(v)
	if err != nil {
		return err
	}
	*d = Duration(x)
	return nil
}

// UnmarshalJSON accepts a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	str, err := scalar(b)
	if err != nil {
		return errors.New("must be a duration such as 30s, 365d or a number of seconds")
	}
	return d.Set(str)
}

// MarshalJSON writes d as its String.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// ParseDuration parses a Go duration ("8760h", "-1s"), a number of whole
// days optionally followed by a Go duration ("365d", "1d12h"), or a bare
// integer number of seconds ("31536000", "0").
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	bad := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("invalid duration %q%s (want e.g. 30s, 8760h, 365d or a number of seconds)", s, why)
	}
	if t == "" {
		return bad("")
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return bad(": too long")
		}
		return time.Duration(n) * time.Second, nil
	}
	neg := strings.HasPrefix(t, "-")
	body := strings.TrimLeft(t, "+-")
	var days int64
	if i := strings.IndexByte(body, 'd'); i >= 0 {
		n, err := strconv.ParseInt(body[:i], 10, 64)
		if err != nil || i == 0 || n > math.MaxInt64/int64(24*time.Hour) {
			return bad("")
		}
		days, body = n, body[i+1:]
	}
	if body == "" && days == 0 && !strings.HasSuffix(t, "d") {
		return bad("")
	}
	var rest time.Duration
	if body != "" {
		if strings.HasPrefix(body, "+") || strings.HasPrefix(body, "-") {
			return bad("")
		}
		r, err := time.ParseDuration(body)
		if err != nil {
			return bad("")
		}
		rest = r
	}
	d := time.Duration(days) * 24 * time.Hour
	if rest > math.MaxInt64-d {
		return bad(": too long")
	}
	d += rest
	if neg {
		d = -d
	}
	return d, nil
}

// scalar is a JSON string's content, or a JSON number's text.
func scalar(b []byte) (string, error) {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		return str, nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}
