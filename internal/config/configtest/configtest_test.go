package configtest_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

func TestMinimalIsValid(t *testing.T) {
	c := configtest.Parse(t, configtest.Minimal())
	if c.Spec.Zone != "cdn.example.com" || len(c.Spec.Regions.AlwaysOn) != 1 {
		t.Errorf("minimal file = %+v", c.Spec)
	}
}

// The tests hand kubecdn the file configtest writes: every field of the
// complete example must come back from its YAML as it went in.
func TestYAMLRoundTrip(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "kubecdn.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := config.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Decode(configtest.YAML(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the file:\n got %+v\nwant %+v", got.Spec, want.Spec)
	}
}
