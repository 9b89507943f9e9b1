package machine

import (
	"math/bits"

	"github.com/mcpauth/mcpauth/effects"
)

// RequestInfo is what the machine remembers about one protected request in
// flight. The zero value is a request that simply passed through.
type RequestInfo struct {
	Parked  bool // waiting for the running attempt
	StepUps int  // re-authorizations for more scope (MCP step-up limit)
	Resends int  // re-sends after a new credential
	// Unauthorized marks a parked request whose last answer was a 401 or
	// 403: when the attempt fails it gets the attempt's error.
	Unauthorized bool
	// Foreign marks a request to another origin than the protected
	// resource: it never carries a credential and its answer is delivered
	// as it is.
	Foreign bool
	// NonceRetried marks a request re-sent once for a DPoP nonce.
	NonceRetried bool
}

// Requests is the set of protected requests in flight, persistent
// (immutable): With and Without return a new set sharing almost everything
// with the old one, so Step stays pure without copying every request.
//
// Most requests pass straight through and need nothing remembered but that
// they are in flight: those are bits in blocks of 512 ids. Only requests
// with something to remember (parked, stepped up, re-sent) have an entry in
// a second trie. So a step costs about the same with one request in flight
// or a hundred thousand, as long as those are passing through.
type Requests struct {
	live hamt[*liveBlock] // id / blockSize → the block's bits
	// The block new requests go to is kept out of the trie while it is
	// hot: ids are handed out in order, so requests start there and most
	// end there, and updating it copies 64 bytes instead of a trie path.
	// The trie's entry for hotKey, if any, is stale.
	hot    *liveBlock
	hotKey uint64
	extra  hamt[RequestInfo]
	n      int
	parked int // kept by With and Without, which see every change of Parked
}

const blockSize = 512

type liveBlock [blockSize / 64]uint64

func blockOf(id effects.RequestID) (key uint64, word int, bit uint64) {
	return uint64(id) / blockSize, int(uint64(id) % blockSize / 64), 1 << (uint64(id) % 64)
}

// Len is the number of requests in flight.
func (r Requests) Len() int { return r.n }

// Parked is the number of requests in flight that wait for an attempt.
func (r Requests) Parked() int { return r.parked }

func (r Requests) live1(id effects.RequestID) bool {
	key, w, bit := blockOf(id)
	b, ok := r.block(key)
	return ok && b[w]&bit != 0
}

// block returns the bits of block key.
func (r Requests) block(key uint64) (*liveBlock, bool) {
	if r.hot != nil && key == r.hotKey {
		return r.hot, true
	}
	return r.live.get(key)
}

// setBlock stores block key. New requests make their block the hot one,
// putting the previous hot block into the trie; others update the trie.
func (r Requests) setBlock(key uint64, b *liveBlock, adding bool) Requests {
	switch {
	case r.hot != nil && key == r.hotKey:
		r.hot = b
	case adding:
		r = r.flushHot()
		r.hot, r.hotKey = b, key
	case *b == (liveBlock{}):
		r.live, _ = r.live.without(key)
	default:
		r.live, _ = r.live.with(key, b)
	}
	return r
}

// flushHot puts the hot block into the trie.
func (r Requests) flushHot() Requests {
	if r.hot == nil {
		return r
	}
	if *r.hot == (liveBlock{}) {
		r.live, _ = r.live.without(r.hotKey)
	} else {
		r.live, _ = r.live.with(r.hotKey, r.hot)
	}
	r.hot = nil
	return r
}

// Get returns the request's info and whether it is in flight.
func (r Requests) Get(id effects.RequestID) (RequestInfo, bool) {
	if !r.live1(id) {
		return RequestInfo{}, false
	}
	info, _ := r.extra.get(uint64(id))
	return info, true
}

// With returns the set with id mapped to info (added or replaced).
func (r Requests) With(id effects.RequestID, info RequestInfo) Requests {
	old, live := r.Get(id)
	if old.Parked {
		r.parked--
	}
	if info.Parked {
		r.parked++
	}
	if !live {
		key, w, bit := blockOf(id)
		b := new(liveBlock)
		if old, ok := r.block(key); ok {
			*b = *old
		}
		b[w] |= bit
		r = r.setBlock(key, b, true)
		r.n++
	}
	if info == (RequestInfo{}) {
		r.extra, _ = r.extra.without(uint64(id))
	} else {
		r.extra, _ = r.extra.with(uint64(id), info)
	}
	return r
}

// Without returns the set without id.
func (r Requests) Without(id effects.RequestID) Requests {
	info, live := r.Get(id)
	if !live {
		return r
	}
	if info.Parked {
		r.parked--
	}
	key, w, bit := blockOf(id)
	old, _ := r.block(key)
	b := *old
	b[w] &^= bit
	r = r.setBlock(key, &b, false)
	r.extra, _ = r.extra.without(uint64(id))
	r.n--
	return r
}

// Each calls f for every request in flight, in an order fixed by the ids.
func (r Requests) Each(f func(effects.RequestID, RequestInfo)) {
	r = r.flushHot()
	r.live.each(func(key uint64, b *liveBlock) {
		for w, word := range b {
			for word != 0 {
				low := word & -word
				word &^= low
				id := effects.RequestID(key*blockSize + uint64(w)*64 + uint64(bits.TrailingZeros64(low)))
				info, _ := r.extra.get(uint64(id))
				f(id, info)
			}
		}
	})
}

// EachRemembered calls f for every request with something remembered
// (parked ones among them), in an order fixed by the ids: releasing the
// parked requests costs what they cost, not what the others in flight do.
func (r Requests) EachRemembered(f func(effects.RequestID, RequestInfo)) {
	r.extra.each(func(k uint64, info RequestInfo) { f(effects.RequestID(k), info) })
}

// Map returns the requests as a plain map, for tests and traces.
func (r Requests) Map() map[effects.RequestID]RequestInfo {
	m := make(map[effects.RequestID]RequestInfo, r.n)
	r.Each(func(id effects.RequestID, info RequestInfo) { m[id] = info })
	return m
}

// Equal lets go-cmp compare sets by content rather than by trie shape.
func (r Requests) Equal(o Requests) bool {
	if r.n != o.n {
		return false
	}
	same := true
	r.Each(func(id effects.RequestID, info RequestInfo) {
		if other, ok := o.Get(id); !ok || other != info {
			same = false
		}
	})
	return same
}
