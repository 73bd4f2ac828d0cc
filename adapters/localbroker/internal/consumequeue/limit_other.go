//go:build !unix

package consumequeue

// processFileLimit is a fixed guess where the limit cannot be read.
func processFileLimit() int { return 1 << 14 }
