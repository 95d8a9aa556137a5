package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// FieldError is one problem with the file, at a field path such as
// spec.regions.alwaysOn[1].name.
type FieldError struct {
	Field string
	Msg   string
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Errors is every problem found in a file, in field order.
type Errors []FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Load reads, decodes, defaults and validates the file at path. Relative
// paths in the file are resolved against the file's directory. On a bad file
// the error is an Errors listing every problem.
func Load(path string) (*CDN, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading cdn file: %w", err)
	}
	return parse(data, filepath.Dir(path))
}

// Parse decodes, defaults and validates a file held in memory; relative
// paths resolve against the working directory.
func Parse(data []byte) (*CDN, error) { return parse(data, ".") }

func parse(data []byte, baseDir string) (*CDN, error) {
	c, shapeErrs, err := decode(data)
	if err != nil {
		return nil, err
	}
	c.BaseDir = baseDir
	c.SetDefaults()
	var es Errors
	if verr := c.Validate(); verr != nil {
		es = verr.(Errors)
	}
	if len(shapeErrs) == 0 {
		if len(es) == 0 {
			return c, nil
		}
		return nil, es
	}
	// Fields that did not decode were left out; drop what validation says
	// about them (such as "required") and report the decoding error only.
	all := append(Errors{}, shapeErrs...)
	for _, e := range es {
		covered := false
		for _, s := range shapeErrs {
			if e.Field == s.Field || strings.HasPrefix(e.Field, s.Field+".") || strings.HasPrefix(e.Field, s.Field+"[") {
				covered = true
				break
			}
		}
		if !covered {
			all = append(all, e)
		}
	}
	return nil, all
}

// Decode decodes the YAML (or JSON) file strictly without defaults or
// validation: unknown fields, duplicate keys and values of the wrong type are
// reported, all of them, as Errors.
func Decode(data []byte) (*CDN, error) {
	c, shapeErrs, err := decode(data)
	if err != nil {
		return nil, err
	}
	if len(shapeErrs) > 0 {
		return nil, shapeErrs
	}
	return c, nil
}

// decode returns the file with every field that does not fit its type left
// out, and the errors about those fields. err is set when nothing decodes.
func decode(data []byte) (*CDN, Errors, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, nil, Errors{{Msg: "invalid yaml: " + strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")}}
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return nil, nil, Errors{{Msg: "invalid yaml: " + err.Error()}}
	}
	if generic == nil {
		return nil, nil, Errors{{Msg: "empty file"}}
	}
	var errs Errors
	if !checkShape("", generic, reflect.TypeFor[CDN](), &errs) {
		return nil, nil, errs
	}
	pruned, err := json.Marshal(generic)
	if err != nil {
		return nil, nil, Errors{{Msg: err.Error()}}
	}
	var c CDN
	dec = json.NewDecoder(bytes.NewReader(pruned))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// checkShape should have caught it; keep the message anyway.
		return nil, nil, Errors{{Msg: err.Error()}}
	}
	return &c, errs, nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// checkShape walks a generic JSON value against the Go type it will decode
// into and records every unknown field and type mismatch with its path.
//
// It returns false when v does not fit t; the caller then leaves v out.
func checkShape(path string, v any, t reflect.Type, errs *Errors) (ok bool) {
	ok = true
	add := func(msg string) {
		*errs = append(*errs, FieldError{Field: path, Msg: msg})
		ok = false
	}
	if v == nil {
		return true // null: zero value
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		raw, _ := json.Marshal(v)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			add(err.Error())
		}
		return ok
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkShape(path, v, t.Elem(), errs)
	case reflect.Struct:
		m, isMap := v.(map[string]any)
		if !isMap {
			add("must be an object")
			return ok
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
		}
		for _, k := range sortedKeys(m) {
			ft, known := fields[k]
			if !known {
				*errs = append(*errs, FieldError{Field: join(path, k), Msg: "unknown field"})
				delete(m, k)
				continue
			}
			if !checkShape(join(path, k), m[k], ft, errs) {
				delete(m, k)
			}
		}
	case reflect.Slice:
		s, isList := v.([]any)
		if !isList {
			add("must be a list")
			return ok
		}
		for i, e := range s {
			if !checkShape(fmt.Sprintf("%s[%d]", path, i), e, t.Elem(), errs) {
				s[i] = nil
			}
		}
	case reflect.Map:
		m, isMap := v.(map[string]any)
		if !isMap {
			add("must be a map")
			return ok
		}
		for _, k := range sortedKeys(m) {
			if !checkShape(join(path, k), m[k], t.Elem(), errs) {
				delete(m, k)
			}
		}
	case reflect.String:
		switch v.(type) {
		case string:
		case bool:
			add("must be a string (quote it: yes, no, y, n, on, off are booleans in YAML)")
		default:
			add("must be a string")
		}
	case reflect.Bool:
		if _, isBool := v.(bool); !isBool {
			add("must be true or false")
		}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32, reflect.Uint16:
		n, isNum := v.(json.Number)
		if !isNum {
			add("must be an integer")
			return ok
		}
		if _, err := n.Int64(); err != nil {
			add("must be an integer")
		}
	case reflect.Float64, reflect.Float32:
		if _, isNum := v.(json.Number); !isNum {
			add("must be a number")
		}
	}
	return ok
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
