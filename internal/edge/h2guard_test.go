package edge

import (
	"testing"
	"time"
)

// TestResetBudget: a connection may reset a burst of streams early, then
// only as many as the rate refills.
func TestResetBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name     string
		resets   int           // early resets spent at once, from t0
		then     time.Duration // one more reset this long after t0
		overThen bool
	}{
		{"within the burst", h2ResetBurst - 1, 0, false},
		{"burst spent", h2ResetBurst, 0, true},
		{"burst spent, refilled by the rate", h2ResetBurst, time.Second / h2ResetRate, false},
		{"burst spent, not yet refilled", h2ResetBurst, time.Second / h2ResetRate / 2, true},
		{"clock going back refills nothing", h2ResetBurst, -time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newResetBudget(t0)
			for i := range tt.resets {
				if b.spend(t0) {
					t.Fatalf("reset %d over the budget", i)
				}
			}
			if got := b.spend(t0.Add(tt.then)); got != tt.overThen {
				t.Fatalf("one more reset at +%v: over = %v, want %v", tt.then, got, tt.overThen)
			}
		})
	}
	// A long quiet spell refills no more than the burst.
	b := newResetBudget(t0)
	b.spend(t0.Add(24 * time.Hour))
	if b.tokens > h2ResetBurst {
		t.Fatalf("tokens %v above the burst %d", b.tokens, h2ResetBurst)
	}
}
