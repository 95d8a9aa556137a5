// Package route53 publishes a CDN's names to an Amazon Route 53 hosted
// zone (aws-sdk-go-v2): one record set per region under each name, with
// the region as SetIdentifier and the CDN file's routing policy, a Route
// 53 health check per region (tagged, so the next run finds it again), and
// the ownership TXT record of package registry, so that several CDNs and
// hand-made records share a zone without touching each other's names.
//
// Policies map to Route 53 as follows. latency: Region is the target's
// region when its provider is aws, else the AWS region nearest to its
// location. weighted: Weight (0..255). failover: the lowest Order is
// PRIMARY, the next SECONDARY; more than two regions is an error for that
// name. geo: each region answers the continent it is on (the first listed
// wins when several share one), a continent with no region goes to the
// nearest region (SetIdentifier "<region>/<continent>"), and the default
// location "*" (clients Route 53 cannot place) to the first region
// (SetIdentifier "<region>/default"). all: multivalue answers (a name with
// one region is a simple record set; with hostnames, which multivalue
// cannot carry, equal weights). A and AAAA sets carry the addresses, a
// CNAME set the hostname; a name cannot mix the two. A routed name with
// several regions gets AAAA sets only if every region has an IPv6
// address: otherwise every AAAA query would go to the IPv6 regions,
// whatever the policy.
//
// Health checks (one per region of each name, HTTP or TCP, at the first
// IPv4 address, else the first IPv6 one, else the hostname) are tagged
// kubecdn-owner, kubecdn-name, kubecdn-region and Name; one whose
// configuration no longer matches is replaced by a new one.
//
// Requests are spaced to 5 per second (Route 53's limit per account),
// retried with exponential backoff on Throttling and
// PriorRequestNotComplete, sent in batches of at most 1000 changes (each
// name's changes in one batch, so a name changes atomically), and the
// publisher waits for the changes to be INSYNC before it deletes the
// health checks they stopped using. A second run with the same Desired
// sends no mutating request.
//
// Which names may be changed is package registry's decision, the same as
// for every provider; this package lists the zone (route53.go), asks the
// registry (owner.go), plans each name (plan.go) and applies the plans
// (run.go, where Publish reads as those steps).
package route53

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// Options tune a Publisher; zero values take the defaults given.
type Options struct {
	// Credentials for the API; if nil, the usual AWS chain (environment,
	// shared files, instance roles).
	Credentials aws.CredentialsProvider
	// HTTPClient; if nil, the SDK's.
	HTTPClient *http.Client
	// Logger; if nil, nothing is logged.
	Logger *slog.Logger
	// RequestsPerSecond the publisher sends at most; if zero, 5, Route 53's
	// limit per account (share one Publisher per account).
	RequestsPerSecond float64
	// MaxAttempts per request when throttled or failing; if zero, 8.
	MaxAttempts int
	// RetryBase is the first backoff, doubled per attempt up to 20 s; if
	// zero, 500 ms.
	RetryBase time.Duration
	// SyncTimeout bounds the wait for changes to be INSYNC; if zero, 5
	// minutes; if negative, Publish does not wait (and then deletes
	// unused health checks at once). SyncPoll is the GetChange interval;
	// if zero, 5 s.
	SyncTimeout, SyncPoll time.Duration
	// Now and Sleep are the clock; if nil, time.Now and a timer.
	Now   func() time.Time
	Sleep func(context.Context, time.Duration) error
}

// Publisher publishes to one hosted zone. Its methods are safe for
// concurrent use; publishes run one at a time.
type Publisher struct {
	client       *route53.Client
	zoneID       string
	healthChecks bool
	log          *slog.Logger
	now          func() time.Time
	sleep        func(context.Context, time.Duration) error
	lim          *limiter
	maxAttempts  int
	retryBase    time.Duration
	syncTimeout  time.Duration
	syncPoll     time.Duration

	mu       sync.Mutex
	zoneName string // cached after the first GetHostedZone
	seq      int
}

var _ publish.Publisher = (*Publisher)(nil)

// Tag keys of the health checks kubecdn owns.
const (
	tagOwner  = "kubecdn-owner"
	tagName   = "kubecdn-name"
	tagRegion = "kubecdn-region"
	// callerRefPrefix starts every CallerReference kubecdn makes; only
	// such checks have their tags read.
	callerRefPrefix = "kubecdn-"
)

