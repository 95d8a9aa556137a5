package deploy

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecdn/kubecdn/internal/config"
)

// RESTConfig is the client configuration of a region's cluster, read from
// its kubeconfig file and context exactly as Connect reads it, for the
// operator tools that reach the region's pods through its API server.
func RESTConfig(c config.Cluster) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: expandHome(c.Kubeconfig)}
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context})
	rc, err := cc.ClientConfig()
	if err != nil {
		where := c.Kubeconfig
		if where == "" {
			where = "the default kubeconfig"
		}
		if c.Context != "" {
			return nil, fmt.Errorf("kubeconfig %s, context %q: %w", where, c.Context, err)
		}
		return nil, fmt.Errorf("kubeconfig %s: %w", where, err)
	}
	return rc, nil
}
