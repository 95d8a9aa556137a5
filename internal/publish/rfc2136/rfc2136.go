// Package rfc2136 publishes a CDN's names to a primary DNS server that takes
// dynamic updates (RFC 2136) signed with TSIG (RFC 8945): BIND, Knot DNS,
// PowerDNS and others.
//
// A Publish reads the whole zone by AXFR, compares it with the Desired, and
// sends one UPDATE message per name that must change, so each name changes
// atomically and a refused name does not hold back the others. Every message,
// the transfer included, is signed with the TSIG key, and every answer must be
// signed by the same key and carry NOERROR. The key therefore needs both
// update and transfer (AXFR) rights on the zone in the server's ACL.
//
// Plain DNS answers every client alike, so a Name's routing policy becomes
// one record set:
//   - failover: the addresses of the targets with the lowest Order (the
//     primary); the others are published only once the primary leaves the
//     Desired;
//   - weighted: the union of the addresses of the targets with a Weight
//     above 0 (all targets if every weight is 0), as one multi-value RRset;
//     resolvers spread clients over it, not in proportion to the weights;
//   - all, latency, geo: the union of every target's addresses.
//
// IPv4 addresses go into an A RRset and IPv6 into an AAAA RRset. A target
// with a Hostname becomes a CNAME, which is only possible when it is the
// name's single answer (and not at the zone apex); otherwise Publish refuses
// the name with an error that names it. The TTL of every record of a Name,
// its ownership TXT included, is Name.TTL in whole seconds (60 s if zero). A
// Name with no targets keeps its ownership TXT and has no address records.
// Target health cannot be checked by a plain DNS server: Health is ignored,
// and a dead region stays in the answers until the next Publish removes it.
//
// Which names are the owner's is package registry's decision, as for every
// provider: the TXT record at registry.RecordName(name) says which CDN owns
// the name. Only A, AAAA and CNAME records at an owned name, and the owner's
// own TXT, are ever changed.
// The race between reading the zone and updating it is closed with
// prerequisites: an update of an owned name requires the ownership TXT RRset
// to be exactly as read, and the creation of a new name requires that its
// ownership TXT and its A, AAAA and CNAME records do not exist (the whole name
// unused, except at the apex). A failed prerequisite is an error that asks for
// a re-run.
//
// Updates go over TCP, always: an update is not idempotent under
// retransmission (a retried UDP message whose first answer was lost would
// fail its own prerequisites), and one TCP exchange per name costs little.
// Every exchange (dial, send, answer; each message of a transfer) is bounded
// by Options.Timeout and by the context, whose cancellation closes the
// connection at once.
package rfc2136

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// Options tune a Publisher; the zero value is ready to use.
type Options struct {
	// Timeout bounds each exchange with the server: dial, request and
	// answer, or one message of a zone transfer. If zero, 10 s.
	Timeout time.Duration
	// Now is the clock that stamps TSIG signatures; if nil, time.Now.
	Now func() time.Time
	// Logger receives one debug line per update sent; if nil, nothing is
	// logged.
	Logger *slog.Logger
}

// Publisher makes the records of one zone on an RFC 2136 server agree with
// a publish.Desired. It holds no state between calls and is safe for
// concurrent use, although two concurrent Publish calls for one owner race
// (the prerequisites then fail one of them).
type Publisher struct {
	server  string // ip:port
	zone    string // lower case, no trailing dot
	key     tsigKey
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
}

var _ publish.Publisher = (*Publisher)(nil)

