package route53

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/publish/registry"
)

// Publish implements publish.Publisher. It runs as steps: list the zone
// and the owner's health checks, let the registry say which names may be
// changed and plan each one, make the health checks the plans need, apply
// the record changes in batches, wait for them to be INSYNC, and delete
// the health checks nothing uses any more.
func (p *Publisher) Publish(ctx context.Context, d publish.Desired, dryRun bool) ([]publish.Change, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r, err := p.list(ctx, d, dryRun)
	if err != nil {
		return nil, err
	}
	r.planNames()
	r.makeChecks(ctx)
	r.groupChanges()
	r.apply(ctx)
	if err := p.waitInSync(ctx, r.pending); err != nil {
		return r.report, errors.Join(append(r.errs, err)...)
	}
	// Which sets use which checks is unknown after an ambiguous failure:
	// then no check is deleted.
	if !r.ambiguous {
		r.dropUnusedChecks(ctx)
	}
	return r.report, errors.Join(r.errs...)
}

// run is one Publish: what it listed, what it plans, and what it did.
type run struct {
	p      *Publisher
	d      publish.Desired
	reg    registry.Registry
	dryRun bool

	byName map[string][]rset // the zone's record sets by name, as listed
	checks []ownedCheck      // the owner's health checks, as listed

	plans   []*namePlan
	ids     map[string]string // name|region → the health check its sets carry
	wanted  map[string]bool   // name|region that has a desired check
	created []string          // health checks this run made

	groups    []changeGroup
	pending   []string // changes not yet INSYNC
	ambiguous bool     // a request failed without saying what it did

	report []publish.Change
	errs   []error
}

// ownedCheck is a health check this owner made, found by its tags.
type ownedCheck struct {
	id           string
	name, region string
	spec         checkSpec
}

// namePlan is what one name needs.
type namePlan struct {
	fqdn     string
	claim    bool // no ownership TXT yet: create it
	release  bool // no longer desired: delete it all
	txt      *rset
	existing []rset // managed sets at fqdn
	desired  []rset
	checks   map[string]checkSpec // by region
	failed   bool
}

// changeGroup is one name's record changes, sent in one batch so that the
// name changes atomically.
type changeGroup struct {
	plan    *namePlan
	changes []types.Change
	report  []publish.Change
	applied bool
}

// list reads the hosted zone and the owner's health checks.
func (p *Publisher) list(ctx context.Context, d publish.Desired, dryRun bool) (*run, error) {
	if err := p.checkZone(ctx, d.Zone); err != nil {
		return nil, err
	}
	listed, err := p.listSets(ctx)
	if err != nil {
		return nil, err
	}
	checks, err := p.listChecks(ctx, d.Owner)
	if err != nil {
		return nil, err
	}
	r := &run{
		p: p, d: d, reg: registry.Registry{Zone: d.Zone, Owner: d.Owner}, dryRun: dryRun,
		byName: map[string][]rset{}, checks: checks, ids: map[string]string{}, wanted: map[string]bool{},
	}
	for _, raw := range listed {
		s := fromSDK(raw)
		r.byName[s.Name] = append(r.byName[s.Name], s)
	}
	return r, nil
}

// planNames plans every desired name the registry lets the owner change,
// and the release of every name the owner holds but no longer wants.
func (r *run) planNames() {
	want := map[string]bool{}
	for _, n := range r.d.Names {
		want[n.FQDN] = true
		pl, err := r.planName(n)
		if err != nil {
			r.errs = append(r.errs, err)
			continue
		}
		r.plans = append(r.plans, pl)
	}
	for _, fqdn := range r.reg.Orphans(ownershipValues(r.byName), want) {
		r.plans = append(r.plans, &namePlan{
			fqdn: fqdn, release: true,
			txt:      ownershipTXT(r.byName[registry.RecordName(fqdn)]),
			existing: managedSets(r.byName[fqdn]),
		})
	}
}

