package adminapi_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
)

// TestLocationMatchesConfig keeps the wire copy of config.Location (the
// leaf may not import config) from drifting: same fields, same JSON.
func TestLocationMatchesConfig(t *testing.T) {
	wire, file := reflect.TypeFor[adminapi.Location](), reflect.TypeFor[config.Location]()
	if wire.NumField() != file.NumField() {
		t.Fatalf("adminapi.Location has %d fields, config.Location %d", wire.NumField(), file.NumField())
	}
	for i := range wire.NumField() {
		w, f := wire.Field(i), file.Field(i)
		if w.Name != f.Name || w.Type != f.Type || w.Tag != f.Tag {
			t.Errorf("field %d: adminapi %s %s %q, config %s %s %q", i, w.Name, w.Type, w.Tag, f.Name, f.Type, f.Tag)
		}
	}
	a, err := json.Marshal(adminapi.Location{Lat: 48.9, Lon: 2.4})
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(config.Location{Lat: 48.9, Lon: 2.4})
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(c) {
		t.Errorf("json: adminapi %s, config %s", a, c)
	}
}
