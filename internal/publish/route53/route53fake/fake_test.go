package route53fake_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"

	"github.com/kubecdn/kubecdn/internal/publish/route53/route53fake"
)

const zone = "cdn.example.com"

func client(srv *route53fake.Server, secret string) *route53.Client {
	return route53.New(route53.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: route53fake.DefaultAccessKeyID, SecretAccessKey: secret}, nil
		}),
		Retryer: aws.NopRetryer{},
	})
}

func fast() route53fake.Options {
	return route53fake.Options{Zone: zone, Rate: 1000, Burst: 1000}
}

func set(name, typ, setID string, ttl int64, values ...string) types.ResourceRecordSet {
	rs := types.ResourceRecordSet{Name: aws.String(name), Type: types.RRType(typ)}
	if setID != "" {
		rs.SetIdentifier = aws.String(setID)
	}
	if ttl >= 0 {
		rs.TTL = aws.Int64(ttl)
	}
	for _, v := range values {
		rs.ResourceRecords = append(rs.ResourceRecords, types.ResourceRecord{Value: aws.String(v)})
	}
	return rs
}

func latencySet(name, region, value string) types.ResourceRecordSet {
	rs := set(name, "A", region, 60, value)
	rs.Region = types.ResourceRecordSetRegion(region)
	return rs
}

func change(action types.ChangeAction, rs types.ResourceRecordSet) types.Change {
	return types.Change{Action: action, ResourceRecordSet: &rs}
}

func batch(ctx context.Context, c *route53.Client, srv *route53fake.Server, cs ...types.Change) error {
	_, err := c.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(srv.ZoneID()), ChangeBatch: &types.ChangeBatch{Changes: cs},
	})
	return err
}

