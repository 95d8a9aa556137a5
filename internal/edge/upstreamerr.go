package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// upstreamLogEvery is how often at most one upstream failure is logged per
// upstream host: a dead origin under load fails every request, and a line
// per request would bury everything else in the log.
const upstreamLogEvery = 10 * time.Second

// hopError is the error of one hop of roundTrip: which hop ("origin",
// "parent", "peer") and its host, so that failures can be logged per
// upstream.
type hopError struct {
	kind, host string
	err        error
}

func (e *hopError) Error() string { return e.kind + " " + e.host + ": " + e.err.Error() }
func (e *hopError) Unwrap() error { return e.err }

// upstreamFailed reports an upstream failure that the client is answered
// with an error for: it logs it at warning level (at most one line per
// upstream host every upstreamLogEvery, with the count of the failures
// left out since the last line), and returns the Cache-Status detail that
// names the cause (upstreamCause).
func (s *Server) upstreamFailed(key string, err error) string {
	cause := upstreamCause(err)
	host := ""
	if he := (*hopError)(nil); errors.As(err, &he) {
		host = he.kind + " " + he.host
	}
	if ok, suppressed := s.upLog.allow(host, s.now()); ok {
		s.log.Warn("upstream failed", "upstream", host, "cause", cause, "key", key, "err", err, "suppressed", suppressed)
	}
	return cause
}

// upstreamCause names the class of an upstream failure for the
// Cache-Status detail (RFC 9211 §2.8), so that what a client and an
// operator see says why, without the error's text (addresses, names of
// certificates) reaching clients:
//
//	upstream timeout          no response header in time (UpstreamTimeout)
//	upstream connect timeout  the TCP connection was not established in time
//	upstream tls: certificate verification failed
//	upstream tls: handshake failed
//	upstream refused          connection refused
//	upstream dns              the upstream's name does not resolve
//	upstream reset            the connection was reset or closed before a response
//	upstream unreachable      no route to the host or network
//	upstream protocol error   the upstream's answer is not valid HTTP
//
// Anything else stays "upstream unreachable".
func upstreamCause(err error) string {
	var (
		opErr     *net.OpError
		dnsErr    *net.DNSError
		verifyErr *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		rootsErr  x509.SystemRootsError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		netErr    net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &invalid),
		errors.As(err, &hostname), errors.As(err, &rootsErr):
		return "upstream tls: certificate verification failed"
	case errors.As(err, &dnsErr):
		return "upstream dns"
	case errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Timeout():
		return "upstream connect timeout"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "upstream timeout"
	case errors.As(err, &recordErr), errors.As(err, &alertErr),
		errors.As(err, &opErr) && opErr.Op == "remote error", // an alert from the peer
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "upstream tls: handshake failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "upstream refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "upstream unreachable"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNABORTED):
		return "upstream reset"
	case errors.Is(err, errTooManyInterim), isProtocolError(err):
		return "upstream protocol error"
	case strings.Contains(err.Error(), "tls: "):
		return "upstream tls: handshake failed"
	}
	return "upstream unreachable"
}

// isProtocolError reports a response that net/http could not parse. The
// transport returns these as plain errors with no type to match, so they
// are told by the text net/http gives them.
func isProtocolError(err error) bool {
	msg := err.Error()
	for _, m := range [...]string{"malformed HTTP", "unsupported transfer encoding", "bad Content-Length",
		"server response headers exceeded", "invalid Trailer", "too many transfer encodings"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// rateLog lets through at most one line per key every `every` (zero means
// upstreamLogEvery) and counts the ones it holds back. The zero value is
// ready to use.
type rateLog struct {
	every time.Duration
	mu    sync.Mutex
	keys  map[string]*rateKey
}

type rateKey struct {
	at         time.Time // when the last line was let through
	suppressed int       // lines held back since
}

// rateLogKeys bounds the keys remembered; past it, keys quiet for a whole
// period are forgotten (their next line is let through anyway).
const rateLogKeys = 256

// allow reports whether a line for key may be logged at now, and how many
// were held back since the last one that was.
func (l *rateLog) allow(key string, now time.Time) (ok bool, suppressed int) {
	every := l.every
	if every <= 0 {
		every = upstreamLogEvery
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*rateKey{}
	}
	k := l.keys[key]
	if k == nil {
		if len(l.keys) >= rateLogKeys {
			for kk, v := range l.keys {
				if now.Sub(v.at) >= every {
					delete(l.keys, kk)
				}
			}
		}
		l.keys[key] = &rateKey{at: now}
		return true, 0
	}
	if now.Sub(k.at) < every && !now.Before(k.at) {
		k.suppressed++
		return false, 0
	}
	suppressed = k.suppressed
	k.at, k.suppressed = now, 0
	return true, suppressed
}