// New builds a Publisher for the hosted zone cfg names.
func New(ctx context.Context, cfg config.Route53, opts Options) (*Publisher, error) {
	if cfg.HostedZoneID == "" {
		return nil, errors.New("route53: hostedZoneID is required")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	load := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if opts.Credentials != nil {
		load = append(load, awsconfig.WithCredentialsProvider(opts.Credentials))
	}
	if opts.HTTPClient != nil {
		load = append(load, awsconfig.WithHTTPClient(opts.HTTPClient))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("route53: loading aws config: %w", err)
	}
	client := route53.NewFromConfig(awsCfg, func(o *route53.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		// Retries are ours (call), under the rate limit and bounded.
		o.Retryer = aws.NopRetryer{}
	})
	p := &Publisher{
		client:       client,
		zoneID:       strings.TrimPrefix(cfg.HostedZoneID, "/hostedzone/"),
		healthChecks: cfg.HealthChecks == nil || *cfg.HealthChecks,
	}
	p.setOptions(opts)
	return p, nil
}

// setOptions takes opts, with the defaults Options documents.
func (p *Publisher) setOptions(opts Options) {
	p.log, p.now, p.sleep = opts.Logger, opts.Now, opts.Sleep
	p.maxAttempts, p.retryBase = opts.MaxAttempts, opts.RetryBase
	p.syncTimeout, p.syncPoll = opts.SyncTimeout, opts.SyncPoll
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.sleep == nil {
		p.sleep = publish.Sleep
	}
	if p.maxAttempts <= 0 {
		p.maxAttempts = 8
	}
	if p.retryBase <= 0 {
		p.retryBase = 500 * time.Millisecond
	}
	if p.syncTimeout == 0 {
		p.syncTimeout = 5 * time.Minute
	}
	if p.syncPoll <= 0 {
		p.syncPoll = 5 * time.Second
	}
	rps := opts.RequestsPerSecond
	if rps <= 0 {
		rps = 5
	}
	p.lim = &limiter{interval: time.Duration(float64(time.Second) / rps), now: p.now, sleep: p.sleep}
}

func (p *Publisher) checkZone(ctx context.Context, zone string) error {
	if p.zoneName == "" {
		out, err := call(ctx, p, "GetHostedZone", func(ctx context.Context) (*route53.GetHostedZoneOutput, error) {
			return p.client.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(p.zoneID)})
		})
		if err != nil {
			return err
		}
		p.zoneName = decodeName(aws.ToString(out.HostedZone.Name))
	}
	if p.zoneName != zone {
		return fmt.Errorf("route53: hosted zone %s is %s, not %s", p.zoneID, p.zoneName, zone)
	}
	return nil
}