// signed sends a raw request signed for service with the fake's key.
func signed(t *testing.T, srv *route53fake.Server, method, path, body, service string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/xml")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: route53fake.DefaultAccessKeyID, SecretAccessKey: route53fake.DefaultSecretAccessKey}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// refused is an error for an HTTP error status.
func refused(resp *http.Response) error {
	if resp.StatusCode >= 400 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func TestViolations(t *testing.T) {
	www := "www." + zone
	existing := latencySet(www, "us-east-1", "3.80.0.1")
	tests := []struct {
		name string
		send func(t *testing.T, srv *route53fake.Server) error
		want string
	}{
		{"unsigned", func(t *testing.T, srv *route53fake.Server) error {
			resp, err := http.Get(srv.URL + "/2013-04-01/hostedzone/" + srv.ZoneID())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return refused(resp)
		}, "no Authorization header"},
		{"wrong secret", func(t *testing.T, srv *route53fake.Server) error {
			_, err := client(srv, "not-the-secret").GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String(srv.ZoneID())})
			return err
		}, "signature does not match"},
		{"signed for s3", func(t *testing.T, srv *route53fake.Server) error {
			return refused(signed(t, srv, "GET", "/2013-04-01/hostedzone/"+srv.ZoneID(), "", "s3"))
		}, `signed for service "s3"`},
		{"unknown operation", func(t *testing.T, srv *route53fake.Server) error {
			return refused(signed(t, srv, "GET", "/2013-04-01/geolocations", "", "route53"))
		}, "no such operation"},
		{"wrong method", func(t *testing.T, srv *route53fake.Server) error {
			return refused(signed(t, srv, "PUT", "/2013-04-01/hostedzone/"+srv.ZoneID()+"/rrset", "<x/>", "route53"))
		}, "PUT /2013-04-01/hostedzone/" + route53fake.DefaultZoneID + "/rrset: no such operation"},
		{"malformed XML", func(t *testing.T, srv *route53fake.Server) error {
			return refused(signed(t, srv, "POST", "/2013-04-01/hostedzone/"+srv.ZoneID()+"/rrset", "<ChangeResourceRecordSetsRequest><ChangeBatch>", "route53"))
		}, "malformed XML"},
		{"wrong namespace", func(t *testing.T, srv *route53fake.Server) error {
			return refused(signed(t, srv, "POST", "/2013-04-01/hostedzone/"+srv.ZoneID()+"/rrset", "<ChangeResourceRecordSetsRequest><ChangeBatch/></ChangeResourceRecordSetsRequest>", "route53"))
		}, "malformed XML"},
		{"create existing", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, existing))
		}, "Tried to create resource record set [name='www.cdn.example.com.', type='A', set-identifier='us-east-1'] but it already exists"},
		{"delete not matching", func(t *testing.T, srv *route53fake.Server) error {
			other := latencySet(www, "us-east-1", "3.80.0.2")
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionDelete, other))
		}, "do not match the current values"},
		{"delete missing", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionDelete, latencySet(www, "eu-west-1", "3.80.0.1")))
		}, "but it was not found"},
		{"CNAME beside A", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, set(www, "CNAME", "", 60, "lb.example.net.")))
		}, "conflicting RRSet of type A"},
		{"two policies", func(t *testing.T, srv *route53fake.Server) error {
			rs := set(www, "A", "w", 60, "3.80.0.9")
			rs.Weight = aws.Int64(1)
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, rs))
		}, "must use one routing policy, found latency, weighted"},
		{"simple beside routed", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, set(www, "A", "", 60, "3.80.0.9")))
		}, "a simple set cannot share"},
		{"set identifier without policy", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, set("x."+zone, "A", "id", 60, "3.80.0.9")))
		}, "SetIdentifier given without a routing policy"},
		{"no TTL", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, set("x."+zone, "A", "", -1, "3.80.0.9")))
		}, "TTL is required"},
		{"unknown health check", func(t *testing.T, srv *route53fake.Server) error {
			rs := latencySet("x."+zone, "us-east-1", "3.80.0.9")
			rs.HealthCheckId = aws.String("00000000-0000-0000-0000-000000000000")
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, rs))
		}, "health check 00000000-0000-0000-0000-000000000000 does not exist"},
		{"outside the zone", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, set("www.example.org", "A", "", 60, "3.80.0.9")))
		}, "is not permitted in zone"},
		{"A value not IPv4", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, set("x."+zone, "A", "", 60, "2600::1")))
		}, "is not an IPv4 address"},
		{"unquoted TXT", func(t *testing.T, srv *route53fake.Server) error {
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, change(types.ChangeActionCreate, set("x."+zone, "TXT", "", 60, "hello")))
		}, "must be a quoted string"},
		{"1001 changes", func(t *testing.T, srv *route53fake.Server) error {
			var cs []types.Change
			for i := range 1001 {
				cs = append(cs, change(types.ChangeActionCreate, set(fmt.Sprintf("h%d.%s", i, zone), "A", "", 60, "3.80.0.9")))
			}
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, cs...)
		}, "limit of 1000 exceeded: 1001 changes"},
		{"600 UPSERTs count 1200 values", func(t *testing.T, srv *route53fake.Server) error {
			var cs []types.Change
			for i := range 600 {
				cs = append(cs, change(types.ChangeActionUpsert, set(fmt.Sprintf("h%d.%s", i, zone), "A", "", 60, "3.80.0.9")))
			}
			return batch(t.Context(), client(srv, route53fake.DefaultSecretAccessKey), srv, cs...)
		}, "1200 ResourceRecord elements"},
		{"health check of a private address", func(t *testing.T, srv *route53fake.Server) error {
			_, err := client(srv, route53fake.DefaultSecretAccessKey).CreateHealthCheck(t.Context(), &route53.CreateHealthCheckInput{
				CallerReference:   aws.String("r1"),
				HealthCheckConfig: &types.HealthCheckConfig{Type: types.HealthCheckTypeHttp, IPAddress: aws.String("10.0.0.1"), Port: aws.Int32(80)},
			})
			return err
		}, "private"},
		{"health check deleted while in use", func(t *testing.T, srv *route53fake.Server) error {
			c := client(srv, route53fake.DefaultSecretAccessKey)
			hc, err := c.CreateHealthCheck(t.Context(), &route53.CreateHealthCheckInput{
				CallerReference:   aws.String("r1"),
				HealthCheckConfig: &types.HealthCheckConfig{Type: types.HealthCheckTypeTcp, IPAddress: aws.String("3.80.0.1"), Port: aws.Int32(80)},
			})
			if err != nil {
				return err
			}
			rs := latencySet("x."+zone, "us-east-1", "3.80.0.9")
			rs.HealthCheckId = hc.HealthCheck.Id
			if err := batch(t.Context(), c, srv, change(types.ChangeActionCreate, rs)); err != nil {
				return err
			}
			_, err = c.DeleteHealthCheck(t.Context(), &route53.DeleteHealthCheckInput{HealthCheckId: hc.HealthCheck.Id})
			if err == nil {
				err = errors.New("deleted (as Route 53 would)")
			}
			return err
		}, "is still used by"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := route53fake.New(fast())
			defer srv.Close()
			// A valid batch first: nothing recorded for it.
			c := client(srv, route53fake.DefaultSecretAccessKey)
			if err := batch(t.Context(), c, srv, change(types.ChangeActionCreate, existing)); err != nil {
				t.Fatal(err)
			}
			if v := srv.Violations(); len(v) != 0 {
				t.Fatalf("valid batch: %q", v)
			}
			before := len(srv.RecordSets())
			if err := tc.send(t, srv); err == nil {
				t.Error("request accepted")
			}
			v := srv.Violations()
			if len(v) == 0 || !strings.Contains(strings.Join(v, "\n"), tc.want) {
				t.Errorf("violations %q, want one with %q", v, tc.want)
			}
			if after := len(srv.RecordSets()); after != before && tc.name != "health check deleted while in use" {
				t.Errorf("zone changed: %d sets, then %d", before, after)
			}
		})
	}
}

