package remoting

import "strconv"

// appendJSONHeader writes the header as fastjson does for a Java peer:
// keys in alphabetical order, remark and extFields omitted when empty.
func appendJSONHeader(dst []byte, c *Command) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(c.Code), 10)
	if len(c.Fields) > 0 {
		dst = append(dst, `,"extFields":{`...)
		for i, kv := range c.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, kv.Key)
			dst = append(dst, ':')
			dst = appendJSONString(dst, kv.Value)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"flag":`...)
	dst = strconv.AppendInt(dst, int64(c.Flag), 10)
	if int(c.Language) < len(languageNames) {
		dst = append(dst, `,"language":"`...)
		dst = append(dst, languageNames[c.Language]...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"opaque":`...)
	dst = strconv.AppendInt(dst, int64(c.Opaque), 10)
	if c.Remark != "" {
		dst = append(dst, `,"remark":`...)
		dst = appendJSONString(dst, c.Remark)
	}
	dst = append(dst, `,"serializeTypeCurrentRPC":"JSON","version":`...)
	dst = strconv.AppendInt(dst, int64(c.Version), 10)
	return append(dst, '}')
}

// decodeJSONHeader decodes a JSON RemotingCommand. Unknown keys are
// skipped, keys may come in any order, numbers may be quoted; the language
// may be a name or a number; extFields values that are numbers or
// booleans keep their text and null values are dropped.
func decodeJSONHeader(c *Command, h []byte) error { return decodeJSONHeaderString(c, string(h)) }

// decodeJSONHeaderString is decodeJSONHeader of a header already a string
// (the decoded strings are substrings of it). The ext fields go in
// c.Fields's array when it has room (see ReadCommand).
func decodeJSONHeaderString(c *Command, h string) error {
	p := jsonScanner{s: h, base: 4}
	err := p.object(0, func(key string) error {
		var err error
		switch key {
		case "code":
			c.Code, err = p.int32Value()
		case "flag":
			c.Flag, err = p.int32Value()
		case "opaque":
			c.Opaque, err = p.int32Value()
		case "version":
			c.Version, err = p.int32Value()
		case "language":
			c.Language, err = p.language()
		case "remark":
			var ok bool
			c.Remark, ok, err = p.scalar(1)
			if !ok {
				c.Remark = ""
			}
		case "extFields":
			if p.peek() != '{' {
				return p.skip(1) // null (or junk fastjson would ignore)
			}
			if c.Fields = c.Fields[:0]; cap(c.Fields) == 0 {
				c.Fields = make(Fields, 0, 8)
			}
			err = p.object(1, func(k string) error {
				v, ok, err := p.scalar(2)
				if ok {
					c.Fields = append(c.Fields, Field{Key: k, Value: v})
				}
				return err
			})
			if len(c.Fields) == 0 {
				c.Fields = nil
			}
		default:
			err = p.skip(1)
		}
		return err
	})
	if err != nil {
		return err
	}
	if p.peek() != 0 {
		return p.err("data after the JSON header")
	}
	return nil
}

func (p *jsonScanner) language() (LanguageCode, error) {
	if p.peek() == '"' {
		s, err := p.str()
		return languageByName(s), err
	}
	text, err := p.literal()
	if err != nil || text == "null" {
		return LanguageJava, err
	}
	v, perr := strconv.ParseUint(text, 10, 8)
	if perr != nil {
		return 0, p.err("bad language " + strconv.Quote(clip(text)))
	}
	if v >= uint64(len(languageNames)) {
		return LanguageOther, nil
	}
	return LanguageCode(v), nil
}
