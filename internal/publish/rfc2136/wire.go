package rfc2136

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// tsigKey signs and verifies messages with one HMAC key. It is its own
// dns.TsigProvider so that the key name and algorithm of an answer are
// checked too, not only its MAC.
type tsigKey struct {
	name   string // canonical: lower case, trailing dot
	alg    string // e.g. dns.HmacSHA256
	secret []byte
}

func (k tsigKey) mac(msg []byte, t *dns.TSIG) ([]byte, error) {
	if dns.CanonicalName(t.Hdr.Name) != k.name {
		return nil, fmt.Errorf("signed with key %s, want %s", t.Hdr.Name, k.name)
	}
	if dns.CanonicalName(t.Algorithm) != k.alg {
		return nil, fmt.Errorf("signed with algorithm %s, want %s", t.Algorithm, k.alg)
	}
	var h func() hash.Hash
	switch k.alg {
	case dns.HmacSHA1:
		h = sha1.New
	case dns.HmacSHA224:
		h = sha256.New224
	case dns.HmacSHA256:
		h = sha256.New
	case dns.HmacSHA384:
		h = sha512.New384
	case dns.HmacSHA512:
		h = sha512.New
	default:
		return nil, dns.ErrKeyAlg
	}
	m := hmac.New(h, k.secret)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Generate implements dns.TsigProvider.
func (k tsigKey) Generate(msg []byte, t *dns.TSIG) ([]byte, error) { return k.mac(msg, t) }

// Verify implements dns.TsigProvider.
func (k tsigKey) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.mac(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return dns.ErrSig
	}
	return nil
}

// conn is one TCP connection to the server, closed when ctx ends.
type conn struct {
	co      *dns.Conn
	ctx     context.Context
	timeout time.Duration
	stop    func() bool
}

func (p *Publisher) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: p.timeout}
	c, err := d.DialContext(ctx, "tcp", p.server)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	return &conn{
		co:      &dns.Conn{Conn: c},
		ctx:     ctx,
		timeout: p.timeout,
		stop:    context.AfterFunc(ctx, func() { c.Close() }),
	}, nil
}

func (c *conn) close() {
	c.stop()
	c.co.Close()
}

// deadline bounds the next read or write by the timeout and the context.
func (c *conn) deadline() {
	d := time.Now().Add(c.timeout)
	if cd, ok := c.ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	c.co.SetDeadline(d)
}

// err prefers the context's error to the closed connection it caused.
func (c *conn) err(err error) error {
	if cerr := c.ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// send signs m and writes it; it returns the request MAC that the answer's
// signature covers.
func (c *conn) send(m *dns.Msg, k tsigKey, now time.Time) (string, error) {
	m.SetTsig(k.name, k.alg, 300, now.Unix())
	out, mac, err := dns.TsigGenerateWithProvider(m, k, "", false)
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	c.deadline()
	if _, err := c.co.Write(out); err != nil {
		return "", c.err(err)
	}
	return mac, nil
}

// recv reads one answer to the request with id and checks its rcode and
// signature. reqMAC is the MAC the signature covers (the request's, or the
// previous message's in a transfer, where timersOnly is then true).
func (c *conn) recv(op string, id uint16, k tsigKey, reqMAC string, timersOnly bool) (*dns.Msg, error) {
	c.deadline()
	raw, err := c.co.ReadMsgHeader(nil)
	if err != nil {
		return nil, c.err(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		return nil, fmt.Errorf("%s answer: %w", op, err)
	}
	if r.Id != id {
		return nil, fmt.Errorf("%s answer has id %d, want %d", op, r.Id, id)
	}
	t := r.IsTsig()
	if r.Rcode != dns.RcodeSuccess || (t != nil && t.Error != 0) {
		e := &RcodeError{Op: op, Rcode: r.Rcode}
		if t != nil {
			e.TSIGError = int(t.Error)
		}
		return r, e
	}
	if t == nil {
		return r, fmt.Errorf("%s answer is not signed with TSIG key %s", op, strings.TrimSuffix(k.name, "."))
	}
	if err := dns.TsigVerifyWithProvider(raw, k, reqMAC, timersOnly); err != nil {
		return r, fmt.Errorf("%s answer's TSIG does not verify: %w", op, err)
	}
	return r, nil
}

// exchange sends one signed message and returns its verified answer.
func (p *Publisher) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	c, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.close()
	op := dns.OpcodeToString[m.Opcode]
	mac, err := c.send(m, p.key, p.now())
	if err != nil {
		return nil, err
	}
	return c.recv(op, m.Id, p.key, mac, false)
}

// zoneState is a zone's records by owner name (lower case, no trailing
// dot) and type.
type zoneState map[string]map[uint16][]dns.RR

func (s zoneState) add(rr dns.RR) {
	name := strings.TrimSuffix(strings.ToLower(rr.Header().Name), ".")
	if s[name] == nil {
		s[name] = map[uint16][]dns.RR{}
	}
	t := rr.Header().Rrtype
	s[name][t] = append(s[name][t], rr)
}

// transfer reads the whole zone by AXFR; every message of the answer must
// be signed (RFC 8945 section 5.3.1).
func (p *Publisher) transfer(ctx context.Context) (zoneState, error) {
	c, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.close()
	m := new(dns.Msg)
	m.SetAxfr(p.zone + ".")
	mac, err := c.send(m, p.key, p.now())
	if err != nil {
		return nil, err
	}
	st := zoneState{}
	soas := 0
	for first := true; ; first = false {
		r, err := c.recv("AXFR", m.Id, p.key, mac, !first)
		if err != nil {
			return nil, err
		}
		mac = r.IsTsig().MAC
		for i, rr := range r.Answer {
			if rr.Header().Rrtype == dns.TypeSOA {
				soas++
				if soas == 2 {
					if i != len(r.Answer)-1 {
						return nil, errors.New("AXFR answer goes on after its closing SOA")
					}
					return st, nil
				}
			} else if soas == 0 {
				return nil, errors.New("AXFR answer does not start with the SOA")
			}
			st.add(rr)
		}
		if len(r.Answer) == 0 {
			return nil, errors.New("AXFR answer message is empty")
		}
	}
}