func TestSignedRequestAccepted(t *testing.T) {
	srv := route53fake.Start(t, fast())
	if resp := signed(t, srv, "GET", "/2013-04-01/hostedzone/"+srv.ZoneID()+"/rrset?name=a%2Ab.cdn.example.com&type=A&maxitems=5", "", "route53"); resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// TestAtomic: a batch with one bad change applies none of its changes.
func TestAtomic(t *testing.T) {
	srv := route53fake.New(fast())
	defer srv.Close()
	c := client(srv, route53fake.DefaultSecretAccessKey)
	err := batch(t.Context(), c, srv,
		change(types.ChangeActionCreate, set("a."+zone, "A", "", 60, "3.80.0.1")),
		change(types.ChangeActionCreate, set("b."+zone, "A", "", 60, "3.80.0.2")),
		change(types.ChangeActionDelete, set("c."+zone, "A", "", 60, "3.80.0.3")),
	)
	var icb *types.InvalidChangeBatch
	if !errors.As(err, &icb) || len(icb.Messages) != 1 {
		t.Fatalf("err = %v, want InvalidChangeBatch with one message", err)
	}
	if n := len(srv.RecordSets()); n != 2 { // SOA and NS
		t.Errorf("%d sets after a refused batch, want 2", n)
	}
	// DELETE then CREATE of one set in a batch is how a policy changes.
	if err := batch(t.Context(), c, srv, change(types.ChangeActionCreate, set("a."+zone, "A", "", 60, "3.80.0.1"))); err != nil {
		t.Fatal(err)
	}
	if err := batch(t.Context(), c, srv,
		change(types.ChangeActionDelete, set("a."+zone, "A", "", 60, "3.80.0.1")),
		change(types.ChangeActionCreate, latencySet("a."+zone, "us-east-1", "3.80.0.1")),
		change(types.ChangeActionCreate, latencySet("a."+zone, "eu-west-1", "54.72.0.1")),
	); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.RecordSets()); n != 4 || len(srv.Violations()) != 1 {
		t.Errorf("%d sets, violations %q", n, srv.Violations())
	}
}

