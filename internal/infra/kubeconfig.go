package infra

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Entry is one created cluster as the managed kubeconfig holds it: either
// Server, CA and Auth from the module's outputs, or the current context of
// the kubeconfig file From (provider local's kubeconfig_path, kops' export)
// taken as is (with Auth, when set, as its user).
type Entry struct {
	Region string
	Server string
	CA     []byte // PEM
	Auth   *clientcmdapi.ExecConfig
	From   string
}

// entryFrom builds a region's Entry from its module outputs.
func entryFrom(region string, out map[string]string, auth *clientcmdapi.ExecConfig) (Entry, error) {
	if p := out["kubeconfig_path"]; p != "" {
		e := Entry{Region: region, From: p, Auth: auth, Server: out["endpoint"]}
		e.CA, _ = decodeCA(out["ca_certificate"]) // for Register only; the file has it
		return e, nil
	}
	e := Entry{Region: region, Server: out["endpoint"], Auth: auth}
	if !strings.HasPrefix(e.Server, "https://") {
		return Entry{}, fmt.Errorf("output endpoint %q is not an https:// URL", e.Server)
	}
	ca, err := decodeCA(out["ca_certificate"])
	if err != nil {
		return Entry{}, err
	}
	e.CA = ca
	return e, nil
}

// decodeCA accepts the CA as the clouds' modules give it (base64 of PEM)
// or as PEM.
func decodeCA(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN CERTIFICATE-----") {
		return []byte(s + "\n"), nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
		return nil, fmt.Errorf("output ca_certificate is neither PEM nor base64 of PEM")
	}
	return b, nil
}

// MergeKubeconfig updates the kubeconfig at path (created 0600 if missing):
// each entry becomes context, cluster and user kubecdn-REGION, replacing
// what was there; each region of remove loses its three. Other contexts
// (the user's own) are kept.
func MergeKubeconfig(path string, add []Entry, remove []string) error {
	kc := clientcmdapi.NewConfig()
	if _, err := os.Stat(path); err == nil {
		if kc, err = clientcmd.LoadFromFile(path); err != nil {
			return fmt.Errorf("reading kubeconfig %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, r := range remove {
		n := config.InfraContext(r)
		delete(kc.Contexts, n)
		delete(kc.Clusters, n)
		delete(kc.AuthInfos, n)
		if kc.CurrentContext == n {
			kc.CurrentContext = ""
		}
	}
	for _, e := range add {
		n := config.InfraContext(e.Region)
		cluster, user := &clientcmdapi.Cluster{Server: e.Server, CertificateAuthorityData: e.CA}, &clientcmdapi.AuthInfo{}
		if e.From != "" {
			src, err := clientcmd.LoadFromFile(e.From)
			if err != nil {
				return fmt.Errorf("region %s: reading its kubeconfig %s: %w", e.Region, e.From, err)
			}
			// certificate and key files named relative to that file
			if err := clientcmd.ResolveLocalPaths(src); err != nil {
				return fmt.Errorf("region %s: kubeconfig %s: %w", e.Region, e.From, err)
			}
			ctx := src.Contexts[src.CurrentContext]
			if ctx == nil && len(src.Contexts) == 1 {
				for _, c := range src.Contexts {
					ctx = c
				}
			}
			if ctx == nil || src.Clusters[ctx.Cluster] == nil || src.AuthInfos[ctx.AuthInfo] == nil {
				return fmt.Errorf("region %s: kubeconfig %s has no usable current context", e.Region, e.From)
			}
			cluster, user = src.Clusters[ctx.Cluster].DeepCopy(), src.AuthInfos[ctx.AuthInfo].DeepCopy()
			cluster.LocationOfOrigin, user.LocationOfOrigin = "", ""
		}
		if e.Auth != nil {
			user = &clientcmdapi.AuthInfo{Exec: e.Auth.DeepCopy()}
		}
		kc.Clusters[n], kc.AuthInfos[n] = cluster, user
		kc.Contexts[n] = &clientcmdapi.Context{Cluster: n, AuthInfo: n}
		if kc.CurrentContext == "" {
			kc.CurrentContext = n
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}
