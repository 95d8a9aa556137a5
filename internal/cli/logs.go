package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/kubecdn/kubecdn/internal/accesslog"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/render"
)

// logsOptions are what `kubecdn logs` needs besides its flags.
type logsOptions struct {
	file      string
	cdn       string // the file's metadata.name, in the edges' labels
	region    string
	follow    bool
	since     time.Duration
	namespace string
	timeout   time.Duration // each API call (a list, opening a log, a stalled read)
	window    time.Duration // with follow: how long a line may wait for earlier ones
	relist    time.Duration // with follow: how often the pods are listed again
	// connect reaches a region's API; if nil, through its kubeconfig as
	// deploy does.
	connect func(config.Cluster) (kubernetes.Interface, error)
	now     func() time.Time
}

// runLogs merges the access logs of every region's edge pods in time order.
func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kubecdn logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := logsOptions{}
	fs.StringVar(&o.file, "f", "kubecdn.yaml", "the CDN file")
	fs.StringVar(&o.region, "region", "", "only this region (default: every region of the file)")
	fs.BoolVar(&o.follow, "follow", false, "keep streaming new lines")
	fs.DurationVar(&o.since, "since", 10*time.Minute, "lines of this long ago and later (0: every line the pods still hold)")
	fs.StringVar(&o.namespace, "namespace", render.DefaultNamespace, "namespace of the CDN's objects")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "limit of each call to a region's API server, and of a log stream that stalls (without --follow)")
	fs.DurationVar(&o.window, "window", time.Second, "with --follow, how long a line waits for earlier lines of other edges")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn logs -f FILE [--region R] [--follow] [--since 10m]\n\nPrints the edges' access logs (one JSON line per request) from every region's\npods, merged in time order, read through each region's Kubernetes API with the\nkubeconfig and context of the file. A region that cannot be read is reported on\nstderr while the others go on; the exit code is 1 then.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if o.timeout <= 0 || o.window <= 0 || o.since < 0 {
		fmt.Fprintln(stderr, "kubecdn logs: --timeout and --window must be positive, --since not negative")
		return 2
	}
	cfg, err := config.Load(o.file)
	if err != nil {
		printConfigErrors(stderr, o.file, err)
		return 1
	}
	if err := streamLogs(ctx, cfg, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "kubecdn logs: %v\n", err)
		return 1
	}
	return 0
}

// connectClientset is logsOptions.connect's default: the region's
// kubeconfig and context, read as deploy reads them.
func connectClientset(c config.Cluster) (kubernetes.Interface, error) {
	rc, err := deploy.RESTConfig(c)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "kubecdn-logs"
	return kubernetes.NewForConfig(rc)
}

// logLine is what a pod's reader tells the merge: a line, or that source
// src opened or ended.
type logLine struct {
	src       int
	t         time.Time
	text      []byte
	open, end bool
}

// streamLogs reads the regions in parallel and writes their lines merged.
// Each region is a source of its own until its pods are known, so no line
// goes out before a region that is still listing could send an earlier one.
func streamLogs(ctx context.Context, cfg *config.CDN, o logsOptions, stdout, stderr io.Writer) error {
	if o.connect == nil {
		o.connect = connectClientset
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.cdn = cfg.Metadata.Name
	if o.relist <= 0 {
		o.relist = 30 * time.Second
	}
	var regions []config.RegionRef
	for _, r := range cfg.AllRegions() {
		if o.region == "" || r.Name == o.region {
			regions = append(regions, r)
		}
	}
	if len(regions) == 0 {
		return fmt.Errorf("region %q: not in %s", o.region, o.file)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan logLine, 1024)
	var errMu sync.Mutex
	var failed []string
	fail := func(region string, err error) {
		errMu.Lock()
		defer errMu.Unlock()
		failed = append(failed, region)
		fmt.Fprintf(stderr, "region %s: %v\n", region, err)
	}
	var nextSrc int
	var srcMu sync.Mutex
	newSrc := func() int {
		srcMu.Lock()
		defer srcMu.Unlock()
		nextSrc++
		return nextSrc
	}
	m := accesslog.NewMerger(0)
	if o.follow {
		m = accesslog.NewMerger(o.window)
	}
	var wg sync.WaitGroup
	for _, r := range regions {
		src := newSrc()
		m.Open(src) // the region itself, until its pods are open
		wg.Add(1)
		go func() {
			defer wg.Done()
			rl := regionLogs{region: r, o: o, lines: lines, newSrc: newSrc, warn: func(err error) {
				errMu.Lock()
				defer errMu.Unlock()
				fmt.Fprintf(stderr, "region %s: %v (retrying)\n", r.Name, err)
			}}
			err := rl.run(ctx, src)
			if err != nil && ctx.Err() == nil {
				fail(r.Name, err)
			}
		}()
	}
	go func() { wg.Wait(); close(lines) }()

	out := bufio.NewWriter(stdout)
	drain := func() error {
		for {
			l, ok := m.Pop(o.now())
			if !ok {
				return out.Flush()
			}
			out.Write(l.Text)
			out.WriteByte('\n')
		}
	}
	tick := time.NewTicker(o.window / 4)
	defer tick.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				if err := drain(); err != nil {
					return err
				}
				if len(failed) > 0 {
					return fmt.Errorf("%d of %d regions could not be read: %v", len(failed), len(regions), failed)
				}
				return nil
			}
			switch {
			case l.open:
				m.Open(l.src)
			case l.end:
				m.End(l.src)
			default:
				m.Push(l.src, l.t, l.text, o.now())
			}
		case <-tick.C:
		case <-ctx.Done():
			drain()
			return nil // interrupted: what was read is written
		}
		if err := drain(); err != nil {
			return fmt.Errorf("writing: %w", err) // stdout closed (a pipe into head)
		}
	}
}

