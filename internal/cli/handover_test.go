package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderHandoverFlags: a flag of one format given with another, or a
// format without what it needs, is refused before the file is read, with a
// message that names the flag; the good combinations write their files.
func TestRenderHandoverFlags(t *testing.T) {
	const file = "../config/testdata/kubecdn.yaml"
	dir := t.TempDir()
	argo := []string{"-f", file, "--format", "argocd", "--repo-url", "https://github.com/acme/cdn.git", "--revision", "main"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown format", []string{"-f", file, "-o", dir, "--format", "flux"}, 2, `"flux": want argocd or karmada`},
		{"repo url without argocd", []string{"-f", file, "-o", dir, "--repo-url", "https://x/y.git"}, 2, "--repo-url is only for --format argocd"},
		{"revision with karmada", []string{"-f", file, "-o", dir, "--format", "karmada", "--revision", "main"}, 2, "--revision is only for --format argocd"},
		{"open with argocd", append(append([]string{}, argo...), "-o", "deploy", "--open", "eu-west-1"), 2, "--open is only for --format karmada"},
		{"open without format", []string{"-f", file, "-o", dir, "--open", "eu-west-1"}, 2, "--open is only for --format karmada"},
		{"argocd without repo", []string{"-f", file, "-o", "deploy", "--format", "argocd", "--revision", "main"}, 2, "--format argocd needs --repo-url"},
		{"argocd without revision", []string{"-f", file, "-o", "deploy", "--format", "argocd", "--repo-url", "https://x/y.git"}, 2, "--format argocd needs --revision"},
		{"argocd to stdout", append(append([]string{}, argo...), "-o", "-"), 2, "--format argocd needs -o DIR"},
		{"argocd absolute dir", append(append([]string{}, argo...), "-o", dir), 2, "needs --repo-path"},
		{"argocd bad repo path", append(append([]string{}, argo...), "-o", dir, "--repo-path", "../x"), 2, `path "../x": want a path inside the repository`},
		{"karmada unknown open", []string{"-f", file, "-o", dir, "--format", "karmada", "--open", "mars-1"}, 1, `open region "mars-1" is not a region of the file`},
		{"argocd", append(append([]string{}, argo...), "-o", dir, "--repo-path", "deploy/cdn"), 0, "ApplicationSet argocd/kubecdn-demo"},
		{"karmada", []string{"-f", file, "-o", dir, "--format", "karmada", "--open", "eu-west-1"}, 0, "Karmada objects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runRender(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d (want %d), stderr: %s (want %q)", code, tc.code, stderr.String(), tc.want)
			}
		})
	}
	b, err := os.ReadFile(filepath.Join(dir, ApplicationSetFile))
	if err != nil || !strings.Contains(string(b), `path: deploy/cdn/{{index .metadata.labels "kubecdn.io/region"}}`) {
		t.Errorf("%s: %v\n%s", ApplicationSetFile, err, b)
	}
	for _, f := range []string{"us-east-1/30-statefulset-kubecdn-edge.yaml", "karmada/30-statefulset-kubecdn-edge.yaml", "karmada/90-propagationpolicy-kubecdn-demo.yaml", "karmada/90-overridepolicy-kubecdn-demo-us-west-2.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}
