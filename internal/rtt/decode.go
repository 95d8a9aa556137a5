package rtt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DecodeReport reads one Report from r and validates it as it goes, one
// sample at a time: the body is never held whole, nor its samples twice,
// and a report over MaxReportSamples networks is refused at the first
// network too many. It accepts exactly what json.Unmarshal (with unknown
// fields disallowed) followed by Validate accepts, and returns the same
// samples. r should be bounded (http.MaxBytesReader, MaxReportBytes).
func DecodeReport(r io.Reader) (region string, samples []ParsedSample, err error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return "", nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil, err
		}
		// keys match as encoding/json matches them: case-insensitively
		switch key, _ := tok.(string); {
		case strings.EqualFold(key, "region"):
			if err := dec.Decode(&region); err != nil {
				return "", nil, fmt.Errorf("region: %w", err)
			}
		case strings.EqualFold(key, "samples"):
			if samples, err = decodeSamples(dec, samples[:0]); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, fmt.Errorf("json: unknown field %q", key)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return "", nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", nil, errors.New("data after the report")
	}
	if region == "" {
		return "", nil, errors.New("region is required")
	}
	return region, samples, nil
}

// decodeSamples reads the samples array (or null), validating each.
func decodeSamples(dec *json.Decoder, out []ParsedSample) ([]ParsedSample, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return out, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("samples: want an array, got %v", tok)
	}
	for i := 0; dec.More(); i++ {
		if i == MaxReportSamples {
			return nil, fmt.Errorf("samples: more than %d networks, at most %d per report", MaxReportSamples, MaxReportSamples)
		}
		var s Sample
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("samples[%d]: %w", i, err)
		}
		p, err := s.parse(i)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("json: want %q, got %v", want, tok)
	}
	return nil
}
