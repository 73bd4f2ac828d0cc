package localbroker

import (
	"math/bits"
)

// ackChunkBits is how many queue offsets one chunk of an ackSet covers.
const ackChunkBits = 4096

type ackChunk struct {
	w [ackChunkBits / 64]uint64
	n int // bits set
}

// fullAckChunk stands for every chunk whose offsets are all set; it is
// shared and never written.
var fullAckChunk = func() *ackChunk {
	c := &ackChunk{n: ackChunkBits}
	for i := range c.w {
		c.w[i] = ^uint64(0)
	}
	return c
}()

// ackSet is the set of acked offsets of a consumer state above its floor: a
// bitmap in chunks of ackChunkBits offsets. A chunk with no offset set is
// nil and a chunk with every offset set is fullAckChunk, so the set costs 8
// bytes per chunk between the floor and the highest acked offset plus 520
// bytes per chunk that mixes acked and unacked offsets: one message held
// while a million after it are acked costs about 2 KB, where a map cost
// about 66 bytes per acked offset.
//
// Offsets below the floor may stay set in the first chunk; callers only ask
// about offsets at or above the floor they pass to trim.
type ackSet struct {
	base   int64 // first offset of chunks[0], a multiple of ackChunkBits
	chunks []*ackChunk
}

func (s *ackSet) locate(off int64) (int, int) {
	d := off - s.base
	return int(d / ackChunkBits), int(d % ackChunkBits)
}

// has reports whether off (at or above the trim point) is in the set.
func (s *ackSet) has(off int64) bool {
	if off < s.base {
		return false
	}
	i, b := s.locate(off)
	if i >= len(s.chunks) || s.chunks[i] == nil {
		return false
	}
	return s.chunks[i].w[b/64]&(1<<(b%64)) != 0
}

// add puts off (at or above the trim point) in the set.
func (s *ackSet) add(off int64) {
	s.cover(off)
	i, b := s.locate(off)
	for len(s.chunks) <= i {
		s.chunks = append(s.chunks, nil)
	}
	c := s.chunks[i]
	switch {
	case c == fullAckChunk:
		return
	case c == nil:
		c = &ackChunk{}
		s.chunks[i] = c
	}
	m := uint64(1) << (b % 64)
	if c.w[b/64]&m != 0 {
		return
	}
	c.w[b/64] |= m
	if c.n++; c.n == ackChunkBits {
		s.chunks[i] = fullAckChunk
	}
}

// cover makes the chunks start at or below off.
func (s *ackSet) cover(off int64) {
	start := off - off%ackChunkBits
	switch {
	case len(s.chunks) == 0:
		s.base = start
	case start < s.base:
		k := int((s.base - start) / ackChunkBits)
		s.chunks = append(make([]*ackChunk, k, k+len(s.chunks)), s.chunks...)
		s.base = start
	}
}

// addRange puts [from, to) in the set; whole chunks become fullAckChunk
// without being filled bit by bit.
func (s *ackSet) addRange(from, to int64) {
	for from < to {
		s.cover(from)
		i, b := s.locate(from)
		if b == 0 && to-from >= ackChunkBits {
			for len(s.chunks) <= i {
				s.chunks = append(s.chunks, nil)
			}
			s.chunks[i] = fullAckChunk
			from += ackChunkBits
			continue
		}
		s.add(from)
		from++
	}
}

// next returns the first offset in [from, limit) whose membership is want,
// or limit.
func (s *ackSet) next(from, limit int64, want bool) int64 {
	if from < s.base {
		if want {
			from = s.base
		} else {
			return from
		}
	}
	for from < limit {
		i, b := s.locate(from)
		if i >= len(s.chunks) {
			if want {
				return limit
			}
			return from
		}
		c := s.chunks[i]
		chunkEnd := from - int64(b) + ackChunkBits
		if (c == nil && !want) || (c == fullAckChunk && want) {
			return from
		}
		if c == nil || c == fullAckChunk {
			from = chunkEnd
			continue
		}
		for wi := b / 64; wi < len(c.w) && from < limit; wi++ {
			w := c.w[wi]
			if !want {
				w = ^w
			}
			w >>= uint(b % 64)
			if w != 0 {
				return min(from+int64(bits.TrailingZeros64(w)), limit)
			}
			from += int64(64 - b%64)
			b = 0
		}
		from = max(from, chunkEnd)
	}
	return limit
}

// count returns how many offsets of [from, to) are in the set: a whole
// chunk costs its count, a partial one a popcount of its words.
func (s *ackSet) count(from, to int64) int64 {
	from = max(from, s.base)
	var n int64
	for from < to {
		i, b := s.locate(from)
		if i >= len(s.chunks) {
			break
		}
		chunkEnd := from - int64(b) + ackChunkBits
		end := min(to, chunkEnd)
		switch c := s.chunks[i]; {
		case c == nil:
		case b == 0 && end == chunkEnd:
			n += int64(c.n)
		default:
			for off := from; off < end; {
				wb := int(off-s.base) % ackChunkBits
				w := c.w[wb/64] >> uint(wb%64)
				bitsLeft := min(int64(64-wb%64), end-off)
				if bitsLeft < 64 {
					w &= (uint64(1) << uint(bitsLeft)) - 1
				}
				n += int64(bits.OnesCount64(w))
				off += bitsLeft
			}
		}
		from = chunkEnd
	}
	return n
}

// trim forgets the chunks that lie wholly below floor.
func (s *ackSet) trim(floor int64) {
	k := int((floor - s.base) / ackChunkBits)
	if k <= 0 {
		return
	}
	if k >= len(s.chunks) {
		s.chunks, s.base = nil, 0
		return
	}
	clear(s.chunks[:k])
	s.chunks = s.chunks[k:]
	s.base += int64(k) * ackChunkBits
}

// ranges returns the set's offsets in [from, to) as half-open ranges.
func (s *ackSet) ranges(from, to int64) []offRange {
	var out []offRange
	for from < to {
		a := s.next(from, to, true)
		if a >= to {
			break
		}
		b := s.next(a, to, false)
		out = append(out, offRange{a, b})
		from = b
	}
	return out
}

// memBytes estimates the memory the set holds.
func (s *ackSet) memBytes() int {
	n := 8 * cap(s.chunks)
	for _, c := range s.chunks {
		if c != nil && c != fullAckChunk {
			n += int(8*len(c.w)) + 8
		}
	}
	return n
}

// offRange is the half-open range of queue offsets [from, to).
type offRange struct{ from, to int64 }
