package config

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
)

// byteUnits maps an upper-cased unit suffix to its multiplier. Binary units
// (KiB, Ki) are powers of 1024; decimal units (KB, K) powers of 1000, as in
// Kubernetes quantities.
var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12, "P": 1e15, "PB": 1e15,
	"KI": 1 << 10, "KIB": 1 << 10, "MI": 1 << 20, "MIB": 1 << 20, "GI": 1 << 30, "GIB": 1 << 30,
	"TI": 1 << 40, "TIB": 1 << 40, "PI": 1 << 50, "PIB": 1 << 50,
}

var errBytes = errors.New("not a byte size such as 4MiB, 512KiB, 1GiB, 10MB or 4194304")

// ParseBytes parses a byte size: a non-negative number, optionally with a
// fraction, followed by an optional unit (B, KB, MB, GB, TB, PB for powers
// of 1000; KiB, MiB, GiB, TiB, PiB for powers of 1024; case-insensitive,
// blanks allowed before the unit). The result must be a whole number of
// bytes that fits an int64: 1.5KiB is 1536, 1.1KiB is an error.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return 0, errBytes
	}
	end := 0
	dot := false
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.' && !dot) {
		dot = dot || s[end] == '.'
		end++
	}
	num, unit := s[:end], strings.ToUpper(strings.TrimSpace(s[end:]))
	if num == "" || num[0] == '.' || num[len(num)-1] == '.' {
		return 0, errBytes
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, errors.New("unknown unit " + strconv.Quote(s[end:]) + ": use B, KB, MB, GB, KiB, MiB, GiB, TiB ...")
	}
	if !dot {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > (1<<63-1)/mult {
			return 0, errors.New("byte size " + strconv.Quote(s) + " is too large")
		}
		return n * mult, nil
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, errBytes
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, errors.New("byte size " + strconv.Quote(s) + " is not a whole number of bytes")
	}
	if !r.Num().IsInt64() {
		return 0, errors.New("byte size " + strconv.Quote(s) + " is too large")
	}
	return r.Num().Int64(), nil
}

// FormatBytes writes n with the largest unit that divides it exactly,
// preferring binary units: 4194304 → 4MiB, 10000000 → 10MB, 1500 → 1500B.
// ParseBytes(FormatBytes(n)) == n for every n ≥ 0.
func FormatBytes(n int64) string {
	if n == 0 {
		return "0"
	}
	if n < 0 {
		return strconv.FormatInt(n, 10)
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
