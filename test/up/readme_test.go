package up_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// quickstartStep is one command of the README's quickstart and what the
// README says it prints.
type quickstartStep struct {
	cmd    string
	expect string // "" when the README promises nothing
	up     []string
}

var upLine = regexp.MustCompile(`^(?:\./kubecdn|kubecdn|go run \./cmd/kubecdn)\s+up(\s.*)?$`)

// parseQuickstart reads the shell blocks between the quickstart markers.
// Each line is a command (a trailing backslash continues it); a trailing
// `# text` comment is the output the command must print: the output must
// contain the text, `...` matches anything, and a parenthesised note at the
// end of the comment is ignored. `go build` lines are skipped (the test has
// the binary) and the `kubecdn up` line is run by the test itself.
func parseQuickstart(readme string) (steps []quickstartStep, found bool) {
	_, rest, ok := strings.Cut(readme, "<!-- quickstart -->")
	if !ok {
		return nil, false
	}
	section, _, ok := strings.Cut(rest, "<!-- /quickstart -->")
	if !ok {
		return nil, false
	}
	inBlock := false
	pending := ""
	for _, line := range strings.Split(section, "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "```") {
			lang := strings.TrimPrefix(trim, "```")
			inBlock = !inBlock && (lang == "sh" || lang == "bash" || lang == "shell" || lang == "console")
			continue
		}
		if !inBlock || trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		if strings.HasSuffix(trim, `\`) {
			pending += strings.TrimSuffix(trim, `\`) + " "
			continue
		}
		full := pending + trim
		pending = ""
		cmd, comment := splitComment(full)
		cmd = strings.TrimPrefix(cmd, "$ ")
		if strings.HasPrefix(cmd, "go build") {
			continue
		}
		st := quickstartStep{cmd: cmd, expect: expectation(comment)}
		if m := upLine.FindStringSubmatch(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cmd), "&"))); m != nil {
			st.up = append([]string{"up"}, strings.Fields(m[1])...)
		}
		steps = append(steps, st)
	}
	return steps, true
}

// splitComment cuts a shell line at its first # outside quotes.
func splitComment(s string) (cmd, comment string) {
	var q rune
	for i, r := range s {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		case r == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
		}
	}
	return strings.TrimSpace(s), ""
}

func expectation(comment string) string {
	c := strings.TrimSpace(comment)
	if strings.HasSuffix(c, ")") {
		if i := strings.LastIndex(c, " ("); i > 0 {
			c = strings.TrimSpace(c[:i])
		}
	}
	return c
}

// matches says whether out contains expect, with ... matching anything.
func matches(out, expect string) bool {
	pos := 0
	for _, piece := range strings.Split(expect, "...") {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		i := strings.Index(strings.ToLower(out[pos:]), strings.ToLower(piece))
		if i < 0 {
			return false
		}
		pos += i + len(piece)
	}
	return true
}

func TestParseQuickstart(t *testing.T) {
	readme := "intro\n<!-- quickstart -->\n```sh\ngo build -o kubecdn ./cmd/kubecdn\n./kubecdn up &\n" +
		"dig @127.0.0.1 -p 5353 www.cdn.localhost +subnet=198.51.100.0/24 +short    # 127.0.0.3 (us-west-2)\n" +
		"curl -sI -H 'Host: www.cdn.localhost' http://127.0.0.2:8080/ \\\n  | grep -i cache-status   # cache-status: kubecdn; fwd=uri-miss; ...; stored\n" +
		"# a comment line\nkubecdn region down us-west-2\n```\n<!-- /quickstart -->\n```sh\nnot this\n```\n"
	steps, ok := parseQuickstart(readme)
	if !ok || len(steps) != 4 {
		t.Fatalf("steps = %+v (found %v), want 4", steps, ok)
	}
	if strings.Join(steps[0].up, " ") != "up" || steps[1].expect != "127.0.0.3" ||
		steps[2].cmd != "curl -sI -H 'Host: www.cdn.localhost' http://127.0.0.2:8080/  | grep -i cache-status" ||
		steps[2].expect != "cache-status: kubecdn; fwd=uri-miss; ...; stored" || steps[3].expect != "" {
		t.Fatalf("steps = %+v", steps)
	}
	if !matches("Cache-Status: kubecdn; fwd=uri-miss; fwd-status=200; ttl=59; stored\n", steps[2].expect) {
		t.Error("wildcard match failed")
	}
	if matches("Cache-Status: kubecdn; hit; ttl=59\n", steps[2].expect) {
		t.Error("a hit matched a miss expectation")
	}
}

// TestReadmeQuickstart runs the README's quickstart as a newcomer would:
// `kubecdn up` on its default ports, then each command, checking the output
// the README promises. KUBECDN_README=FILE checks a draft instead.
func TestReadmeQuickstart(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	if p := os.Getenv("KUBECDN_README"); p != "" {
		path = p // a draft README
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	steps, found := parseQuickstart(string(raw))
	if !found {
		t.Skip("README.md has no <!-- quickstart --> ... <!-- /quickstart --> section yet")
	}
	var upArgs []string
	for _, s := range steps {
		if s.up != nil {
			upArgs = s.up
		}
	}
	if upArgs == nil {
		t.Fatal("the quickstart never starts kubecdn up")
	}
	for _, tool := range []string{"bash", "curl", "dig"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found and CI=true", tool)
			}
			t.Skipf("%s not found: the quickstart needs it", tool)
		}
	}
	// The quickstart uses the default addresses; a `kubecdn up` already
	// running there is not this test's to disturb.
	probe := startUp(t, append(upArgs, "--quiet")...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(probe.Stdout.String(), "Ctrl-C stops everything.") {
		select {
		case <-probe.Done:
			if strings.Contains(probe.Stderr.String(), "address already in use") {
				t.Skipf("the default addresses are taken (is a kubecdn up running?):\n%s", probe.Stderr)
			}
			t.Fatalf("kubecdn up exited: %v\n%s", probe.Err, probe.Stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no banner within 20s")
		}
	}
	time.Sleep(1500 * time.Millisecond) // the dns's first health probes

	dir := t.TempDir()
	if err := os.Symlink(binPath, filepath.Join(dir, "kubecdn")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	afterRegion := false
	for _, s := range steps {
		if s.up != nil {
			continue
		}
		// After a region goes down or up, the next line shows the dns once
		// its health probes have seen it (about 3 s): give it up to 15 s.
		retryUntil := time.Now()
		if afterRegion {
			retryUntil = retryUntil.Add(15 * time.Second)
		}
		afterRegion = strings.Contains(s.cmd, "region down") || strings.Contains(s.cmd, "region up")
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", s.cmd)
			cmd.Dir, cmd.Env = dir, env
			out, err := cmd.CombinedOutput()
			cancel()
			ok := err == nil && (s.expect == "" || matches(string(out), s.expect))
			if ok {
				break
			}
			if time.Now().Before(retryUntil) {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Errorf("%s\n  failed: %v\n%s", s.cmd, err, out)
			} else {
				t.Errorf("%s\n  printed %q\n  the README says: %s", s.cmd, out, s.expect)
			}
			break
		}
	}
	probe.Stop(t)
}
