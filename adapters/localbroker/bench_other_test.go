//go:build !linux

package localbroker

import "time"

// vmRSSMB is unknown off Linux.
func vmRSSMB() float64 { return -1 }

// processCPU is unknown off Linux.
func processCPU() time.Duration { return 0 }
