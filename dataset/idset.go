package dataset

// idSet is an open-addressing hash set of 8-byte hashes: about 11–21 bytes
// per id, half what a Go map needs.
type idSet struct {
	slots []uint64 // 0 marks an empty slot
	n     int
}

// add inserts h and reports whether it was already present.
func (s *idSet) add(h uint64) bool {
	if h == 0 {
		h = 1 // 0 marks empty slots
	}
	if 4*(s.n+1) > 3*len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return true
		case 0:
			s.slots[i] = h
			s.n++
			return false
		}
	}
}

func (s *idSet) grow() {
	old := s.slots
	s.slots = make([]uint64, max(1024, 2*len(old)))
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}

// len returns the number of ids in the set.
func (s *idSet) len() int { return s.n }
