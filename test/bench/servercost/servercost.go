// Package servercost reads what a server process spends, from outside it:
// its CPU time from /proc/<pid>/stat and, for a Go server that serves
// net/http/pprof (rmqproxy with health.pprof on), its heap allocation
// counters. The load generator and the benchmarks divide the differences by
// the messages handled in between.
package servercost

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// UserHZ is the unit of the utime and stime fields of /proc/<pid>/stat
// (USER_HZ, 100 on Linux; getconf CLK_TCK prints it).
const UserHZ = 100

// CPU returns the user+system CPU seconds process pid has used so far,
// counting every thread.
func CPU(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at ")".
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// utime and stime are fields 14 and 15 of proc(5); the slice starts at 3.
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + st) / UserHZ, nil
}

// RSSMiB returns the resident set size of process pid in MiB (0 if it
// cannot be read).
func RSSMiB(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// Heap is a Go process's cumulative heap allocation counters.
type Heap struct {
	Mallocs    uint64 // objects allocated
	TotalAlloc uint64 // bytes allocated
}

// ReadHeap reads the Mallocs and TotalAlloc lines of the
// /debug/pprof/heap?debug=1 page under base (http://host:port/debug/pprof).
func ReadHeap(base string) (Heap, error) {
	var h Heap
	resp, err := http.Get(strings.TrimSuffix(base, "/") + "/heap?debug=1")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return h, err
	}
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("%s: %s (is pprof on? rmqproxy: --health.pprof=true)", base, resp.Status)
	}
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		var dst *uint64
		v, ok := strings.CutPrefix(line, "# Mallocs = ")
		if ok {
			dst = &h.Mallocs
		} else if v, ok = strings.CutPrefix(line, "# TotalAlloc = "); ok {
			dst = &h.TotalAlloc
		} else {
			continue
		}
		if *dst, err = strconv.ParseUint(v, 10, 64); err != nil {
			return h, fmt.Errorf("%s: %w", base, err)
		}
		found++
	}
	if found != 2 {
		return h, fmt.Errorf("%s: the heap page has no Mallocs and TotalAlloc lines", base)
	}
	return h, nil
}

// SaveAllocsProfile writes the /debug/pprof/allocs profile under base to
// path, as of a garbage collection.
// Two of them, taken before and after a run, give that run's
// allocation sites:
//
//	go tool pprof -sample_index=alloc_objects -diff_base before after
func SaveAllocsProfile(base, path string) error {
	// The profile a collection publishes lags by a cycle: the second one
	// covers what was allocated before the first.
	var b []byte
	for range 2 {
		resp, err := http.Get(strings.TrimSuffix(base, "/") + "/allocs?gc=1")
		if err != nil {
			return err
		}
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s (is pprof on? rmqproxy: --health.pprof=true)", base, resp.Status)
		}
	}
	return os.WriteFile(path, b, 0o644)
}
