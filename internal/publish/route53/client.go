package route53

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// limiter spaces requests at least interval apart (a token bucket of
// size one): Route 53 allows five requests per second per account.
type limiter struct {
	interval time.Duration
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error

	mu   sync.Mutex
	next time.Time
}

func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := l.now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		return l.sleep(ctx, d)
	}
	return ctx.Err()
}

// retryable reports whether err is worth another attempt: Route 53's
// throttling and "prior request not complete", a server error, or a
// request that never got an answer.
func retryable(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "Throttling", "ThrottlingException", "RequestThrottled", "PriorRequestNotComplete":
			return true
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	var se *smithyhttp.RequestSendError
	return errors.As(err, &se)
}

// call runs one API request under the rate limit, retrying what is
// retryable with exponential backoff, at most p.maxAttempts times.
func call[T any](ctx context.Context, p *Publisher, action string, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	backoff := p.retryBase
	for attempt := 1; ; attempt++ {
		if err := p.lim.wait(ctx); err != nil {
			return zero, fmt.Errorf("route53 %s: %w", action, err)
		}
		out, err := fn(ctx)
		if err == nil {
			return out, nil
		}
		if !retryable(err) || attempt >= p.maxAttempts || ctx.Err() != nil {
			if attempt > 1 {
				return zero, fmt.Errorf("route53 %s (after %d attempts): %w", action, attempt, err)
			}
			return zero, fmt.Errorf("route53 %s: %w", action, err)
		}
		p.log.Debug("route53 request retried", "action", action, "attempt", attempt, "backoff", backoff, "err", err)
		if err := p.sleep(ctx, backoff); err != nil {
			return zero, fmt.Errorf("route53 %s: %w", action, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

const maxBackoff = 20 * time.Second
