package rfc2136

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// fakeServer is a fake DNS server on loopback TCP for the answers Knot
// never gives: unsigned, signed with another key, or none at all. secrets
// are the keys it signs its answers with.
func fakeServer(t *testing.T, secrets map[string]string, h dns.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: h, TsigSecret: secrets,
		// UPDATE too: the default accepts only QUERY and NOTIFY.
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func TestAnswerChecks(t *testing.T) {
	const otherSecret = "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlcg=="
	reply := func(rcode int, signAs string) dns.HandlerFunc {
		return func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(r, rcode)
			if r.Question[0].Qtype == dns.TypeAXFR && rcode == dns.RcodeSuccess {
				soa, _ := dns.NewRR(testZone + ". 60 IN SOA ns h 1 1 1 1 1")
				m.Answer = []dns.RR{soa, soa}
			}
			if signAs != "" {
				m.SetTsig(signAs, dns.HmacSHA256, 300, time.Now().Unix())
			}
			w.WriteMsg(m)
		}
	}
	tests := []struct {
		name    string
		secrets map[string]string
		h       dns.HandlerFunc
		wantErr string
		rcode   bool
	}{
		{"unsigned answer", nil, reply(dns.RcodeSuccess, ""), "answer is not signed with TSIG key kubecdn-key", false},
		{"signed with another secret", map[string]string{testKey: otherSecret}, reply(dns.RcodeSuccess, testKey), "TSIG does not verify", false},
		{"signed with another key", map[string]string{"other.": otherSecret}, reply(dns.RcodeSuccess, "other."), "signed with key other., want kubecdn-key.", false},
		{"refused", nil, reply(dns.RcodeRefused, ""), "answered REFUSED: the key lacks", true},
		{"prerequisite failed", map[string]string{testKey: testSecret}, reply(dns.RcodeYXDomain, testKey), "answered YXDOMAIN: a prerequisite failed", true},
		{"silent server", nil, func(dns.ResponseWriter, *dns.Msg) {}, "i/o timeout", false},
	}
	for _, tt := range tests {
		for _, op := range []string{"AXFR", "UPDATE"} {
			t.Run(tt.name+" "+op, func(t *testing.T) {
				p := newTestPublisher(t, fakeServer(t, tt.secrets, tt.h), testSecret)
				p.timeout = 300 * time.Millisecond
				start := time.Now()
				var err error
				if op == "AXFR" {
					_, err = p.transfer(t.Context())
				} else {
					err = p.update(t.Context(), namePlan{name: "www." + testZone})
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), op) && tt.name != "silent server" {
					t.Errorf("error %q does not name %s", err, op)
				}
				var re *RcodeError
				if errors.As(err, &re) != tt.rcode {
					t.Errorf("error %q: *RcodeError %v, want %v", err, !tt.rcode, tt.rcode)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("took %v", d)
				}
			})
		}
	}
}

// TestSignedAnswerAccepted checks the fake's signed answers pass, so the
// failures above are the checks at work.
func TestSignedAnswerAccepted(t *testing.T) {
	addr := fakeServer(t, map[string]string{testKey: testSecret}, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if w.TsigStatus() != nil {
			m.Rcode = dns.RcodeNotAuth
		}
		if r.Question[0].Qtype == dns.TypeAXFR {
			soa, _ := dns.NewRR(testZone + ". 60 IN SOA ns h 1 1 1 1 1")
			a, _ := dns.NewRR("www." + testZone + ". 60 IN A 192.0.2.1")
			m.Answer = []dns.RR{soa, a, soa}
		}
		m.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Unix())
		w.WriteMsg(m)
	})
	p := newTestPublisher(t, addr, testSecret)
	st, err := p.transfer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st["www."+testZone][dns.TypeA]) != 1 || len(st[testZone][dns.TypeSOA]) != 1 {
		t.Errorf("state %v", st)
	}
	if err := p.update(t.Context(), namePlan{name: "www." + testZone}); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancelsExchange(t *testing.T) {
	addr := fakeServer(t, nil, func(dns.ResponseWriter, *dns.Msg) {})
	p := newTestPublisher(t, addr, testSecret)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.Publish(ctx, publish.Desired{Zone: testZone, Owner: "a"}, false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled after %v; the timeout is 5s", d)
	}
}

func TestNew(t *testing.T) {
	t.Setenv("KUBECDN_TEST_GOOD", testSecret)
	t.Setenv("KUBECDN_TEST_BAD", "not base64!")
	good := config.RFC2136{Server: "127.0.0.1", TSIG: config.TSIG{Name: "k", SecretEnv: "KUBECDN_TEST_GOOD"}}
	tests := []struct {
		name    string
		mod     func(*config.RFC2136)
		zone    string
		wantErr string
	}{
		{"defaults", func(*config.RFC2136) {}, "Cdn.Example.Test.", ""},
		{"bad server", func(c *config.RFC2136) { c.Server = "dns.example.net:53" }, testZone, "server"},
		{"bad algorithm", func(c *config.RFC2136) { c.TSIG.Algorithm = "hmac-md5" }, testZone, `unknown tsig algorithm "hmac-md5"`},
		{"secret not base64", func(c *config.RFC2136) { c.TSIG.SecretEnv = "KUBECDN_TEST_BAD" }, testZone, "not base64"},
		{"no secret", func(c *config.RFC2136) { c.TSIG.SecretEnv = "" }, testZone, "neither secretFile nor secretEnv"},
		{"no key name", func(c *config.RFC2136) { c.TSIG.Name = "" }, testZone, "tsig name"},
		{"bad zone", func(*config.RFC2136) {}, "", "not a zone name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			p, err := New(c, tt.zone, Options{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.server != "127.0.0.1:53" || p.zone != testZone || p.key.name != "k." || p.key.alg != dns.HmacSHA256 || p.timeout != 10*time.Second {
					t.Errorf("publisher %+v", p)
				}
				if _, err := p.Publish(t.Context(), publish.Desired{Zone: "other.test", Owner: "a"}, true); err == nil || !strings.Contains(err.Error(), "not the publisher's zone") {
					t.Errorf("publish to another zone: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
