package remoting

import (
	"sort"
	"strconv"
	"strings"
)

// Property separators of the properties string.
const (
	NameValueSeparator = '\x01'
	PropertySeparator  = '\x02'
)

// MaxPropertiesLen is the most a stored or batch record's properties can
// take (their length is an int16).
const MaxPropertiesLen = 32767

// Well-known message property keys (upstream MessageConst).
const (
	PropertyKeys                       = "KEYS"
	PropertyTags                       = "TAGS"
	PropertyWaitStoreMsgOK             = "WAIT"
	PropertyDelayLevel                 = "DELAY"
	PropertyRetryTopic                 = "RETRY_TOPIC"
	PropertyRealTopic                  = "REAL_TOPIC"
	PropertyRealQueueID                = "REAL_QID"
	PropertyTransactionPrepared        = "TRAN_MSG"
	PropertyProducerGroup              = "PGROUP"
	PropertyMinOffset                  = "MIN_OFFSET"
	PropertyMaxOffset                  = "MAX_OFFSET"
	PropertyUniqKey                    = "UNIQ_KEY"
	PropertyMaxReconsumeTimes          = "MAX_RECONSUME_TIMES"
	PropertyReconsumeTime              = "RECONSUME_TIME"
	PropertyOriginMessageID            = "ORIGIN_MESSAGE_ID"
	PropertyTransactionID              = "__transactionId__"
	PropertyTimerDeliverMS             = "TIMER_DELIVER_MS"
	PropertyTimerDelaySec              = "TIMER_DELAY_SEC"
	PropertyTimerDelayMS               = "TIMER_DELAY_MS"
	PropertyStartDeliverTime           = "__STARTDELIVERTIME"
	PropertyPopCK                      = "POP_CK"
	PropertyFirstPopTime               = "1ST_POP_TIME"
	PropertyShardingKey                = "__SHARDINGKEY"
	PropertyMsgRegion                  = "MSG_REGION"
	PropertyTraceSwitch                = "TRACE_ON"
	PropertyCluster                    = "CLUSTER"
	PropertyInnerNum                   = "INNER_NUM"
	PropertyInnerBase                  = "INNER_BASE"
	PropertyDLQOriginTopic             = "DLQ_ORIGIN_TOPIC"
	PropertyDLQOriginMessageID         = "DLQ_ORIGIN_MESSAGE_ID"
	PropertyBornHost                   = "__BORNHOST"
	PropertyBornTimestamp              = "BORN_TIMESTAMP"
	PropertyTransactionCheckTimes      = "TRANSACTION_CHECK_TIMES"
	PropertyCheckImmunityTimeInSeconds = "CHECK_IMMUNITY_TIME_IN_SECONDS"
)

// Properties are a message's properties in wire order. Parsed ones keep
// duplicates as received; Get returns the last, as Java's HashMap would.
type Properties []Field

// Get returns the value of key and whether it is present.
func (p Properties) Get(key string) (string, bool) { return Fields(p).Get(key) }

// Value returns the value of key, or "" when absent.
func (p Properties) Value(key string) string { return Fields(p).Value(key) }

// Set replaces the value of key or appends it.
func (p *Properties) Set(key, value string) { (*Fields)(p).Set(key, value) }

// Delete removes every occurrence of key.
func (p *Properties) Delete(key string) { (*Fields)(p).Delete(key) }

// PropertiesFromMap returns m's entries sorted by key (a stable wire form).
func PropertiesFromMap(m map[string]string) Properties {
	p := make(Properties, 0, len(m))
	for k, v := range m {
		p = append(p, Field{k, v})
	}
	sort.Slice(p, func(i, j int) bool { return p[i].Key < p[j].Key })
	return p
}

// Map returns the properties as a map (last duplicate wins).
func (p Properties) Map() map[string]string {
	m := make(map[string]string, len(p))
	for _, kv := range p {
		m[kv.Key] = kv.Value
	}
	return m
}

// CheckProperty says why a property cannot travel in a properties string:
// an empty key or value (the reader drops it), a key holding a separator,
// or a value holding PropertySeparator.
func CheckProperty(key, value string) error {
	switch {
	case key == "":
		return decodeErr("property", "empty key")
	case value == "":
		return decodeErr("property "+strconv.Quote(key), "empty value (it would not survive the wire)")
	case strings.ContainsAny(key, "\x01\x02"):
		return decodeErr("property "+strconv.Quote(key), "key holds a separator character (\\x01 or \\x02)")
	case strings.IndexByte(value, PropertySeparator) >= 0:
		return decodeErr("property "+strconv.Quote(key), "value holds the separator character \\x02")
	}
	return nil
}

// AppendProperties appends the properties string ("k\x01v\x02" per entry,
// as Java writes it) to dst. It fails, leaving dst as it was, on a
// property [CheckProperty] refuses.
func AppendProperties(dst []byte, p Properties) ([]byte, error) {
	for _, kv := range p {
		if err := CheckProperty(kv.Key, kv.Value); err != nil {
			return dst, err
		}
	}
	for _, kv := range p {
		dst = append(dst, kv.Key...)
		dst = append(dst, NameValueSeparator)
		dst = append(dst, kv.Value...)
		dst = append(dst, PropertySeparator)
	}
	return dst, nil
}

// FormatProperties returns the properties string of p (one allocation of
// its exact size).
func FormatProperties(p Properties) (string, error) {
	n := 0
	for _, kv := range p {
		if err := CheckProperty(kv.Key, kv.Value); err != nil {
			return "", err
		}
		n += len(kv.Key) + len(kv.Value) + 2
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, kv := range p {
		sb.WriteString(kv.Key)
		sb.WriteByte(NameValueSeparator)
		sb.WriteString(kv.Value)
		sb.WriteByte(PropertySeparator)
	}
	return sb.String(), nil
}

// ParseProperties reads a properties string as Java's
// string2messageProperties does: segments split by \x02; a segment is kept
// when it has a non-empty key before its first \x01 and a non-empty value
// after it; everything else is skipped. It never fails; the values are
// substrings of s.
func ParseProperties(s string) Properties {
	if s == "" {
		return nil
	}
	p := appendProperties(make(Properties, 0, propertySegments(s, strings.Count(s, "\x02"))), s)
	if len(p) == 0 {
		return nil
	}
	return p
}

// propertySegments is how many segments appendProperties reads from a
// properties text s with seps \x02 in it: one per \x02, and one for what
// follows the last. It bounds the properties read, and is their number for
// text as RocketMQ writes it, which ends every property with \x02 (the
// separator count plus one took room for a property more).
func propertySegments[S ~string | ~[]byte](s S, seps int) int {
	if len(s) > 0 && s[len(s)-1] != PropertySeparator {
		return seps + 1
	}
	return seps
}

// appendProperties appends the properties of s to p, as ParseProperties
// reads them.
func appendProperties(p Properties, s string) Properties {
	for len(s) > 0 {
		seg := s
		if i := strings.IndexByte(s, PropertySeparator); i >= 0 {
			seg, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if k := strings.IndexByte(seg, NameValueSeparator); k > 0 && k < len(seg)-1 {
			p = append(p, Field{seg[:k], seg[k+1:]})
		}
	}
	return p
}

// FormatAttributes returns upstream's attribute-modification string for
// topics and groups: "+key=value" for each entry of set (sorted) and
// "-key" for each of del, comma-separated; e.g. "+message.type=FIFO".
func FormatAttributes(set map[string]string, del ...string) string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("+" + k + "=" + set[k])
	}
	for _, k := range del {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("-" + k)
	}
	return b.String()
}
