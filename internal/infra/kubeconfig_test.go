package infra

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const testPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func TestEntryFrom(t *testing.T) {
	auth := execAuth("", "aws", "eks", "get-token")
	for _, tt := range []struct {
		name string
		out  map[string]string
		err  string
	}{
		{"base64 CA", map[string]string{"endpoint": "https://a.example", "ca_certificate": base64.StdEncoding.EncodeToString([]byte(testPEM))}, ""},
		{"PEM CA", map[string]string{"endpoint": "https://a.example", "ca_certificate": testPEM}, ""},
		{"http endpoint", map[string]string{"endpoint": "http://a.example", "ca_certificate": testPEM}, `output endpoint "http://a.example" is not an https:// URL`},
		{"no endpoint", map[string]string{"ca_certificate": testPEM}, "is not an https:// URL"},
		{"garbage CA", map[string]string{"endpoint": "https://a.example", "ca_certificate": "bm90IGEgY2VydA=="}, "neither PEM nor base64 of PEM"},
		{"kubeconfig file", map[string]string{"kubeconfig_path": "/x/kubeconfig"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := entryFrom("r1", tt.out, auth)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.From == "" && string(e.CA) != testPEM {
				t.Errorf("CA = %q", e.CA)
			}
		})
	}
}

// TestMergeKubeconfig: the user's own contexts survive, a region's context
// is replaced in place, a removed region's three entries go.
func TestMergeKubeconfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	own := clientcmdapi.NewConfig()
	own.Clusters["mine"] = &clientcmdapi.Cluster{Server: "https://mine.example"}
	own.AuthInfos["mine"] = &clientcmdapi.AuthInfo{Token: "t"}
	own.Contexts["mine"] = &clientcmdapi.Context{Cluster: "mine", AuthInfo: "mine"}
	own.CurrentContext = "mine"
	if err := clientcmd.WriteToFile(*own, path); err != nil {
		t.Fatal(err)
	}
	// a region whose module hands over a kubeconfig file (provider local)
	local := filepath.Join(dir, "local.kubeconfig")
	if err := clientcmd.WriteToFile(*own, local); err != nil {
		t.Fatal(err)
	}
	auth := execAuth("", "gke-gcloud-auth-plugin")
	add := []Entry{
		{Region: "a", Server: "https://a.example", CA: []byte(testPEM), Auth: auth},
		{Region: "b", Server: "https://old.example", CA: []byte(testPEM), Auth: auth},
		{Region: "l", From: local},
	}
	if err := MergeKubeconfig(path, add, nil); err != nil {
		t.Fatal(err)
	}
	add[1].Server = "https://b.example"
	if err := MergeKubeconfig(path, add[1:2], []string{"a"}); err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if kc.CurrentContext != "mine" || kc.Contexts["mine"] == nil {
		t.Errorf("the user's own context was lost: current %q", kc.CurrentContext)
	}
	if kc.Contexts["kubecdn-a"] != nil || kc.Clusters["kubecdn-a"] != nil || kc.AuthInfos["kubecdn-a"] != nil {
		t.Error("removed region a is still there")
	}
	if c := kc.Clusters["kubecdn-b"]; c == nil || c.Server != "https://b.example" || string(c.CertificateAuthorityData) != testPEM {
		t.Errorf("cluster b = %+v", c)
	}
	if u := kc.AuthInfos["kubecdn-b"]; u == nil || u.Exec == nil || u.Exec.Command != "gke-gcloud-auth-plugin" {
		t.Errorf("user b = %+v", u)
	}
	if c, u := kc.Clusters["kubecdn-l"], kc.AuthInfos["kubecdn-l"]; c == nil || c.Server != "https://mine.example" || u == nil || u.Token != "t" {
		t.Errorf("region l was not taken from its file: %+v %+v", c, u)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	// a bad file is a clear error, never overwritten
	os.WriteFile(path, []byte("clusters: ["), 0o600)
	if err := MergeKubeconfig(path, add[:1], nil); err == nil || !strings.Contains(err.Error(), "reading kubeconfig") {
		t.Errorf("merge into a broken file: %v", err)
	}
}

func TestTailBufferBound(t *testing.T) {
	tb := &tailBuffer{max: 10}
	for i := range 100 {
		tb.Write([]byte{byte('a' + i%26)})
	}
	if got := tb.String(); len(got) != 10 || !strings.HasSuffix(got, "v") {
		t.Errorf("tail = %q", got)
	}
}
