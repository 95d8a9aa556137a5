package rtt

import "context"

// Feed is the edge side of the latency feed in one call, for every caller
// that runs an edge (`kubecdn edge`, `kubecdn up`): it starts a Collector
// and a Reporter of it that runs until ctx ends. The Collector is what the
// edge is given as its connection observer (edge.Options.Observer); stop
// ends the Reporter and returns once its last report went out (at most a
// second).
func Feed(ctx context.Context, o ReporterOptions) (col *Collector, stop func()) {
	col = NewCollector(CollectorOptions{})
	rep := NewReporter(col, o)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rep.Run(rctx)
	}()
	return col, func() { cancel(); <-done }
}