// regionLogs reads one region's edge pods.
type regionLogs struct {
	region config.RegionRef
	o      logsOptions
	lines  chan<- logLine
	newSrc func() int
	warn   func(error) // a passing failure, when following
}

// run lists the region's edge pods and reads each one's log; self is the
// region's own source, ended once the pods' are open. When following, it
// lists the pods again every relist and reads the new ones too (a rollout,
// the autoscaler).
func (rl regionLogs) run(ctx context.Context, self int) error {
	defer rl.send(ctx, logLine{src: self, end: true})
	client, err := rl.o.connect(rl.region.Cluster)
	if err != nil {
		return fmt.Errorf("unreachable: %w", err)
	}
	pods, err := rl.pods(ctx, client)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	seen := map[string]bool{}
	read := func(pods []string) {
		for _, pod := range pods {
			if seen[pod] {
				continue
			}
			seen[pod] = true
			src := rl.newSrc()
			rl.send(ctx, logLine{src: src, open: true})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer rl.send(ctx, logLine{src: src, end: true})
				if err := rl.readPod(ctx, client, pod, src); err != nil && ctx.Err() == nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("pod %s: %w", pod, err))
					mu.Unlock()
				}
			}()
		}
	}
	read(pods)
	// The pods are open: the region no longer holds the others back.
	rl.send(ctx, logLine{src: self, end: true})
	if rl.o.follow {
		t := time.NewTicker(rl.o.relist)
		defer t.Stop()
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-t.C:
				if pods, err := rl.pods(ctx, client); err == nil {
					read(pods)
				} else if ctx.Err() == nil {
					rl.warn(err)
				}
			}
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

func (rl regionLogs) send(ctx context.Context, l logLine) {
	select {
	case rl.lines <- l:
	case <-ctx.Done():
	}
}

// pods lists the region's edge pods by the labels render gives them.
func (rl regionLogs) pods(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	lctx, cancel := context.WithTimeout(ctx, rl.o.timeout)
	defer cancel()
	sel := labels.SelectorFromSet(render.EdgeSelector(rl.o.cdn)).String()
	list, err := client.CoreV1().Pods(rl.o.namespace).List(lctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing edge pods: %w", err)
	}
	var names []string
	for _, p := range list.Items {
		if p.Status.Phase != corev1.PodPending {
			names = append(names, p.Name)
		}
	}
	return names, nil
}

// readPod streams one pod's log and sends its access log lines (the
// container's other lines, its stderr, are left out).
func (rl regionLogs) readPod(ctx context.Context, client kubernetes.Interface, pod string, src int) error {
	opts := &corev1.PodLogOptions{Container: render.EdgeContainer, Follow: rl.o.follow}
	if rl.o.since > 0 {
		secs := int64((rl.o.since + time.Second - 1) / time.Second)
		opts.SinceSeconds = &secs
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The stream must open within the timeout; without --follow, each read
	// too (a stalled API server ends the stream, not the command).
	watchdog := time.AfterFunc(rl.o.timeout, cancel)
	defer watchdog.Stop()
	rc, err := client.CoreV1().Pods(rl.o.namespace).GetLogs(pod, opts).Stream(sctx)
	if err != nil {
		if sctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("opening the log: no answer within %s", rl.o.timeout)
		}
		return fmt.Errorf("opening the log: %w", err)
	}
	defer rc.Close()
	if rl.o.follow {
		watchdog.Stop()
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if !rl.o.follow {
			watchdog.Reset(rl.o.timeout)
		}
		if t, ok := accesslog.Time(line); ok {
			text := line[:len(line)-trailingNewline(line)]
			rl.send(ctx, logLine{src: src, t: t, text: text})
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil && sctx.Err() != nil && ctx.Err() == nil:
			return fmt.Errorf("reading the log: stalled for %s", rl.o.timeout)
		case err != nil:
			return fmt.Errorf("reading the log: %w", err)
		}
	}
}

func trailingNewline(b []byte) int {
	n := 0
	for len(b) > n && (b[len(b)-1-n] == '\n' || b[len(b)-1-n] == '\r') {
		n++
	}
	return n
}