func TestThrottling(t *testing.T) {
	// Route 53's 5/s with a bucket of 5, on a clock that stands still: of
	// twelve requests at once, five pass.
	frozen := time.Now()
	srv := route53fake.New(route53fake.Options{Zone: zone, Now: func() time.Time { return frozen }})
	defer srv.Close()
	c := client(srv, route53fake.DefaultSecretAccessKey)
	var mu sync.Mutex
	var codes []string
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			_, err := c.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String(srv.ZoneID())})
			code := "ok"
			var ae smithy.APIError
			if errors.As(err, &ae) {
				code = ae.ErrorCode() + ": " + ae.ErrorMessage()
			}
			mu.Lock()
			codes = append(codes, code)
			mu.Unlock()
		})
	}
	wg.Wait()
	ok, throttled := 0, 0
	for _, c := range codes {
		switch c {
		case "ok":
			ok++
		case "Throttling: Rate exceeded":
			throttled++
		default:
			t.Errorf("unexpected answer %q", c)
		}
	}
	if ok != 5 || throttled != 7 || srv.Throttled() != throttled {
		t.Errorf("%d ok, %d throttled (fake counted %d); want 5 ok", ok, throttled, srv.Throttled())
	}

	// Told to, it throttles the next calls whatever the rate.
	fastSrv := route53fake.Start(t, fast())
	fastSrv.ThrottleNext(2)
	fc := client(fastSrv, route53fake.DefaultSecretAccessKey)
	for i, want := range []bool{true, true, false} {
		_, err := fc.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: aws.String(fastSrv.ZoneID())})
		var ae smithy.APIError
		if got := errors.As(err, &ae) && ae.ErrorCode() == "Throttling"; got != want {
			t.Errorf("call %d: throttled %v, want %v (%v)", i, got, want, err)
		}
	}
}

