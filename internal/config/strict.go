package config

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"

	"sigs.k8s.io/yaml"
)

// DecodeStrict decodes a YAML (or JSON) document over into, which must be a
// pointer to a struct with json tags: fields the document names replace
// into's, the others keep their values (defaults filled in beforehand
// survive). Unknown fields, duplicate keys and values of the wrong type are
// all reported as Errors, each with its field path, and nothing is
// changed. Other parts' files (the edge's edge.yaml) use it so their errors
// read like the CDN file's.
func DecodeStrict(data []byte, into any) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Errors{{Msg: "invalid yaml: " + strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")}}
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return Errors{{Msg: "invalid yaml: " + err.Error()}}
	}
	if generic == nil {
		return nil // an empty file changes nothing
	}
	var errs Errors
	checkShape("", generic, reflect.TypeOf(into).Elem(), &errs)
	if len(errs) > 0 {
		return errs
	}
	dec = json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return Errors{{Msg: err.Error()}} // checkShape should have caught it
	}
	return nil
}
