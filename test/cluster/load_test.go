package cluster_test

import (
	"sync"
	"time"
)

// load runs the producer and consumer goroutines of a test that kills a
// broker or a proxy under traffic, until end stops them.
type load struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func newLoad() *load { return &load{stop: make(chan struct{})} }

// paced calls send(i) every interval, with i counting from 0, in a
// goroutine of its own until the load ends or send returns false.
func (l *load) paced(interval time.Duration, send func(i int) bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		pace := time.NewTicker(interval)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-pace.C:
			}
			if !send(i) {
				return
			}
		}
	}()
}

// loop calls f over and over in a goroutine of its own until the load ends
// or f returns false.
func (l *load) loop(f func() bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			if !f() {
				return
			}
		}
	}()
}

// end stops the goroutines and waits for them; it may be called again.
func (l *load) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// countValues counts how often each value appears in m: the messages
// received per broker or per proxy.
func countValues(m map[string]string) map[string]int {
	per := map[string]int{}
	for _, v := range m {
		per[v]++
	}
	return per
}
