package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/render"
)

// admins is what Reach found in every region at one moment.
type admins struct {
	edges, dns map[string][]string // by region
	errs       map[string]error    // regions whose API server failed
}

// reachAll asks every region of the file for its admin URLs at once.
func reachAll(ctx context.Context, cfg *config.CDN, r Reach) admins {
	out := admins{edges: map[string][]string{}, dns: map[string][]string{}, errs: map[string]error{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ref := range cfg.AllRegions() {
		wg.Go(func() {
			e, d, err := r.Admins(ctx, ref.Name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.errs[ref.Name] = err
				return
			}
			out.edges[ref.Name], out.dns[ref.Name] = e, d
		})
	}
	wg.Wait()
	return out
}

// routeDNS moves region in or out of the answers of every dns replica of
// every region. A region that cannot be reached fails the step when its
// dns may be answering (mustAnswer); a closed one is skipped.
func (a *Actuator) routeDNS(ctx context.Context, region string, in bool) error {
	found := reachAll(ctx, a.CDN, a.Reach)
	var errs []error
	var urls []string
	for _, ref := range a.CDN.AllRegions() {
		if err := found.errs[ref.Name]; err != nil {
			if a.mustAnswer(ref.Name, region) {
				errs = append(errs, fmt.Errorf("region %s: %w", ref.Name, err))
			}
			continue
		}
		urls = append(urls, found.dns[ref.Name]...)
	}
	if len(urls) == 0 && len(errs) == 0 {
		return errors.New("no dns replica found in any region")
	}
	src := &autoscale.DNSSource{Admins: urls, Client: a.Reach.Client(), Timeout: a.callTimeout()}
	if err := src.Route(ctx, region, in); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// clientsetFor connects to a cluster with every request bounded by
// timeout.
func clientsetFor(restConfig func(config.Cluster) (*rest.Config, error), c config.Cluster, timeout time.Duration) (kubernetes.Interface, error) {
	if restConfig == nil {
		restConfig = deploy.RESTConfig
	}
	rc, err := restConfig(c)
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "kubecdn-autoscaler"
	rc.Timeout = timeout
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("api server %s: %w", rc.Host, err)
	}
	return cs, nil
}

func namespaceOf(o render.Options) string {
	if o.Namespace == "" {
		return render.DefaultNamespace
	}
	return o.Namespace
}

// readDeployState reads the state deploy keeps in a region; false when
// there is none (never deployed).
func readDeployState(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration) (deploy.State, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var st deploy.State
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, deploy.StateName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("reading configmap %s/%s: %w", ns, deploy.StateName, err)
	}
	if err := json.Unmarshal([]byte(cm.Data["state.json"]), &st); err != nil {
		return st, false, fmt.Errorf("configmap %s/%s key state.json: %w", ns, deploy.StateName, err)
	}
	return st, true, nil
}

// ClusterConfig is how the autoscaler reaches a region's cluster: with
// kubeconfig (a file holding a context for every region, named as in the
// CDN file) instead of each region's kubeconfig path when it is set, and
// with the pod's service account for the region inCluster (the one the
// autoscaler runs in) when that is set. Both empty: deploy.RESTConfig.
func ClusterConfig(cfg *config.CDN, kubeconfig, inCluster string) (func(config.Cluster) (*rest.Config, error), error) {
	var own *config.Cluster
	if inCluster != "" {
		ref, ok := regionRef(cfg, inCluster)
		if !ok {
			return nil, fmt.Errorf("--in-cluster %q is not a region of the file", inCluster)
		}
		own = &ref.Cluster
	}
	return func(c config.Cluster) (*rest.Config, error) {
		if own != nil && c == *own {
			rc, err := rest.InClusterConfig()
			if err != nil {
				return nil, fmt.Errorf("in-cluster config of region %s: %w", inCluster, err)
			}
			return rc, nil
		}
		if kubeconfig != "" {
			c.Kubeconfig = kubeconfig
		}
		return deploy.RESTConfig(c)
	}, nil
}

// phaseOf is where hook says region is; without a hook, always-on regions
// are open and autoscale ones closed.
func phaseOf(cfg *config.CDN, hook func(string) autoscale.Phase, region string) autoscale.Phase {
	if hook != nil {
		return hook(region)
	}
	for _, r := range cfg.Spec.Regions.AlwaysOn {
		if r.Name == region {
			return autoscale.Open
		}
	}
	return autoscale.Closed
}
