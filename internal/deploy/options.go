package deploy

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/render"
)

// Options tune a deploy. Zero values take the documented defaults.
type Options struct {
	// Render chooses the image, namespace, replica counts, TLS secrets...
	// (Regions is ignored: deploy decides which regions are active.)
	Render render.Options
	// DryRun sends every change as a server-side dry run and reports what
	// would change; nothing in any cluster or DNS changes.
	DryRun bool
	// Parallel is how many regions are worked on at once; if zero, 4.
	Parallel int
	// Timeout bounds one region's rollouts and load-balancer addresses; if
	// zero, 10 minutes.
	Timeout time.Duration
	// RequestTimeout bounds every request to a region's API server, so a
	// server that accepts connections and never answers fails its region
	// alone; if zero, DefaultRequestTimeout. (Options.Connect, when set,
	// decides its own.)
	RequestTimeout time.Duration
	// Poll is the interval of rollout and address checks; if zero, 1s.
	Poll time.Duration
	// Drain is how long a removed region stays up after leaving DNS, so
	// that cached answers expire; if zero, the file's routing TTL. Negative
	// means no wait.
	Drain time.Duration
	// Open and Close name autoscale regions to open (deploy) and close
	// (leave DNS, then tear down). Opened regions stay open in later runs.
	Open, Close []string
	// Publisher is the external DNS provider for spec.publish.provider
	// route53 or rfc2136; nil with provider kubecdn.
	Publisher publish.Publisher
	// Out gets one progress line per event, prefixed with the region.
	Out io.Writer
	Log *slog.Logger
	// Connect reaches a region's cluster; if nil, Connect.
	Connect func(config.Cluster) (*Cluster, error)
	// Resolver resolves load-balancer host names for kubecdn's dns; if
	// nil, net.DefaultResolver.
	Resolver Resolver
	Now      func() time.Time
	// Rand makes the admin tokens and the hop key; if nil, crypto/rand.
	Rand io.Reader
	// Sleep waits d or until ctx ends; if nil, a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o Options) withDefaults(cfg *config.CDN) Options {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Drain == 0 {
		o.Drain = cfg.Spec.Routing.TTL.D()
	}
	if o.Drain < 0 {
		o.Drain = 0
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Connect == nil {
		timeout := o.RequestTimeout
		o.Connect = func(c config.Cluster) (*Cluster, error) { return ConnectWithin(c, timeout) }
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Sleep == nil {
		o.Sleep = publish.Sleep
	}
	o.Render.Regions = nil
	if o.Render.Namespace == "" {
		o.Render.Namespace = render.DefaultNamespace
	}
	return o
}
