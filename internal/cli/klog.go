package cli

import (
	"flag"
	"io"

	"k8s.io/klog/v2"
)

// QuietKlog turns off klog, the log of client-go (which deploy, status and
// purge use to reach the regions' API servers). Its lines ("Couldn't get
// current server API group list" from a server that is not Kubernetes)
// repeat, on stderr, what the commands report themselves as one line per
// region. klog is process-wide, so main calls this once, before any
// command runs.
func QuietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	// Errors are written to stderr whatever the output unless the
	// threshold is above them; a fatal one still shows, as it ends the
	// process.
	for name, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := fs.Set(name, v); err != nil {
			panic("klog flag " + name + ": " + err.Error()) // a klog release renamed it: caught by the tests
		}
	}
	klog.SetOutput(io.Discard)
}