func (p *Publisher) listSets(ctx context.Context) ([]types.ResourceRecordSet, error) {
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(p.zoneID), MaxItems: aws.Int32(300)}
	var out []types.ResourceRecordSet
	for {
		page, err := call(ctx, p, "ListResourceRecordSets", func(ctx context.Context) (*route53.ListResourceRecordSetsOutput, error) {
			return p.client.ListResourceRecordSets(ctx, in)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, page.ResourceRecordSets...)
		if !page.IsTruncated {
			return out, nil
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = page.NextRecordName, page.NextRecordType, page.NextRecordIdentifier
	}
}

// listChecks finds the health checks owner made: those with kubecdn's
// CallerReference prefix whose tags name the owner.
func (p *Publisher) listChecks(ctx context.Context, owner string) ([]ownedCheck, error) {
	var mine []types.HealthCheck
	in := &route53.ListHealthChecksInput{MaxItems: aws.Int32(1000)}
	for {
		page, err := call(ctx, p, "ListHealthChecks", func(ctx context.Context) (*route53.ListHealthChecksOutput, error) {
			return p.client.ListHealthChecks(ctx, in)
		})
		if err != nil {
			return nil, err
		}
		for _, hc := range page.HealthChecks {
			if strings.HasPrefix(aws.ToString(hc.CallerReference), callerRefPrefix) {
				mine = append(mine, hc)
			}
		}
		if !page.IsTruncated {
			break
		}
		in.Marker = page.NextMarker
	}
	var out []ownedCheck
	for chunk := range slices.Chunk(mine, 10) {
		var ids []string
		for _, hc := range chunk {
			ids = append(ids, aws.ToString(hc.Id))
		}
		tags, err := call(ctx, p, "ListTagsForResources", func(ctx context.Context) (*route53.ListTagsForResourcesOutput, error) {
			return p.client.ListTagsForResources(ctx, &route53.ListTagsForResourcesInput{
				ResourceType: types.TagResourceTypeHealthcheck, ResourceIds: ids,
			})
		})
		if err != nil {
			return nil, err
		}
		byID := map[string]map[string]string{}
		for _, ts := range tags.ResourceTagSets {
			m := map[string]string{}
			for _, t := range ts.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			byID[aws.ToString(ts.ResourceId)] = m
		}
		for _, hc := range chunk {
			t := byID[aws.ToString(hc.Id)]
			if t[tagOwner] != owner || t[tagName] == "" || t[tagRegion] == "" {
				continue
			}
			out = append(out, ownedCheck{id: aws.ToString(hc.Id), name: t[tagName], region: t[tagRegion], spec: specFromSDK(hc.HealthCheckConfig)})
		}
	}
	return out, nil
}

// createCheck creates and tags a health check; a check that cannot be
// tagged would never be found again, so it is deleted.
func (p *Publisher) createCheck(ctx context.Context, owner, name, region string, spec checkSpec) (string, error) {
	p.seq++
	sum := sha256.Sum256([]byte(owner + "|" + name + "|" + region))
	ref := fmt.Sprintf("%s%s-%x-%d", callerRefPrefix, hex.EncodeToString(sum[:5]), p.now().UnixNano(), p.seq)
	in := &route53.CreateHealthCheckInput{CallerReference: aws.String(ref), HealthCheckConfig: spec.toSDK()}
	out, err := call(ctx, p, "CreateHealthCheck", func(ctx context.Context) (*route53.CreateHealthCheckOutput, error) {
		return p.client.CreateHealthCheck(ctx, in)
	})
	if err != nil {
		return "", fmt.Errorf("health check of region %s: %w", region, err)
	}
	id := aws.ToString(out.HealthCheck.Id)
	tags := []types.Tag{
		{Key: aws.String(tagOwner), Value: aws.String(owner)},
		{Key: aws.String(tagName), Value: aws.String(name)},
		{Key: aws.String(tagRegion), Value: aws.String(region)},
		{Key: aws.String("Name"), Value: aws.String(truncate(fmt.Sprintf("%s %s (kubecdn %s)", name, region, owner), 256))},
	}
	_, err = call(ctx, p, "ChangeTagsForResource", func(ctx context.Context) (*route53.ChangeTagsForResourceOutput, error) {
		return p.client.ChangeTagsForResource(ctx, &route53.ChangeTagsForResourceInput{
			ResourceType: types.TagResourceTypeHealthcheck, ResourceId: aws.String(id), AddTags: tags,
		})
	})
	if err != nil {
		if derr := p.deleteCheck(ctx, id); derr != nil {
			err = errors.Join(err, derr)
		}
		return "", fmt.Errorf("tagging health check %s of region %s: %w", id, region, err)
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (p *Publisher) deleteCheck(ctx context.Context, id string) error {
	_, err := call(ctx, p, "DeleteHealthCheck", func(ctx context.Context) (*route53.DeleteHealthCheckOutput, error) {
		return p.client.DeleteHealthCheck(ctx, &route53.DeleteHealthCheckInput{HealthCheckId: aws.String(id)})
	})
	var gone *types.NoSuchHealthCheck
	if errors.As(err, &gone) {
		return nil
	}
	return err
}

func (p *Publisher) changeSets(ctx context.Context, cs []types.Change) (id string, status types.ChangeStatus, err error) {
	in := &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(p.zoneID),
		ChangeBatch:  &types.ChangeBatch{Changes: cs, Comment: aws.String("kubecdn")},
	}
	out, err := call(ctx, p, "ChangeResourceRecordSets", func(ctx context.Context) (*route53.ChangeResourceRecordSetsOutput, error) {
		return p.client.ChangeResourceRecordSets(ctx, in)
	})
	if err != nil {
		return "", "", err
	}
	return aws.ToString(out.ChangeInfo.Id), out.ChangeInfo.Status, nil
}

// waitInSync polls GetChange until every change is INSYNC, at most
// p.syncTimeout (a negative timeout does not wait).
func (p *Publisher) waitInSync(ctx context.Context, ids []string) error {
	if p.syncTimeout < 0 {
		return nil
	}
	deadline := p.now().Add(p.syncTimeout)
	for _, id := range ids {
		for {
			out, err := call(ctx, p, "GetChange", func(ctx context.Context) (*route53.GetChangeOutput, error) {
				return p.client.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(id)})
			})
			if err != nil {
				return err
			}
			if out.ChangeInfo.Status == types.ChangeStatusInsync {
				break
			}
			if !p.now().Before(deadline) {
				return fmt.Errorf("route53: change %s still %s after %v", id, out.ChangeInfo.Status, p.syncTimeout)
			}
			if err := p.sleep(ctx, p.syncPoll); err != nil {
				return fmt.Errorf("route53: waiting for change %s: %w", id, err)
			}
		}
	}
	return nil
}
