package remoting

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"log/slog"
	"sort"
	"unicode/utf16"
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
func Signature(fields Fields, body []byte, secretKey string) string {
	idx := make([]int, 0, len(fields))
	for i, kv := range fields {
		if kv.Key == FieldSignature {
			continue
		}
		if j, ok := lastIndex(fields, kv.Key); ok && j != i {
			continue // a later duplicate wins
		}
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return javaLess(fields[idx[a]].Key, fields[idx[b]].Key) })
	mac := hmac.New(sha1.New, []byte(secretKey))
	for _, i := range idx {
		mac.Write([]byte(fields[i].Value))
	}
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func lastIndex(f Fields, key string) (int, bool) {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].Key == key {
			return i, true
		}
	}
	return -1, false
}

// javaLess orders strings as Java's String.compareTo does: by UTF-16 code
// units. It equals byte order unless a key holds characters above U+FFFF.
func javaLess(a, b string) bool {
	ascii := true
	for i := 0; i < len(a) && ascii; i++ {
		ascii = a[i] < 0x80
	}
	for i := 0; i < len(b) && ascii; i++ {
		ascii = b[i] < 0x80
	}
	if ascii {
		return a < b
	}
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}
