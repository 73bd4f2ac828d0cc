package domain

// JavaStringHash is Java's String.hashCode over the UTF-16 code units of s.
// FIFO queue selection must use it so that rmqproxy and Java proxies behind
// one load balancer send a message group to the same queue.
func JavaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// ConsistentHash is Guava's Hashing.consistentHash(long, int): it assigns
// input to a bucket in [0, buckets) so that growing the bucket count moves
// as few inputs as possible. buckets must be positive.
func ConsistentHash(input int64, buckets int) int {
	if buckets <= 0 {
		return 0
	}
	state := uint64(input)
	candidate := 0
	for {
		state = 2862933555777941757*state + 1
		next := float64(int32(state>>33)+1) / float64(1<<31)
		n := int(float64(candidate+1) / next)
		if n >= 0 && n < buckets {
			candidate = n
		} else {
			return candidate
		}
	}
}

// FIFOQueueIndex picks the index, among n writable queues sorted by (broker
// name, queue id), that a message group is sent to, as the Apache proxy does.
func FIFOQueueIndex(group string, n int) int {
	return ConsistentHash(int64(JavaStringHash(group)), n)
}
