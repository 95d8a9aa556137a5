package deploy

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

// The hop key authenticates edges to each other: peers in a region and
// child regions to their parents, so every region of the CDN must hold the
// same one (render.Options.HopSecret, key "key": one key per line, the
// first signs, all verify). Deploy reads every active region's Secret
// before it applies any region, copies the key the regions hold to those
// that have none, makes one only when no region could have one, and never
// changes a Secret that exists.

// hopKeyBytes is the size of a key deploy makes, hex-encoded like the keys
// of `kubecdn up` and of the README's openssl command.
const hopKeyBytes = 32

// hopMinKey is the shortest key an edge accepts (edge.Config.Validate).
const hopMinKey = 16

// hopFound is one region's hop Secret as read before the deploy.
type hopFound struct {
	region string
	exists bool
	// keys are its keys, the signing one first; nil when the Secret has
	// no usable one.
	keys []string
}

// hopPlan is what the regions' hop Secrets get.
type hopPlan struct {
	// value is the "key" of the Secret created where one is missing; ""
	// creates none.
	value string
	// note says why none is made, when that is not an error.
	note string
	// err says what about the Secrets that exist needs a person: they
	// disagree, or one holds no usable key.
	err error
}

// hopKeyLines are the keys of a hop key value: one per non-empty line,
// spaces around it ignored, as the edge reads them.
func hopKeyLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// chooseHopKey decides the hop key of the regions that have none. found
// lists the active regions read, in file order; unread names those that
// could not be read. The regions' keys agree when each region signs with a
// key every other region holds (the same key everywhere, or one step of a
// rotation); then the first region's keys go where there are none. When
// they disagree, nothing is created: copying either side would only spread
// the split, and which side is right is the operator's call. A new key is
// made (from random) only when no region has one and every region was read:
// an unread region may hold one, and a second key would split the CDN.
func chooseHopKey(found []hopFound, unread []string, random io.Reader) hopPlan {
	var p hopPlan
	var broken, with []hopFound
	for _, f := range found {
		switch {
		case f.exists && f.keys == nil:
			broken = append(broken, f)
		case f.keys != nil:
			with = append(with, f)
		}
	}
	var problems []string
	for _, f := range broken {
		problems = append(problems, fmt.Sprintf("%s's Secret has no usable key (none, or a line shorter than %d bytes) and is left alone", f.region, hopMinKey))
	}
	disagree := false
	for _, a := range with {
		var refuse []string
		for _, b := range with {
			if a.region != b.region && !slices.Contains(b.keys, a.keys[0]) {
				refuse = append(refuse, b.region)
			}
		}
		if len(refuse) > 0 {
			disagree = true
			problems = append(problems, fmt.Sprintf("%s signs with a key not held by %s", a.region, strings.Join(refuse, ", ")))
		}
	}
	switch {
	case disagree:
		problems = append(problems, "no region gets one until every region holds the same key")
	case len(with) > 0:
		p.value = strings.Join(with[0].keys, "\n")
	case len(unread) > 0:
		p.note = fmt.Sprintf("no hop key made: %s could not be read and may hold one", strings.Join(unread, ", "))
	default:
		b := make([]byte, hopKeyBytes)
		if _, err := io.ReadFull(random, b); err != nil {
			problems = append(problems, fmt.Sprintf("making one: %v", err))
			break
		}
		p.value = hex.EncodeToString(b)
	}
	if len(problems) > 0 {
		p.err = fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return p
}

// hopSecretName is the Secret the edges read the hop key from.
func (d *deployer) hopSecretName() string {
	if n := d.opts.Render.HopSecret; n != "" {
		return n
	}
	return render.DefaultHopSecret
}

// planHopKey reads the hop Secret of every active region not in skip
// (connecting to those not reached yet) and chooses the key of the regions
// that have none. It returns the regions that could not be read, with why.
func (d *deployer) planHopKey(ctx context.Context, active []config.RegionRef, skip map[string]bool) (hopPlan, map[string]error) {
	ns, name := d.opts.Render.Namespace, d.hopSecretName()
	found := make([]hopFound, len(active))
	errs := make([]error, len(active))
	done := make([]bool, len(active))
	d.parallel(ctx, len(active), func(i int) {
		r := active[i]
		if skip[r.Name] {
			return
		}
		found[i], errs[i] = d.readHopSecret(ctx, r, ns, name)
		done[i] = errs[i] == nil
	})
	var read []hopFound
	var unread []string
	failed := map[string]error{}
	for i, r := range active {
		switch {
		case done[i]:
			read = append(read, found[i])
		case skip[r.Name]:
			unread = append(unread, r.Name)
		default: // failed, or never tried because ctx ended
			unread = append(unread, r.Name)
			if errs[i] == nil {
				errs[i] = ctx.Err()
			}
			failed[r.Name] = errs[i]
		}
	}
	p := chooseHopKey(read, unread, d.opts.Rand)
	if p.err != nil {
		p.err = fmt.Errorf("secret %s/%s: %w", ns, name, p.err)
		d.printf("hop", "%v", p.err)
	}
	if p.note != "" {
		d.printf("hop", "%s", p.note)
	}
	return p, failed
}

// readHopSecret reads region r's hop Secret, connecting to r if no earlier
// step has.
func (d *deployer) readHopSecret(ctx context.Context, r config.RegionRef, ns, name string) (hopFound, error) {
	f := hopFound{region: r.Name}
	c, err := d.cluster(ctx, r)
	if err != nil {
		return f, err
	}
	live, err := c.Get(ctx, secretObject(ns, name), ns)
	if err != nil || live == nil {
		return f, err
	}
	f.exists = true
	v, _, _ := unstructured.NestedString(live.Object, "data", "key")
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return f, nil // not usable; the API server stores data in base64, so this is unlikely
	}
	keys := hopKeyLines(string(b))
	if len(keys) > 0 && !slices.ContainsFunc(keys, func(k string) bool { return len(k) < hopMinKey }) {
		f.keys = keys
	}
	return f, nil
}

// ensureHopSecret creates the region's hop Secret with the chosen key when
// it has none (see ensureSecret).
func (d *deployer) ensureHopSecret(ctx context.Context, c *Cluster, region string) (*Ref, bool, error) {
	return d.ensureSecret(ctx, c, region, d.hopSecretName(), func() (map[string]any, error) {
		if d.hop.value == "" {
			return nil, nil
		}
		return map[string]any{"key": d.hop.value}, nil
	})
}

// secretObject names a Secret.
func secretObject(ns, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": name, "namespace": ns}}}
}