func TestListPagination(t *testing.T) {
	srv := route53fake.Start(t, fast())
	for _, n := range []string{"a", "*.img", "b.a", "_kubecdn-owner.a", "z"} {
		srv.Seed(route53fake.RecordSet{Name: n + "." + zone, Type: "A", TTL: aws.Int64(60), ResourceRecords: []route53fake.ResourceRecord{{Value: "3.80.0.1"}}})
	}
	c := client(srv, route53fake.DefaultSecretAccessKey)
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(srv.ZoneID()), MaxItems: aws.Int32(2)}
	var names []string
	pages := 0
	for {
		out, err := c.ListResourceRecordSets(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, rs := range out.ResourceRecordSets {
			names = append(names, aws.ToString(rs.Name)+" "+string(rs.Type))
		}
		if !out.IsTruncated {
			break
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier
	}
	want := []string{
		"cdn.example.com. NS", "cdn.example.com. SOA", "a.cdn.example.com. A", "_kubecdn-owner.a.cdn.example.com. A",
		"b.a.cdn.example.com. A", `\052.img.cdn.example.com. A`, "z.cdn.example.com. A",
	}
	if strings.Join(names, "|") != strings.Join(want, "|") || pages != 4 {
		t.Errorf("%d pages: %q\nwant %q", pages, names, want)
	}
}

func TestHealthChecks(t *testing.T) {
	srv := route53fake.Start(t, fast())
	c := client(srv, route53fake.DefaultSecretAccessKey)
	ctx := t.Context()
	cfg := &types.HealthCheckConfig{Type: types.HealthCheckTypeHttp, IPAddress: aws.String("3.80.0.1"), Port: aws.Int32(80), ResourcePath: aws.String("/h")}
	var ids []string
	for i := range 3 {
		out, err := c.CreateHealthCheck(ctx, &route53.CreateHealthCheckInput{CallerReference: aws.String(fmt.Sprint("ref", i)), HealthCheckConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.HealthCheck.Id))
		if aws.ToInt32(out.HealthCheck.HealthCheckConfig.RequestInterval) != 30 || out.Location == nil {
			t.Errorf("defaults not filled or no Location: %+v", out)
		}
	}
	// The same CallerReference and configuration is the same check.
	again, err := c.CreateHealthCheck(ctx, &route53.CreateHealthCheckInput{CallerReference: aws.String("ref0"), HealthCheckConfig: cfg})
	if err != nil || aws.ToString(again.HealthCheck.Id) != ids[0] {
		t.Errorf("idempotent create: %v %v", again, err)
	}
	var seen []string
	in := &route53.ListHealthChecksInput{MaxItems: aws.Int32(2)}
	for {
		out, err := c.ListHealthChecks(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, hc := range out.HealthChecks {
			seen = append(seen, aws.ToString(hc.Id))
		}
		if !out.IsTruncated {
			break
		}
		in.Marker = out.NextMarker
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Errorf("listed %q, want %q", seen, ids)
	}
	if _, err := c.ChangeTagsForResource(ctx, &route53.ChangeTagsForResourceInput{ResourceType: types.TagResourceTypeHealthcheck, ResourceId: aws.String(ids[1]),
		AddTags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("one")}}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResources(ctx, &route53.ListTagsForResourcesInput{ResourceType: types.TagResourceTypeHealthcheck, ResourceIds: ids})
	if err != nil || len(tags.ResourceTagSets) != 3 || len(tags.ResourceTagSets[1].Tags) != 1 || aws.ToString(tags.ResourceTagSets[1].Tags[0].Value) != "one" {
		t.Errorf("tags %+v %v", tags, err)
	}
	up, err := c.UpdateHealthCheck(ctx, &route53.UpdateHealthCheckInput{HealthCheckId: aws.String(ids[2]), HealthCheckVersion: aws.Int64(1), ResourcePath: aws.String("/new")})
	if err != nil || aws.ToString(up.HealthCheck.HealthCheckConfig.ResourcePath) != "/new" || aws.ToInt64(up.HealthCheck.HealthCheckVersion) != 2 {
		t.Errorf("update: %+v %v", up, err)
	}
	got, err := c.GetHealthCheck(ctx, &route53.GetHealthCheckInput{HealthCheckId: aws.String(ids[2])})
	if err != nil || aws.ToString(got.HealthCheck.HealthCheckConfig.ResourcePath) != "/new" {
		t.Errorf("get: %+v %v", got, err)
	}
	if _, err := c.DeleteHealthCheck(ctx, &route53.DeleteHealthCheckInput{HealthCheckId: aws.String(ids[0])}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.HealthChecks()); n != 2 {
		t.Errorf("%d checks after delete, want 2", n)
	}
}

func TestGetChange(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	o := fast()
	o.PendingFor, o.Now = time.Minute, clock
	srv := route53fake.Start(t, o)
	c := client(srv, route53fake.DefaultSecretAccessKey)
	out, err := c.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(srv.ZoneID()),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{change(types.ChangeActionCreate, set("a."+zone, "A", "", 60, "3.80.0.1"))}}})
	if err != nil || out.ChangeInfo.Status != types.ChangeStatusPending {
		t.Fatalf("%+v %v", out, err)
	}
	for _, want := range []types.ChangeStatus{types.ChangeStatusPending, types.ChangeStatusInsync} {
		got, err := c.GetChange(t.Context(), &route53.GetChangeInput{Id: out.ChangeInfo.Id})
		if err != nil || got.ChangeInfo.Status != want {
			t.Errorf("status %v %v, want %v", got.ChangeInfo.Status, err, want)
		}
		mu.Lock()
		now = now.Add(time.Minute)
		mu.Unlock()
	}
}
