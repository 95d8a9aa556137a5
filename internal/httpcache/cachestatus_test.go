package httpcache

import (
	"testing"
	"time"
)

func TestCacheStatusString(t *testing.T) {
	tests := []struct {
		c    CacheStatus
		want string
	}{
		{CacheStatus{Cache: "kubecdn", Hit: true, TTL: 30 * time.Second, HasTTL: true}, "kubecdn; hit; ttl=30"},
		{CacheStatus{Cache: "kubecdn", Fwd: "uri-miss", FwdStatus: 200, Stored: true}, "kubecdn; fwd=uri-miss; fwd-status=200; stored"},
		{CacheStatus{Cache: "kubecdn", Fwd: "stale", FwdStatus: 304, Detail: "revalidated"}, "kubecdn; fwd=stale; fwd-status=304; detail=revalidated"},
		{CacheStatus{Cache: "kubecdn", Hit: true, TTL: -1500 * time.Millisecond, HasTTL: true, Detail: "stale-while-revalidate"}, "kubecdn; hit; ttl=-1; detail=stale-while-revalidate"},
		{CacheStatus{Cache: "kubecdn", Fwd: "miss", Collapsed: true, Key: `http://a/"b"`}, `kubecdn; fwd=miss; collapsed; key="http://a/\"b\""`},
		{CacheStatus{Cache: "edge 1", Hit: true, Detail: "two words\x01"}, `"edge 1"; hit; detail="two words"`},
		{CacheStatus{Cache: "kubecdn", Hit: true, TTL: 0, HasTTL: true}, "kubecdn; hit; ttl=0"},
		{CacheStatus{Cache: "kubecdn", Fwd: "bad value"}, "kubecdn"},
		{CacheStatus{}, `""`},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestDecisionString(t *testing.T) {
	for d, want := range map[Decision]string{Fresh: "fresh", Revalidate: "revalidate", ServeStale: "serve-stale", Decision(9): "unknown"} {
		if d.String() != want {
			t.Errorf("%d.String() = %q, want %q", d, d.String(), want)
		}
	}
}
