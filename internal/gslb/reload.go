package gslb

import "time"

// FileCheckInterval is how often `kubecdn dns` reads the CDN file to see
// whether its content changed.
const FileCheckInterval = 2 * time.Second

// ReloadHelp tells a user of `kubecdn dns` how the running file is
// replaced; the command's -h prints it, the README says the same.
const ReloadHelp = `Reloading: the file is read again on SIGHUP and when its content changes
(checked every 2s). A new version is swapped in without dropping queries;
the health of edges it keeps is kept. A version that does not load or
validate is refused: the running one stays, the errors are logged, and
kubecdn_dns_reloads_total{result="error"} counts it.`

// ReloadRefused counts a new version of the file that the caller could not
// load or validate, so that a refusal before Reload shows in
// kubecdn_dns_reloads_total{result="error"} as one Reload refuses does.
func (s *Server) ReloadRefused() { s.m.reloads.WithLabelValues("error").Inc() }
