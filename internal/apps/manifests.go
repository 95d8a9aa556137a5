package apps

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// readManifests loads every object of dir and returns the kustomization
// file it was built from ("" for a plain directory).
func readManifests(dir string) ([]object, string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("manifests: %w", err)
	}
	if !st.IsDir() {
		return nil, "", fmt.Errorf("manifests: %s is not a directory", dir)
	}
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			objs, err := kustomize(dir, p)
			return objs, p, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("manifests: %w", err)
	}
	var objs []object
	var files int
	for _, e := range entries { // ReadDir sorts by name
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || !slices.Contains([]string{".yaml", ".yml", ".json"}, ext) {
			continue
		}
		files++
		p := filepath.Join(dir, e.Name())
		got, err := readFile(p, ext == ".json")
		if err != nil {
			return nil, "", err
		}
		objs = append(objs, got...)
	}
	if files == 0 {
		return nil, "", fmt.Errorf("manifests: no *.yaml, *.yml or *.json files and no kustomization in %s", dir)
	}
	return objs, "", nil
}

// kustomize builds the kustomization in dir, the way `kustomize build`
// does with its defaults (no plugins, files only from inside dir).
func kustomize(dir, file string) ([]object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	var out []object
	for i, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize %s: resource %d: %w", dir, i+1, err)
		}
		var obj map[string]any
		if err := utiljson.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("kustomize %s: resource %d: %w", dir, i+1, err)
		}
		o := object{u: &unstructured.Unstructured{Object: obj}, source: file}
		if err := checkIdentity(o.u); err != nil {
			return nil, fmt.Errorf("%s: resource %d: %w", file, i+1, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// readFile reads a stream of YAML documents (or JSON values) from one
// file. Documents are numbered from 1 in messages.
func readFile(path string, isJSON bool) ([]object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	docs, splitErr := splitDocuments(b, isJSON)
	var out []object
	for i, doc := range docs {
		objs, err := decodeDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		src := fmt.Sprintf("%s (document %d)", path, i+1)
		for _, o := range objs {
			out = append(out, object{u: o, source: src})
		}
	}
	if splitErr != nil { // a document that could not even be split out
		return nil, fmt.Errorf("%s: document %d: %w", path, len(docs)+1, splitErr)
	}
	return out, nil
}

// splitDocuments returns the documents it could read; on error, the
// documents before the bad one and the error.
func splitDocuments(b []byte, isJSON bool) ([][]byte, error) {
	var docs [][]byte
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(b))
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			if err != nil {
				return docs, err
			}
			docs = append(docs, raw)
		}
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		docs = append(docs, doc)
	}
}

// decodeDocument turns one document into objects: none for an empty
// document, the items of a List, else the object itself. Duplicate keys
// in a mapping are errors (kubectl would silently keep the last one).
func decodeDocument(doc []byte) ([]*unstructured.Unstructured, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var v any
	if err := utiljson.Unmarshal(j, &v); err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object but %s", jsonType(v))
	}
	u := &unstructured.Unstructured{Object: m}
	if !isList(u) {
		if err := checkIdentity(u); err != nil {
			return nil, err
		}
		return []*unstructured.Unstructured{u}, nil
	}
	items, ok := m["items"].([]any)
	if !ok && m["items"] != nil {
		return nil, fmt.Errorf("%s: items is %s, not a list", u.GetKind(), jsonType(m["items"]))
	}
	var out []*unstructured.Unstructured
	for k, it := range items {
		im, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("items[%d]: not an object but %s", k, jsonType(it))
		}
		iu := &unstructured.Unstructured{Object: im}
		if isList(iu) {
			return nil, fmt.Errorf("items[%d]: a List inside a List", k)
		}
		if err := checkIdentity(iu); err != nil {
			return nil, fmt.Errorf("items[%d]: %w", k, err)
		}
		out = append(out, iu)
	}
	return out, nil
}

// isList reports a v1 List (what `kubectl get -o yaml` writes).
func isList(u *unstructured.Unstructured) bool {
	return u.GetKind() == "List"
}

// checkIdentity requires what server-side apply needs to name an object.
func checkIdentity(u *unstructured.Unstructured) error {
	var missing []string
	av, _, _ := unstructured.NestedFieldNoCopy(u.Object, "apiVersion")
	if s, ok := av.(string); !ok || s == "" {
		missing = append(missing, "apiVersion")
	}
	k, _, _ := unstructured.NestedFieldNoCopy(u.Object, "kind")
	if s, ok := k.(string); !ok || s == "" {
		missing = append(missing, "kind")
	}
	n, _, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "name")
	if s, ok := n.(string); !ok || s == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		what := u.GetKind()
		if what == "" {
			what = "object"
		}
		return fmt.Errorf("%s without %s", what, strings.Join(missing, ", "))
	}
	if _, err := schema.ParseGroupVersion(u.GetAPIVersion()); err != nil {
		return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	if ns, found, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "namespace"); found {
		if _, ok := ns.(string); !ok {
			return fmt.Errorf("%s %s: metadata.namespace is %s, not a string", u.GetKind(), u.GetName(), jsonType(ns))
		}
	}
	return nil
}

// checkObjects rejects two objects with the same group, kind, namespace
// and name: the second would silently replace the first when applied.
func checkObjects(objs []object) error {
	seen := map[string]string{}
	for _, o := range objs {
		k := key(o.u)
		if prev, dup := seen[k]; dup {
			return fmt.Errorf("%s is defined twice: in %s and in %s", describe(o.u), prev, o.source)
		}
		seen[k] = o.source
	}
	return nil
}

// key identifies an object the way the API server does: the version is
// not part of it.
func key(u *unstructured.Unstructured) string {
	gk := u.GroupVersionKind().GroupKind()
	return gk.String() + "|" + u.GetNamespace() + "|" + u.GetName()
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}
