package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/local"
	"github.com/kubecdn/kubecdn/internal/ops"
)

// runRegion is the fault drill of a running `kubecdn up`: `region down NAME`
// stops a region's edges (the dns sees them fail and drops the region),
// `region up NAME` starts them again, `region list` shows every region.
// For autoscale regions, `region open|close NAME` pins the region open or
// closed until `region release NAME`, and `region pause|resume` stops and
// restarts the autoscaler's decisions (steps under way finish).
func runRegion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("region", flag.ContinueOnError)
	fs.SetOutput(stderr)
	control := fs.String("control", "http://"+local.DefaultControl, "control API of the running kubecdn up")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn region down|up NAME [--control URL]\n       kubecdn region list [--control URL]\n"+
			"       kubecdn region open|close|release NAME [--control URL]\n       kubecdn region pause|resume [--control URL]\n\n"+
			"Stops or starts a region's edges in a running `kubecdn up`. For an autoscale region, open and\n"+
			"close pin it until release hands it back to the autoscaler; pause and resume stop and restart\n"+
			"the autoscaler's decisions.")
		fs.PrintDefaults()
	}
	// Flags may come before or after the positional arguments.
	pos, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
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
			line := fmt.Sprintf("%-12s %-7s %s", t.Region, t.State, strings.Join(t.Public, ","))
			if t.Autoscale != nil {
				line += "  autoscale: " + autoscaleLine(t.Autoscale, time.Now())
			}
			fmt.Fprintln(stdout, line)
		}
		return 0
	case len(pos) == 1 && (pos[0] == "pause" || pos[0] == "resume"):
		if _, ok := post(ctx, client, base+"/v1/autoscale/"+pos[0], "region "+pos[0], stderr); !ok {
			return 1
		}
		fmt.Fprintf(stdout, "autoscaler: %s\n", map[string]string{"pause": "paused (steps under way finish)", "resume": "deciding again"}[pos[0]])
		return 0
	case len(pos) == 2 && (pos[0] == "down" || pos[0] == "up" || pos[0] == "open" || pos[0] == "close" || pos[0] == "release"):
	default:
		fs.Usage()
		return 2
	}
	action, name := pos[0], pos[1]
	body, ok := post(ctx, client, base+"/v1/regions/"+url.PathEscape(name)+"/"+action, "region "+action+" "+name, stderr)
	if !ok {
		return 1
	}
	var t ops.Target
	if err := json.Unmarshal(body, &t); err != nil {
		fmt.Fprintf(stderr, "kubecdn region: bad answer from %s: %v\n", base, err)
		return 1
	}
	switch action {
	case "open", "close":
		fmt.Fprintf(stdout, "region %s: pinned %s (now %s) until `kubecdn region release %s`\n", t.Region, action, phaseOf(t), t.Region)
		return 0
	case "release":
		fmt.Fprintf(stdout, "region %s: released to the autoscaler (now %s)\n", t.Region, phaseOf(t))
		return 0
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

// post sends an empty POST to the control API and returns the body of a
// 200 answer; otherwise it prints the error as what and returns false.
func post(ctx context.Context, client *http.Client, target, what string, stderr io.Writer) ([]byte, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn %s: %v\n", what, err)
		return nil, false
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn %s: %v (is kubecdn up running?)\n", what, err)
		return nil, false
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
		if resp.StatusCode == http.StatusNotFound && e.Error == "404 page not found" {
			e.Error = "this kubecdn up runs no autoscaler (the file has no autoscale regions)"
		}
		fmt.Fprintf(stderr, "kubecdn %s: %s\n", what, e.Error)
		return nil, false
	}
	return body, true
}

// phaseOf is an autoscale region's phase, or its state without one.
func phaseOf(t ops.Target) string {
	if t.Autoscale != nil {
		return t.Autoscale.Phase
	}
	return t.State
}