// planName decides what one desired name needs, or why it is left alone.
func (r *run) planName(n publish.Name) (*namePlan, error) {
	ours, err := r.reg.Check(n.FQDN, listing(r.byName, n.FQDN))
	if err != nil {
		return nil, err
	}
	pl := &namePlan{fqdn: n.FQDN, claim: !ours, existing: managedSets(r.byName[n.FQDN]), checks: map[string]checkSpec{}}
	warn := func(msg string, args ...any) { r.p.log.Warn(msg, append(args, "name", n.FQDN)...) }
	desired, err := desiredSets(n, warn)
	if err != nil {
		return nil, fmt.Errorf("route53: %s: %w", n.FQDN, err)
	}
	if n.FQDN == r.d.Zone && len(desired) > 0 && desired[0].Type == "CNAME" {
		return nil, fmt.Errorf("route53: %s: the zone apex cannot have a CNAME (the regions have hostnames, not addresses)", n.FQDN)
	}
	pl.desired = desired
	if !r.p.healthChecks {
		return pl, nil
	}
	for _, s := range desired {
		if _, done := pl.checks[s.target]; done {
			continue
		}
		i := slices.IndexFunc(n.Targets, func(t publish.Target) bool { return t.Region == s.target })
		spec, ok, err := desiredCheck(n, n.Targets[i])
		if err != nil {
			return nil, fmt.Errorf("route53: %s: %w", n.FQDN, err)
		}
		if ok {
			pl.checks[s.target] = spec
		}
	}
	return pl, nil
}

// makeChecks keeps the health checks whose configuration matches and
// creates the others (replacing any of the same name and region). A name
// whose check cannot be made is left as it is.
func (r *run) makeChecks(ctx context.Context) {
	byKey := map[string][]ownedCheck{}
	for _, c := range r.checks {
		byKey[c.name+"|"+c.region] = append(byKey[c.name+"|"+c.region], c)
	}
	for _, pl := range r.plans {
		inUse := map[string]bool{}
		for _, e := range pl.existing {
			inUse[e.HealthCheckID] = true
		}
		for _, region := range sortedKeys(pl.checks) {
			if err := r.makeCheck(ctx, pl, region, byKey, inUse); err != nil {
				r.errs = append(r.errs, fmt.Errorf("route53: %s: %w", pl.fqdn, err))
				pl.failed = true
				break
			}
		}
	}
}

// makeCheck finds or creates the health check of one region of pl;
// among matching checks it keeps one the name's sets already use.
func (r *run) makeCheck(ctx context.Context, pl *namePlan, region string, byKey map[string][]ownedCheck, inUse map[string]bool) error {
	spec, k := pl.checks[region], pl.fqdn+"|"+region
	r.wanted[k] = true
	var keep *ownedCheck
	for i, c := range byKey[k] {
		if c.spec == spec && (keep == nil || inUse[c.id] && !inUse[keep.id]) {
			keep = &byKey[k][i]
		}
	}
	if keep != nil {
		r.ids[k] = keep.id
		return nil
	}
	action := publish.Create
	if len(byKey[k]) > 0 {
		action = publish.Update
	}
	id := "new-health-check-" + k // a dry run's stand-in ID
	if !r.dryRun {
		var err error
		if id, err = r.p.createCheck(ctx, r.d.Owner, pl.fqdn, region, spec); err != nil {
			return err
		}
		r.created = append(r.created, id)
	}
	r.ids[k] = id
	r.report = append(r.report, publish.Change{Action: action, Name: pl.fqdn, Type: "HEALTHCHECK", SetID: region, Detail: spec.String()})
	return nil
}

// groupChanges diffs each planned name into its change group, ownership
// TXT included.
func (r *run) groupChanges() {
	for _, pl := range r.plans {
		if pl.failed {
			continue
		}
		for i := range pl.desired {
			pl.desired[i].HealthCheckID = r.ids[pl.fqdn+"|"+pl.desired[i].target]
		}
		cs, rep := diff(pl.existing, pl.desired)
		if c, crep, ok := ownershipChange(pl, r.reg); ok {
			cs, rep = append(cs, c), append(rep, crep)
		}
		if len(cs) > 0 {
			r.groups = append(r.groups, changeGroup{plan: pl, changes: cs, report: rep})
		}
	}
}

