package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kubecdn/kubecdn/internal/infra/local"
)

// runInfraLocal is `kubecdn infra local start|stop`: the commands the
// OpenTofu module of a `provider: local` region runs (internal/infra/local
// Module) to start and stop the region's control plane on this machine.
// Hidden: users run `kubecdn infra apply|destroy`, which runs tofu, which
// runs these. Flags may come before or after start|stop (tofu's local-exec
// appends its command last).
func runInfraLocal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("infra local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "state directory; the region lives in DIR/NAME (required)")
	name := fs.String("name", "", "region name (required)")
	nodes := fs.Int("nodes", 0, fmt.Sprintf("fake nodes kwok plays (start; default: the region's own, else %d)", local.DefaultNodes))
	lbIP := fs.String("lb-ip", "", "address every LoadBalancer Service gets (start; default: the region's own, else a loopback address from the name)")
	bin := fs.String("bin", "", "directory of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (default "+local.DefaultBin()+")")
	remove := fs.Bool("delete", false, "stop: also delete the region's data, keys and logs (its CA, in DIR/NAME.ca, stays: the module names it)")
	timeout := fs.Duration("timeout", 4*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn infra local start|stop --dir DIR --name REGION [flags]\n\n"+
			"Starts or stops a local region's Kubernetes control plane (etcd, kube-apiserver,\n"+
			"kube-controller-manager, kube-scheduler, kwok with fake nodes), detached from this command.")
		fs.PrintDefaults()
	}
	pos, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || (pos[0] != "start" && pos[0] != "stop") {
		fs.Usage()
		return 2
	}
	if *dir == "" || *name == "" {
		fmt.Fprintln(stderr, "kubecdn infra local: --dir and --name are required")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if pos[0] == "stop" {
		if err := local.Stop(ctx, *dir, *name, *remove); err != nil {
			fmt.Fprintf(stderr, "kubecdn infra local stop: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "region %s: stopped\n", *name)
		return 0
	}
	if *remove {
		fmt.Fprintln(stderr, "kubecdn infra local: --delete is for stop")
		return 2
	}
	st, err := local.Start(ctx, local.Options{Dir: *dir, Name: *name, Bin: *bin, Nodes: *nodes, LoadBalancerIP: *lbIP})
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn infra local start: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "region %s: kube-apiserver %s ready after %v, %d nodes Ready after %v; kubeconfig %s; load balancers get %s\n",
		st.Name, st.Endpoint, st.APIReadyAt.Sub(st.StartedAt).Round(time.Millisecond), st.Nodes,
		st.ReadyAt.Sub(st.StartedAt).Round(time.Millisecond), st.Kubeconfig, st.LoadBalancerIP)
	return 0
}
