package rtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// decodeStrict is the reference DecodeReport must agree with: the whole
// body decoded with unknown fields disallowed and nothing after it, then
// Validate.
func decodeStrict(b []byte) (string, []ParsedSample, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return "", nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", nil, errors.New("data after the report")
	}
	s, err := r.Validate()
	return r.Region, s, err
}

func manySamples(n int) string {
	var b strings.Builder
	b.WriteString(`{"region":"a","samples":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"net":"10.%d.%d.0/24","rtt_ms":1,"count":1}`, (i>>8)&255, i&255)
	}
	b.WriteString(`]}`)
	return b.String()
}

var decodeCases = []string{
	`{"region":"us-east-1","samples":[{"net":"198.51.100.0/24","rtt_ms":23.5,"count":10},{"net":"2001:db8:1::/48","rtt_ms":5,"count":1}]}`,
	`{"samples":[],"region":"a"}`,
	`{"region":"a","samples":null}`,
	`{"REGION":"a","Samples":[{"NET":"198.51.100.0/24","rtt_ms":1,"count":1}]}`,
	`{"region":"a","region":"b","samples":[]}`,
	`{"region":"","samples":[]}`,
	`{"region":null,"samples":[]}`,
	`{"region":"a","samples":[{"net":"198.51.100.0/16","rtt_ms":1,"count":1}]}`,
	`{"region":"a","samples":[{"net":"198.51.100.0/24","rtt_ms":1,"count":1000000000}]}`,
	`{"region":"a","samples":[{"net":"198.51.100.0/24","rtt_ms":1,"count":1.5}]}`,
	`{"region":"a","samples":[{"net":"198.51.100.0/24","rtt_ms":1,"count":1,"x":1}]}`,
	`{"region":"a","samples":[],"pad":"x"}`,
	`{"region":"a","samples":{}}`,
	`{"region":"a","samples":[]} {}`,
	`{"region":"a","samples":[]`,
	`null`,
	`[]`,
	``,
	manySamples(MaxReportSamples),
	manySamples(MaxReportSamples + 1),
}

func TestDecodeReportAgreesWithStrictDecode(t *testing.T) {
	for _, body := range decodeCases {
		name := body
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			checkAgree(t, []byte(body))
		})
	}
}

func checkAgree(t *testing.T, b []byte) {
	t.Helper()
	region, samples, err := DecodeReport(bytes.NewReader(b))
	wantRegion, wantSamples, wantErr := decodeStrict(b)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("DecodeReport err %v, strict decode err %v", err, wantErr)
	}
	if err == nil && (region != wantRegion || !slices.Equal(samples, wantSamples)) {
		t.Errorf("DecodeReport = %q %d samples, strict = %q %d samples", region, len(samples), wantRegion, len(wantSamples))
	}
}

// FuzzDecodeReport: the streaming decoder accepts exactly what the strict
// whole-body decode and Validate accept, with the same samples.
func FuzzDecodeReport(f *testing.F) {
	for _, c := range decodeCases[:18] {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgree(t, b)
	})
}
