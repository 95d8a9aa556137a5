package deploy

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/kubecdn/kubecdn/internal/render"
)

// ensureSecrets makes the region's generated Secrets where missing: the
// admin token (one per region) and the hop key (one for the CDN). It
// returns the refs of those kubecdn owns, which are desired at every
// deploy and so never pruned while the region is in the file, and those
// created (or that a dry run would create).
func (d *deployer) ensureSecrets(ctx context.Context, c *Cluster, region string) (owned, created []Ref, err error) {
	for _, ensure := range []func(context.Context, *Cluster, string) (*Ref, bool, error){d.ensureAdminSecret, d.ensureHopSecret} {
		ref, made, err := ensure(ctx, c, region)
		if err != nil {
			return owned, created, err
		}
		if ref != nil {
			owned = append(owned, *ref)
		}
		if made {
			created = append(created, *ref)
		}
	}
	return owned, created, nil
}

// ensureAdminSecret creates the Secret holding the edges' admin bearer
// token (render.Options.AdminSecret, key "token") with a random token when
// the region has none (see ensureSecret).
func (d *deployer) ensureAdminSecret(ctx context.Context, c *Cluster, region string) (*Ref, bool, error) {
	name := d.opts.Render.AdminSecret
	if name == "" {
		name = render.DefaultAdminSecret
	}
	return d.ensureSecret(ctx, c, region, name, func() (map[string]any, error) {
		b := make([]byte, 32)
		if _, err := io.ReadFull(d.opts.Rand, b); err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		return map[string]any{"token": hex.EncodeToString(b)}, nil
	})
}

// ensureSecret creates the Secret name in the region with the data that
// data returns (stringData) when the region has none; nil data creates
// none. A Secret that exists, made by kubecdn or by the user, is never
// changed: it holds a key others share or a token someone uses. It returns
// the Secret's ref when kubecdn owns it (so it is kept in the inventory and
// goes with the region), and whether it was (or, in a dry run, would be)
// created. Create, not apply: apply would take it over at every deploy.
func (d *deployer) ensureSecret(ctx context.Context, c *Cluster, region, name string, data func() (map[string]any, error)) (*Ref, bool, error) {
	ns := d.opts.Render.Namespace
	u := secretObject(ns, name)
	ref := RefOf(u)
	live, err := c.Get(ctx, u, ns)
	if err != nil {
		return nil, false, err
	}
	if live != nil {
		if live.GetLabels()["kubecdn.io/cdn"] == d.cfg.Metadata.Name {
			return &ref, false, nil
		}
		return nil, false, nil // the user's own
	}
	sd, err := data()
	if err != nil || sd == nil {
		return nil, false, err
	}
	if d.opts.DryRun {
		return &ref, true, nil
	}
	u.SetLabels(d.labels(region))
	u.Object["type"] = "Opaque"
	u.Object["stringData"] = sd
	if _, err := c.Create(ctx, u, ns); err != nil {
		return nil, false, err
	}
	return &ref, true, nil
}
