package handover

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// ProfileNamespace is the namespace of the ClusterProfiles Registrations
// writes: the cluster inventory of kubecdn's regions, in the hub cluster
// the multi-cluster engine runs in.
const ProfileNamespace = "kubecdn-clusters"

// ExecExtension names the kubeconfig cluster extension of a ClusterProfile's
// access provider that carries the whole exec credential plugin (command,
// arguments, environment), so a consumer can build the region's kubeconfig
// from the profile alone.
const ExecExtension = "kubecdn.io/exec"

// Registrations returns what the multi-cluster engines read to reach one
// region's cluster:
//   - an Argo CD cluster Secret (namespace argocd, label
//     argocd.argoproj.io/secret-type=cluster) named kubecdn-REGION, whose
//     config authenticates with the exec credential plugin (execProviderConfig)
//     and trusts caPEM (tlsClientConfig.caData); its labels are the ones
//     ArgoCD's ApplicationSet selects by;
//   - a SIG-Multicluster ClusterProfile (multicluster.x-k8s.io/v1alpha1)
//     named REGION in ProfileNamespace, managed by "kubecdn", whose status
//     names an access provider after the plugin's command with the server,
//     the CA and the plugin (extension ExecExtension). Status is a
//     subresource: apply the object, then its status.
//
// server is the cluster's https URL, caPEM its CA certificates (PEM), exec
// the credential plugin of the region's kubeconfig context (aws eks
// get-token, gke-gcloud-auth-plugin, kubelogin).
func Registrations(region string, server string, caPEM []byte, exec *clientcmdapi.ExecConfig) ([]*unstructured.Unstructured, error) {
	if errs := validation.IsDNS1123Label(region); len(errs) > 0 {
		return nil, fmt.Errorf("region %q: %s", region, errs[0])
	}
	if u, err := url.Parse(server); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("region %s: server %q: want the API server's https URL", region, server)
	}
	if err := checkCA(caPEM); err != nil {
		return nil, fmt.Errorf("region %s: CA: %w", region, err)
	}
	if exec == nil || exec.Command == "" {
		return nil, fmt.Errorf("region %s: exec credential plugin: a command is required", region)
	}
	if exec.APIVersion == "" {
		return nil, fmt.Errorf("region %s: exec credential plugin %s: apiVersion is required (client.authentication.k8s.io/v1 or v1beta1)", region, exec.Command)
	}
	env := map[string]any{}
	for _, e := range exec.Env {
		env[e.Name] = e.Value
	}
	// Argo CD's ExecProviderConfig: env is a map, not a list.
	argoExec := map[string]any{"command": exec.Command, "args": strs(exec.Args), "env": env, "apiVersion": exec.APIVersion}
	if exec.InstallHint != "" {
		argoExec["installHint"] = exec.InstallHint
	}
	config, err := json.Marshal(map[string]any{
		"execProviderConfig": argoExec,
		"tlsClientConfig":    map[string]any{"insecure": false, "caData": base64.StdEncoding.EncodeToString(caPEM)},
	})
	if err != nil {
		return nil, err
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata": map[string]any{
			"name":      "kubecdn-" + region,
			"namespace": ArgoCDNamespace,
			"labels": map[string]any{
				"argocd.argoproj.io/secret-type": "cluster",
				labelRegion:                      region,
				labelManagedBy:                   managedBy,
			},
		},
		"type": "Opaque",
		// data, not stringData: a server-side apply of stringData
		// conflicts with itself on the next apply.
		"data": map[string]any{"name": b64(region), "server": b64(server), "config": b64(string(config))},
	}}

	var kubeEnv []any
	for _, e := range exec.Env {
		kubeEnv = append(kubeEnv, map[string]any{"name": e.Name, "value": e.Value})
	}
	plugin := map[string]any{"command": exec.Command, "args": strs(exec.Args), "apiVersion": exec.APIVersion}
	if len(kubeEnv) > 0 {
		plugin["env"] = kubeEnv
	}
	profile := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "multicluster.x-k8s.io/v1alpha1",
		"kind":       "ClusterProfile",
		"metadata": map[string]any{
			"name":      region,
			"namespace": ProfileNamespace,
			"labels": map[string]any{
				"x-k8s.io/cluster-manager": managedBy,
				labelRegion:                region,
				labelManagedBy:             managedBy,
			},
		},
		"spec": map[string]any{
			"displayName":    region,
			"clusterManager": map[string]any{"name": managedBy},
		},
		"status": map[string]any{
			"accessProviders": []any{map[string]any{
				"name": path.Base(exec.Command),
				"cluster": map[string]any{
					"server":                     server,
					"certificate-authority-data": base64.StdEncoding.EncodeToString(caPEM),
					"extensions":                 []any{map[string]any{"name": ExecExtension, "extension": plugin}},
				},
			}},
		},
	}}
	return []*unstructured.Unstructured{secret, profile}, nil
}

// checkCA accepts one or more PEM certificates and nothing else.
func checkCA(caPEM []byte) error {
	n := 0
	for rest := caPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return fmt.Errorf("not PEM after %d certificates", n)
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n+1, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no PEM certificate")
	}
	return nil
}

// RegistrationsFile is where WriteRegistrations puts one region's
// registrations: dir/registrations/REGION.yaml.
func RegistrationsFile(dir, region string) string {
	return filepath.Join(dir, "registrations", region+".yaml")
}

// WriteRegistrations writes Registrations of one region as a YAML stream
// to RegistrationsFile(dir, region), for the user to apply to the cluster
// Argo CD (or a ClusterProfile consumer) runs in: the Argo CD cluster
// Secret, then the ClusterProfile with its status (kubectl apply
// --server-side, then the status with --subresource=status). The file
// holds no secret: the credentials come from the exec plugin at use.
func WriteRegistrations(dir, region, server string, caPEM []byte, exec *clientcmdapi.ExecConfig) error {
	objs, err := Registrations(region, server, caPEM, exec)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for i, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("region %s: %w", region, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	p := RegistrationsFile(dir, region)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, buf.Bytes(), 0o644)
}
