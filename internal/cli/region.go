package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/local"
	"github.com/kubecdn/kubecdn/internal/ops"
)

// runRegion is the fault drill of a running `kubecdn up`: `region down NAME`
// stops a region's edges (the dns sees them fail and drops the region),
// `region up NAME` starts them again, `region list` shows every region.
func runRegion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("region", flag.ContinueOnError)
	fs.SetOutput(stderr)
	control := fs.String("control", "http://"+local.DefaultControl, "control API of the running kubecdn up")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn region down|up NAME [--control URL]\n       kubecdn region list [--control URL]\n\nStops or starts a region's edges in a running `kubecdn up`.")
		fs.PrintDefaults()
	}
	// Flags may come before or after the positional arguments.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	base := strings.TrimRight(*control, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	switch {
	case len(pos) == 1 && pos[0] == "list":
		ts, err := (ops.Control{URL: base, Client: client}).Regions(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "kubecdn region: %v (is kubecdn up running?)\n", err)
			return 1
		}
		for _, t := range ts {
			fmt.Fprintf(stdout, "%-12s %-7s %s\n", t.Region, t.State, strings.Join(t.Public, ","))
		}
		return 0
	case len(pos) == 2 && (pos[0] == "down" || pos[0] == "up"):
	default:
		fs.Usage()
		return 2
	}
	action, name := pos[0], pos[1]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/regions/"+name+"/"+action, nil)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn region: %v\n", err)
		return 2
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn region: %v (is kubecdn up running?)\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		fmt.Fprintf(stderr, "kubecdn region %s %s: %s\n", action, name, e.Error)
		return 1
	}
	var t ops.Target
	if err := json.Unmarshal(body, &t); err != nil {
		fmt.Fprintf(stderr, "kubecdn region: bad answer from %s: %v\n", base, err)
		return 1
	}
	if action == "down" {
		fmt.Fprintf(stdout, "region %s: %s (edges %s stopped); the dns drops it after its health probes fail\n",
			t.Region, t.State, strings.Join(t.Public, ","))
	} else {
		fmt.Fprintf(stdout, "region %s: %s (edges %s serving); the dns answers with it again after its health probes pass\n",
			t.Region, t.State, strings.Join(t.Public, ","))
	}
	return 0
}
