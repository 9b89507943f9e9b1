package machine

import "math/bits"

// hamt is a persistent (immutable) hash array mapped trie from uint64 keys
// to values: with and without return a new trie that shares every node
// they did not touch with the old one, so old snapshots never change and a
// step copies a few small nodes, not the whole set.
type hamt[V comparable] struct {
	root *hnode[V]
}

const hamtBits = 5

type hnode[V comparable] struct {
	bitmap  uint32
	entries []hentry[V] // ordered by slot
}

type hentry[V comparable] struct {
	child *hnode[V] // non-nil for an inner entry
	key   uint64
	val   V
}

func hslot(k uint64, depth uint) uint32 {
	return uint32(k>>(depth*hamtBits)) & (1<<hamtBits - 1)
}

func (h hamt[V]) get(k uint64) (V, bool) {
	n := h.root
	for depth := uint(0); n != nil; depth++ {
		bit := uint32(1) << hslot(k, depth)
		if n.bitmap&bit == 0 {
			break
		}
		e := n.entries[bits.OnesCount32(n.bitmap&(bit-1))]
		if e.child == nil {
			if e.key == k {
				return e.val, true
			}
			break
		}
		n = e.child
	}
	var zero V
	return zero, false
}

// with returns the trie with k mapped to v, and whether k is new.
func (h hamt[V]) with(k uint64, v V) (hamt[V], bool) {
	root, added := hinsert(h.root, k, v, 0)
	return hamt[V]{root}, added
}

func hinsert[V comparable](n *hnode[V], k uint64, v V, depth uint) (*hnode[V], bool) {
	if n == nil {
		return &hnode[V]{bitmap: 1 << hslot(k, depth), entries: []hentry[V]{{key: k, val: v}}}, true
	}
	bit := uint32(1) << hslot(k, depth)
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	c := &hnode[V]{bitmap: n.bitmap}
	if n.bitmap&bit == 0 {
		c.bitmap |= bit
		c.entries = make([]hentry[V], 0, len(n.entries)+1)
		c.entries = append(c.entries, n.entries[:i]...)
		c.entries = append(c.entries, hentry[V]{key: k, val: v})
		c.entries = append(c.entries, n.entries[i:]...)
		return c, true
	}
	c.entries = append([]hentry[V](nil), n.entries...)
	e := c.entries[i]
	switch {
	case e.child != nil:
		child, added := hinsert(e.child, k, v, depth+1)
		c.entries[i] = hentry[V]{child: child}
		return c, added
	case e.key == k:
		c.entries[i].val = v
		return c, false
	default: // two keys share this slot: push the old one down a level
		child, _ := hinsert(nil, e.key, e.val, depth+1)
		child, _ = hinsert(child, k, v, depth+1)
		c.entries[i] = hentry[V]{child: child}
		return c, true
	}
}

// without returns the trie without k, and whether k was there.
func (h hamt[V]) without(k uint64) (hamt[V], bool) {
	root, removed := hremove(h.root, k, 0)
	if !removed {
		return h, false
	}
	return hamt[V]{root}, true
}

func hremove[V comparable](n *hnode[V], k uint64, depth uint) (*hnode[V], bool) {
	if n == nil {
		return nil, false
	}
	bit := uint32(1) << hslot(k, depth)
	if n.bitmap&bit == 0 {
		return n, false
	}
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	e := n.entries[i]
	if e.child == nil && e.key != k {
		return n, false
	}
	var child *hnode[V]
	if e.child != nil {
		var removed bool
		if child, removed = hremove(e.child, k, depth+1); !removed {
			return n, false
		}
	}
	c := &hnode[V]{bitmap: n.bitmap, entries: append([]hentry[V](nil), n.entries...)}
	if child != nil {
		c.entries[i] = hentry[V]{child: child}
		return c, true
	}
	c.bitmap &^= bit
	c.entries = append(c.entries[:i], c.entries[i+1:]...)
	if c.bitmap == 0 {
		return nil, true
	}
	return c, true
}

// each calls f for every entry, in an order fixed by the keys.
func (h hamt[V]) each(f func(uint64, V)) { heach(h.root, f) }

func heach[V comparable](n *hnode[V], f func(uint64, V)) {
	if n == nil {
		return
	}
	for _, e := range n.entries {
		if e.child != nil {
			heach(e.child, f)
			continue
		}
		f(e.key, e.val)
	}
}