// New returns a Publisher for zone (e.g. "cdn.example.com") on the server
// and with the TSIG key of cfg. It reads the key's secret (cfg.TSIG.Secret)
// once, here.
func New(cfg config.RFC2136, zone string, opts Options) (*Publisher, error) {
	zone = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(zone)), ".")
	if _, ok := dns.IsDomainName(zone); !ok || zone == "" {
		return nil, fmt.Errorf("rfc2136: %q is not a zone name", zone)
	}
	ap, err := config.ParseHostPort(cfg.Server, 53)
	if err != nil {
		return nil, fmt.Errorf("rfc2136: server: %w", err)
	}
	if _, ok := dns.IsDomainName(cfg.TSIG.Name); !ok || cfg.TSIG.Name == "" {
		return nil, fmt.Errorf("rfc2136: tsig name %q is not a key name", cfg.TSIG.Name)
	}
	algName := cfg.TSIG.Algorithm
	if algName == "" {
		algName = "hmac-sha256"
	}
	alg, ok := config.TSIGAlgorithms[algName]
	if !ok {
		return nil, fmt.Errorf("rfc2136: unknown tsig algorithm %q", cfg.TSIG.Algorithm)
	}
	secret, err := cfg.TSIG.Secret()
	if err != nil {
		return nil, fmt.Errorf("rfc2136: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("rfc2136: tsig secret of %s is not base64", cfg.TSIG.Name)
	}
	p := &Publisher{
		server:  ap.String(),
		zone:    zone,
		key:     tsigKey{name: dns.CanonicalName(cfg.TSIG.Name), alg: alg, secret: raw},
		timeout: opts.Timeout,
		now:     opts.Now,
		log:     opts.Logger,
	}
	if p.timeout <= 0 {
		p.timeout = 10 * time.Second
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// Publish makes the zone's records agree with d; see the package comment
// for how names become records. It returns the changes made (with dryRun,
// those it would make; it then sends no update). Names refused or failed
// are reported together in the error (errors.As finds each
// *publish.OwnedError and *RcodeError); the other names are still
// published.
func (p *Publisher) Publish(ctx context.Context, d publish.Desired, dryRun bool) ([]publish.Change, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if z := strings.TrimSuffix(strings.ToLower(d.Zone), "."); z != p.zone {
		return nil, fmt.Errorf("rfc2136: desired zone %s is not the publisher's zone %s", d.Zone, p.zone)
	}
	st, err := p.transfer(ctx)
	if err != nil {
		return nil, fmt.Errorf("rfc2136: reading zone %s by AXFR from %s: %w", p.zone, p.server, err)
	}
	plans, errs := plan(p.zone, st, d)
	var changes []publish.Change
	for i, pl := range plans {
		if dryRun {
			changes = append(changes, pl.changes...)
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("rfc2136: %w", err))
			break
		}
		if err := p.update(ctx, pl); err != nil {
			errs = append(errs, fmt.Errorf("rfc2136: updating %s: %w", pl.name, err))
			// A key the server refuses fails every name alike: say it once.
			if re := (*RcodeError)(nil); errors.As(err, &re) && re.keyProblem() && i < len(plans)-1 {
				errs = append(errs, fmt.Errorf("rfc2136: %d more names not updated", len(plans)-1-i))
				break
			}
			continue
		}
		p.log.Debug("rfc2136 update", "server", p.server, "name", pl.name, "changes", len(pl.changes))
		changes = append(changes, pl.changes...)
	}
	return changes, errors.Join(errs...)
}

// update sends one name's UPDATE message.
func (p *Publisher) update(ctx context.Context, pl namePlan) error {
	m := new(dns.Msg)
	m.SetUpdate(p.zone + ".")
	m.Answer = pl.prereq
	m.Ns = pl.update
	_, err := p.exchange(ctx, m)
	return err
}

// RcodeError is an answer from the server that was not NOERROR, or whose
// TSIG carries an error (BADSIG, BADKEY, BADTIME).
type RcodeError struct {
	// Op is "AXFR" or "UPDATE".
	Op string
	// Rcode of the answer's header, e.g. dns.RcodeNotAuth.
	Rcode int
	// TSIGError is the error field of the answer's TSIG, 0 if none.
	TSIGError int
}

func (e *RcodeError) Error() string {
	s := fmt.Sprintf("%s answered %s", e.Op, rcodeName(e.Rcode))
	if e.TSIGError != 0 {
		s += fmt.Sprintf(" (TSIG error %s)", rcodeName(e.TSIGError))
	}
	rights := map[string]string{"AXFR": "transfer", "UPDATE": "update"}[e.Op]
	switch {
	case e.TSIGError == dns.RcodeBadTime:
		s += ": the clocks of this machine and the server differ by more than 5 minutes"
	case e.TSIGError == dns.RcodeBadSig:
		s += ": the server rejects the signature; check tsig secret and algorithm"
	case e.TSIGError != 0:
		s += ": the server does not accept the key for this; check tsig name and algorithm, and that the server's ACL gives the key " + rights + " rights on the zone"
	case e.Rcode == dns.RcodeRefused:
		s += ": the key lacks " + rights + " rights on the zone (server ACL)"
	case e.Rcode == dns.RcodeNotAuth:
		s += ": the server is not the primary of the zone, or does not accept the key"
	case e.Rcode == dns.RcodeNotZone:
		s += ": the server does not serve the zone"
	case e.Rcode == dns.RcodeYXDomain || e.Rcode == dns.RcodeYXRrset || e.Rcode == dns.RcodeNXRrset || e.Rcode == dns.RcodeNameError:
		s += ": a prerequisite failed, the name changed since it was read; run again"
	}
	return s
}

// keyProblem reports whether the server refused the key or its rights,
// which no other name would fare better with.
func (e *RcodeError) keyProblem() bool {
	return e.TSIGError != 0 || e.Rcode == dns.RcodeNotAuth || e.Rcode == dns.RcodeRefused
}

func rcodeName(r int) string {
	if s, ok := dns.RcodeToString[r]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", r)
}
