package remoting

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"log/slog"
	"slices"
	"strings"
	"unicode/utf8"
)

// Ext field keys of classic ACL signing.
const (
	FieldAccessKey     = "AccessKey"
	FieldSignature     = "Signature"
	FieldSecurityToken = "SecurityToken"
)

// Credentials sign requests for an ACL-enabled cluster (classic ACL
// signing, still what ACL 2.0 brokers verify). SecretKey never appears in
// logs.
type Credentials struct {
	AccessKey     string
	SecretKey     string
	SecurityToken string // optional (STS)
}

// LogValue keeps the secret out of logs.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key", c.AccessKey), slog.String("secret_key", "REDACTED"))
}

// Sign sets AccessKey (and SecurityToken when configured) on cmd and then
// its Signature, as upstream's AclClientRPCHook does: HMAC-SHA1 keyed with
// the secret over the values of every other ext field sorted by key (Java
// String order), followed by the body, in base64. Sign must be the last
// change to the fields: changing any field afterwards invalidates it.
func (c Credentials) Sign(cmd *Command) {
	cmd.Fields.Set(FieldAccessKey, c.AccessKey)
	if c.SecurityToken != "" {
		cmd.Fields.Set(FieldSecurityToken, c.SecurityToken)
	}
	cmd.Fields.Set(FieldSignature, Signature(cmd.Fields, cmd.Body, c.SecretKey))
}

// Signature computes the classic ACL signature of fields (Signature itself
// excluded; of duplicate keys the last counts) and body with secretKey.
// It takes O(n log n) time in the number of fields.
func Signature(fields Fields, body []byte, secretKey string) string {
	idx := signedOrder(fields, func(key string) bool { return key == FieldSignature }, javaOrder)
	mac := hmac.New(sha1.New, []byte(secretKey))
	mac.Write(appendSigned(nil, fields, idx, body))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signedOrder returns the indices of the fields whose values are signed,
// in signing order: every field whose key skip does not name, of
// duplicate keys only the last (as Java's HashMap keeps the last put),
// sorted by key with compare, a total order in which only equal keys
// compare 0. It calls compare O(n log n) times: sorting brings the
// duplicates of a key together, in wire order, where looking for a later
// duplicate of every field would be quadratic (thousands of fields made
// signing take a third of a second).
func signedOrder(fields Fields, skip func(key string) bool, compare func(a, b string) int) []int {
	idx := make([]int, 0, len(fields))
	for i := range fields {
		if !skip(fields[i].Key) {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(x, y int) int {
		if c := compare(fields[x].Key, fields[y].Key); c != 0 {
			return c
		}
		return cmp.Compare(x, y) // duplicates in wire order
	})
	out := idx[:0]
	for k, i := range idx {
		if k+1 < len(idx) && compare(fields[i].Key, fields[idx[k+1]].Key) == 0 {
			continue // a later duplicate wins
		}
		out = append(out, i)
	}
	return out
}

// appendSigned appends to dst the signed content: the values of the
// fields at idx, in that order, then body.
func appendSigned(dst []byte, fields Fields, idx []int, body []byte) []byte {
	n := len(body)
	for _, i := range idx {
		n += len(fields[i].Value)
	}
	dst = slices.Grow(dst, n)
	for _, i := range idx {
		dst = append(dst, fields[i].Value...)
	}
	return append(dst, body...)
}

// javaOrder orders keys as Java's String.compareTo does, by UTF-16 code
// units, which is byte order unless a key holds characters above U+FFFF
// (their surrogates sort below U+E000..U+FFFF). Invalid UTF-8 counts as
// U+FFFD per byte, as a []rune conversion decodes it; keys equal that way
// but not byte for byte are ordered by their bytes, so that only equal
// keys compare 0. It does not allocate.
func javaOrder(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if ca, cb := a[i], b[j]; ca < utf8.RuneSelf && cb < utf8.RuneSelf {
			if ca != cb {
				return cmp.Compare(ca, cb)
			}
			i, j = i+1, j+1
			continue
		}
		ra, na := utf8.DecodeRuneInString(a[i:])
		rb, nb := utf8.DecodeRuneInString(b[j:])
		if ra != rb {
			// Decoded runes are never surrogates, so equal first code units
			// are the same high surrogate, and the low ones order as the
			// runes do.
			if ua, ub := firstUTF16Unit(ra), firstUTF16Unit(rb); ua != ub {
				return cmp.Compare(ua, ub)
			}
			return cmp.Compare(ra, rb)
		}
		i, j = i+na, j+nb
	}
	switch {
	case i < len(a):
		return 1
	case j < len(b):
		return -1
	}
	return strings.Compare(a, b)
}

// firstUTF16Unit is the first UTF-16 code unit of r: r itself in the
// Basic Multilingual Plane, else its high surrogate.
func firstUTF16Unit(r rune) rune {
	if r < 0x10000 {
		return r
	}
	return 0xD800 + (r-0x10000)>>10
}
