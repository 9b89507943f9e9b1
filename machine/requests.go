package machine

import (
	"math/bits"

	"github.com/mcpauth/mcpauth/effects"
)

// RequestInfo is what the machine remembers about one protected request in
// flight.
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
	// Method and URL are kept for DPoP proofs (htm, htu).
	Method, URL string
	// NonceRetried marks a request re-sent once for a DPoP nonce.
	NonceRetried bool
}

// Requests is the set of protected requests in flight, as a persistent
// (immutable) hash trie: With and Without return a new set sharing all
// untouched nodes with the old one. That keeps Step pure without copying
// every request on every step, so a step costs the same with one request in
// flight or a hundred thousand.
type Requests struct {
	root *trieNode
	n    int
}

const trieBits = 5 // 32-way nodes

type trieNode struct {
	bitmap  uint32
	entries []trieEntry // ordered by slot
}

type trieEntry struct {
	child *trieNode // non-nil for an inner entry
	id    effects.RequestID
	info  RequestInfo
}

func slot(id effects.RequestID, depth uint) uint32 {
	return uint32(uint64(id)>>(depth*trieBits)) & (1<<trieBits - 1)
}

// Len is the number of requests in flight.
func (r Requests) Len() int { return r.n }

// Get returns the request's info and whether it is in flight.
func (r Requests) Get(id effects.RequestID) (RequestInfo, bool) {
	n := r.root
	for depth := uint(0); n != nil; depth++ {
		bit := uint32(1) << slot(id, depth)
		if n.bitmap&bit == 0 {
			return RequestInfo{}, false
		}
		e := n.entries[bits.OnesCount32(n.bitmap&(bit-1))]
		if e.child == nil {
			return e.info, e.id == id
		}
		n = e.child
	}
	return RequestInfo{}, false
}

// With returns the set with id mapped to info (added or replaced).
func (r Requests) With(id effects.RequestID, info RequestInfo) Requests {
	root, added := insert(r.root, id, info, 0)
	if added {
		r.n++
	}
	r.root = root
	return r
}

func insert(n *trieNode, id effects.RequestID, info RequestInfo, depth uint) (*trieNode, bool) {
	if n == nil {
		return &trieNode{bitmap: 1 << slot(id, depth), entries: []trieEntry{{id: id, info: info}}}, true
	}
	bit := uint32(1) << slot(id, depth)
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	c := &trieNode{bitmap: n.bitmap}
	if n.bitmap&bit == 0 {
		c.bitmap |= bit
		c.entries = make([]trieEntry, 0, len(n.entries)+1)
		c.entries = append(c.entries, n.entries[:i]...)
		c.entries = append(c.entries, trieEntry{id: id, info: info})
		c.entries = append(c.entries, n.entries[i:]...)
		return c, true
	}
	c.entries = append([]trieEntry(nil), n.entries...)
	e := c.entries[i]
	switch {
	case e.child != nil:
		child, added := insert(e.child, id, info, depth+1)
		c.entries[i] = trieEntry{child: child}
		return c, added
	case e.id == id:
		c.entries[i].info = info
		return c, false
	default: // two ids share this slot: push the old one down a level
		child, _ := insert(nil, e.id, e.info, depth+1)
		child, _ = insert(child, id, info, depth+1)
		c.entries[i] = trieEntry{child: child}
		return c, true
	}
}

// Without returns the set without id.
func (r Requests) Without(id effects.RequestID) Requests {
	root, removed := remove(r.root, id, 0)
	if removed {
		r.n--
		r.root = root
	}
	return r
}

func remove(n *trieNode, id effects.RequestID, depth uint) (*trieNode, bool) {
	if n == nil {
		return nil, false
	}
	bit := uint32(1) << slot(id, depth)
	if n.bitmap&bit == 0 {
		return n, false
	}
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	e := n.entries[i]
	if e.child != nil {
		child, removed := remove(e.child, id, depth+1)
		if !removed {
			return n, false
		}
		c := &trieNode{bitmap: n.bitmap, entries: append([]trieEntry(nil), n.entries...)}
		if child == nil {
			return c.drop(i, bit), true
		}
		c.entries[i] = trieEntry{child: child}
		return c, true
	}
	if e.id != id {
		return n, false
	}
	c := &trieNode{bitmap: n.bitmap, entries: append([]trieEntry(nil), n.entries...)}
	return c.drop(i, bit), true
}

// drop removes entry i of a node the caller owns; an empty node is nil.
func (n *trieNode) drop(i int, bit uint32) *trieNode {
	n.bitmap &^= bit
	n.entries = append(n.entries[:i], n.entries[i+1:]...)
	if n.bitmap == 0 {
		return nil
	}
	return n
}

// Each calls f for every request in flight, in an order fixed by the ids.
func (r Requests) Each(f func(effects.RequestID, RequestInfo)) {
	each(r.root, f)
}

func each(n *trieNode, f func(effects.RequestID, RequestInfo)) {
	if n == nil {
		return
	}
	for _, e := range n.entries {
		if e.child != nil {
			each(e.child, f)
			continue
		}
		f(e.id, e.info)
	}
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
