// Package goroutines lets a test see what every goroutine of the process is
// doing, for the waits no API shows: a call parked in a select, a goroutine
// blocked on a lock or in a WaitGroup.
package goroutines

import (
	"runtime"
	"strings"
)

// Stacks returns the stack trace of every goroutine of the process, one
// string each, in runtime.Stack's text form: a "goroutine N [state]:" line,
// then two lines per frame, function and file:line.
func Stacks() []string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}
