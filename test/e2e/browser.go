package e2e

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of Debian's chromium; without it the test is
// skipped, except when CI=true.
func Chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (apt-get install -y chromium)")
	}
	t.Skip("chromium not found (apt-get install -y chromium); set CI=true to fail instead")
	return ""
}

// StartBrowser starts headless Chromium at bin, driven by chromedp over
// the DevTools protocol, with extra flags added, and returns a context for
// chromedp.Run on its one 1400×900 page. The browser is closed when the
// test ends (chromedp then removes its temporary profile, retrying while
// Chromium's helper processes still write there).
func StartBrowser(t *testing.T, bin string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true), chromedp.WindowSize(1400, 900))
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close the browser politely, then make sure it is gone.
		done := make(chan struct{})
		go func() { cancel(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		cancelAlloc()
	})
	// The first Run starts the browser and ties its life to the context it
	// is given, so it gets ctx itself; the timer bounds the start.
	stop := time.AfterFunc(30*time.Second, cancel)
	err := chromedp.Do(ctx, chromedp.EmulateViewport(1400, 900))
	if !stop.Stop() || err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}
