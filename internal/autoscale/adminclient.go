package autoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kubecdn/kubecdn/internal/bearer"
)

// AdminClient makes the autoscaler's calls to admin listeners (the dns's
// demand and drain switch, the edges' demand, hot keys and warming): JSON
// in and out, the bearer token, a bounded answer. The caller's context
// bounds each call.
type AdminClient struct {
	Client *http.Client
	// Token is the admin bearer token; empty sends none (a transport that
	// adds each region's own, as kubeops's does).
	Token string
	// Limit bounds what is read of an answer; if zero, 1 MiB.
	Limit int64
}

// Do sends one request (body as JSON, if not nil) and decodes a 200
// answer into out. Errors do not repeat the URL: the caller names the
// listener.
func (a AdminClient) Do(ctx context.Context, method, target string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	bearer.Set(req, a.Token)
	resp, err := a.Client.Do(req)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	limit := a.Limit
	if limit <= 0 {
		limit = maxAdminBody
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}
