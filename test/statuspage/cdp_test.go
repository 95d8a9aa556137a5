package statuspage_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// startBrowser starts headless Chromium at bin, driven by chromedp over the
// DevTools protocol, and returns a context for chromedp.Run on its one
// 1400×900 page. The test needs a DevTools client because
// --virtual-time-budget never ends while a page holds an EventSource open,
// and --dump-dom alone races the first event. The browser is closed when the
// test ends (chromedp then removes its temporary profile, retrying while
// Chromium's helper processes still write there).
func startBrowser(t *testing.T, bin string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true), chromedp.WindowSize(1400, 900))
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
