package gslb

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// rrl is response rate limiting (after BIND's and Knot's RRL): identical
// UDP responses to one client network (/24, IPv6 /56) are limited to a rate
// per second with a burst of one second; over the limit every slip-th
// response is sent truncated (so real clients retry over TCP) and the rest
// are dropped.
type rrl struct {
	rate float64
	slip int
	now  func() time.Time
	seed maphash.Seed

	shards [16]rrlShard
}

type rrlShard struct {
	mu sync.Mutex
	m  map[uint64]*bucket
}

type bucket struct {
	tokens  float64
	last    time.Time
	limited int
}

type rrlAction int

const (
	rrlSend rrlAction = iota
	rrlDrop
	rrlSlip
)

const rrlShardMax = 1 << 14

func newRRL(rate float64, slip int, now func() time.Time) *rrl {
	r := &rrl{rate: rate, slip: slip, now: now, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = map[uint64]*bucket{}
	}
	return r
}

// check accounts one response of kind (answer name and type, or the zone
// for negative answers and errors) to the client and says what to do.
func (r *rrl) check(client netip.Addr, kind string, qtype uint16, rcode int) rrlAction {
	bits := 56
	if client.Is4() {
		bits = 24
	}
	p, _ := client.Prefix(bits)
	var h maphash.Hash
	h.SetSeed(r.seed)
	b := p.Addr().As16()
	h.Write(b[:])
	h.WriteString(kind)
	h.WriteByte(byte(qtype >> 8))
	h.WriteByte(byte(qtype))
	h.WriteByte(byte(rcode))
	key := h.Sum64()
	sh := &r.shards[key%uint64(len(r.shards))]
	now := r.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	bk := sh.m[key]
	if bk == nil {
		if len(sh.m) >= rrlShardMax {
			for k, v := range sh.m { // evict buckets that have refilled
				if now.Sub(v.last).Seconds()*r.rate >= r.rate {
					delete(sh.m, k)
				}
			}
		}
		bk = &bucket{tokens: max(r.rate, 1), last: now}
		sh.m[key] = bk
	}
	bk.tokens = min(max(r.rate, 1), bk.tokens+now.Sub(bk.last).Seconds()*r.rate)
	bk.last = now
	if bk.tokens >= 1 {
		bk.tokens--
		return rrlSend
	}
	bk.limited++
	if r.slip > 0 && bk.limited%r.slip == 0 {
		return rrlSlip
	}
	return rrlDrop
}