// apply sends the change groups in batches within Route 53's limits; a
// batch Route 53 refuses as invalid is sent again name by name, so that
// one bad name does not hold back the others.
func (r *run) apply(ctx context.Context) {
	for _, batch := range pack(r.changeLists()) {
		if r.dryRun {
			for _, i := range batch {
				r.groups[i].applied = true
			}
			continue
		}
		err := r.send(ctx, batch)
		var icb *types.InvalidChangeBatch
		switch {
		case err == nil:
		case errors.As(err, &icb) && len(batch) > 1:
			for _, i := range batch {
				if err := r.send(ctx, []int{i}); err != nil {
					r.errs = append(r.errs, fmt.Errorf("route53: %s: %w", r.groups[i].plan.fqdn, err))
				}
			}
		case errors.As(err, &icb):
			r.errs = append(r.errs, fmt.Errorf("route53: %s: %w", r.groups[batch[0]].plan.fqdn, err))
		default:
			r.ambiguous = true
			r.errs = append(r.errs, err)
		}
	}
	for _, g := range r.groups {
		if g.applied {
			r.report = append(r.report, g.report...)
		}
	}
}

func (r *run) changeLists() [][]types.Change {
	out := make([][]types.Change, len(r.groups))
	for i, g := range r.groups {
		out[i] = g.changes
	}
	return out
}

// send applies the groups idx in one request.
func (r *run) send(ctx context.Context, idx []int) error {
	var cs []types.Change
	for _, i := range idx {
		cs = append(cs, r.groups[i].changes...)
	}
	id, status, err := r.p.changeSets(ctx, cs)
	if err != nil {
		return err
	}
	for _, i := range idx {
		r.groups[i].applied = true
	}
	if status != types.ChangeStatusInsync {
		r.pending = append(r.pending, id)
	}
	return nil
}

// dropUnusedChecks deletes the owner's health checks (and those this run
// made) that no record set uses after the changes applied.
func (r *run) dropUnusedChecks(ctx context.Context) {
	inUse := r.checksInUse()
	type stale struct {
		id, name, region string
	}
	var deletions []stale
	for _, c := range r.checks {
		if !inUse[c.id] {
			deletions = append(deletions, stale{c.id, c.name, c.region})
		}
	}
	for _, id := range r.created {
		if !inUse[id] {
			deletions = append(deletions, stale{id: id})
		}
	}
	slices.SortFunc(deletions, func(a, b stale) int {
		return strings.Compare(a.name+"|"+a.region+"|"+a.id, b.name+"|"+b.region+"|"+b.id)
	})
	for _, s := range deletions {
		if !r.dryRun {
			if err := r.p.deleteCheck(ctx, s.id); err != nil {
				r.errs = append(r.errs, err)
				continue
			}
		}
		if s.name != "" && !r.wanted[s.name+"|"+s.region] {
			r.report = append(r.report, publish.Change{Action: publish.Delete, Name: s.name, Type: "HEALTHCHECK", SetID: s.region, Detail: s.id})
		}
	}
}

// checksInUse are the health check IDs the zone's record sets carry once
// the applied groups are in: the listed sets, changed by those groups.
func (r *run) checksInUse() map[string]bool {
	model := map[string]string{}
	for _, sets := range r.byName {
		for _, s := range sets {
			model[s.key()] = s.HealthCheckID
		}
	}
	for _, g := range r.groups {
		if !g.applied {
			continue
		}
		for _, c := range g.changes {
			s := fromSDK(*c.ResourceRecordSet)
			if c.Action == types.ChangeActionDelete {
				delete(model, s.key())
			} else {
				model[s.key()] = s.HealthCheckID
			}
		}
	}
	inUse := map[string]bool{}
	for _, id := range model {
		inUse[id] = true
	}
	return inUse
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
