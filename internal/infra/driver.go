package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-exec/tfexec"
)

// EnvTofu names the tofu (or terraform) binary when --tofu is not given.
const EnvTofu = "KUBECDN_TOFU"

// FindTofu returns the binary to drive: path if set, else $KUBECDN_TOFU,
// else tofu then terraform on PATH. It never downloads one.
func FindTofu(path string) (string, error) {
	if path == "" {
		path = os.Getenv(EnvTofu)
	}
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("tofu binary %q: %w", path, err)
		}
		return p, nil
	}
	for _, name := range []string{"tofu", "terraform"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New(`neither "tofu" nor "terraform" is on PATH: install OpenTofu (https://opentofu.org/docs/intro/install/) or name the binary with --tofu PATH or $` + EnvTofu)
}

// Summary is what a plan would do to a region.
type Summary struct {
	Add, Change, Destroy int
	// Outputs is how many outputs change when no resource does: such a
	// plan is applied too, or the state would keep the old values (and
	// the kubeconfig would be written from them).
	Outputs int
}

func (s Summary) String() string {
	if s == (Summary{}) {
		return "no changes"
	}
	out := fmt.Sprintf("%d to add, %d to change, %d to destroy", s.Add, s.Change, s.Destroy)
	if s.Outputs > 0 {
		out += fmt.Sprintf(", %d outputs to change", s.Outputs)
	}
	return out
}

// driver runs one region's module directory through tofu.
type driver struct {
	tf  *tfexec.Terraform
	dir string
	// log keeps the end of tofu's output; it goes into errors (tail).
	log *tailBuffer
}

// tailBuffer keeps the last max bytes written to it (tofu's output for a
// cloud can run to megabytes; only its end says what failed).
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

const planFile = "kubecdn.tfplan"

func newDriver(dir, bin string) (*driver, error) {
	tf, err := tfexec.NewTerraform(dir, bin)
	if err != nil {
		return nil, fmt.Errorf("tofu in %s: %w", dir, err)
	}
	log := &tailBuffer{max: 64 << 10}
	tf.SetStdout(log)
	tf.SetStderr(log)
	// tfexec passes this process's environment on (cloud credentials,
	// TF_VAR_*) and sets TF_IN_AUTOMATION itself.
	if env, ok := withoutMissingCLIConfig(os.Environ()); ok {
		if err := tf.SetEnv(env); err != nil {
			return nil, fmt.Errorf("tofu in %s: %w", dir, err)
		}
	}
	return &driver{tf: tf, dir: dir, log: log}, nil
}

// withoutMissingCLIConfig: a TF_CLI_CONFIG_FILE naming a file that does
// not exist makes tofu print a warning ahead of its version, which tfexec
// then cannot parse (and every command fails); this returns the
// environment without it, and without what tfexec sets itself, or false
// when the variable is fine. TF_VAR_* cannot be passed this way (tfexec
// refuses them in SetEnv); kubecdn's roots take no variables.
func withoutMissingCLIConfig(environ []string) (map[string]string, bool) {
	p, ok := os.LookupEnv("TF_CLI_CONFIG_FILE")
	if !ok {
		return nil, false
	}
	if _, err := os.Stat(p); err == nil {
		return nil, false
	}
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k != "TF_CLI_CONFIG_FILE" {
			env[k] = v
		}
	}
	for _, k := range tfexec.ProhibitedEnv(env) {
		delete(env, k)
	}
	return env, true
}

// wrap adds the last lines tofu printed to err (they say what went wrong).
func (d *driver) wrap(step string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("tofu %s in %s: %w", step, d.dir, err)
}

func (d *driver) init(ctx context.Context) error {
	return d.wrap("init", d.tf.Init(ctx, tfexec.Upgrade(false)))
}

// plan writes a saved plan (a destroy plan with destroy) and summarizes it.
func (d *driver) plan(ctx context.Context, destroy bool) (Summary, error) {
	if _, err := d.tf.Plan(ctx, tfexec.Out(planFile), tfexec.Destroy(destroy)); err != nil {
		return Summary{}, d.wrap("plan", err)
	}
	p, err := d.tf.ShowPlanFile(ctx, planFile)
	if err != nil {
		return Summary{}, d.wrap("show", err)
	}
	var s Summary
	for _, rc := range p.ResourceChanges {
		if rc.Change == nil {
			continue
		}
		a := rc.Change.Actions
		switch {
		case a.Replace():
			s.Add++
			s.Destroy++
		case a.Create():
			s.Add++
		case a.Update():
			s.Change++
		case a.Delete():
			s.Destroy++
		}
	}
	// Outputs change with resources as a matter of course; alone, they
	// still need an apply.
	if !destroy && s == (Summary{}) {
		for _, oc := range p.OutputChanges {
			if oc != nil && !oc.Actions.NoOp() {
				s.Outputs++
			}
		}
	}
	return s, nil
}

// apply carries out the saved plan: exactly what the summary said.
func (d *driver) apply(ctx context.Context) error {
	defer os.Remove(filepath.Join(d.dir, planFile))
	return d.wrap("apply", d.tf.Apply(ctx, tfexec.DirOrPlan(planFile)))
}

// outputs returns the root's outputs, sensitive ones included, as strings
// (non-string values as JSON).
func (d *driver) outputs(ctx context.Context) (map[string]string, error) {
	out, err := d.tf.Output(ctx)
	if err != nil {
		return nil, d.wrap("output", err)
	}
	m := map[string]string{}
	for k, o := range out {
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			m[k] = s
		} else {
			m[k] = string(o.Value)
		}
	}
	return m, nil
}

// run runs a Before command in the module's directory.
func (d *driver) run(ctx context.Context, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s in %s: %w", argv[0], d.dir, err)
	}
	return nil
}
