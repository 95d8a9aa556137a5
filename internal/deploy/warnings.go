package deploy

import (
	"context"
	"slices"
	"sync"

	"k8s.io/client-go/rest"
)

// warningLog keeps the warnings an API server sends with its answers
// (deprecated kinds in the user's apps, unknown fields), each once, so the
// region's own lines can show them: client-go's default handler writes them
// to klog, which kubecdn turns off.
type warningLog struct {
	mu   sync.Mutex
	seen map[string]bool
	new  []string
}

var _ rest.WarningHandlerWithContext = (*warningLog)(nil)

// HandleWarningHeaderWithContext keeps a warning (code 299, as RFC 7234
// and Kubernetes use) not kept before.
func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	if !w.seen[text] {
		w.seen[text] = true
		w.new = append(w.new, text)
	}
}

// take returns the warnings kept since the last take.
func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.new)
	w.new = nil
	return out
}
