package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Print writes the effective configuration cfg (a struct or a pointer to
// one) as YAML that [Load] reads back: each setting under its key, preceded
// by its help text as a comment, durations and byte sizes in human form
// (1h30m, 4MiB), and every non-empty secret as REDACTED.
func Print(w io.Writer, cfg any) error {
	v, s, err := inspect(cfg)
	if err != nil {
		return err
	}
	node, err := sectionNode(s.root, v)
	if err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return fmt.Errorf("config: print: %w", err)
	}
	return enc.Close()
}

// inspect returns an addressable copy of the struct cfg holds and its schema.
func inspect(cfg any) (reflect.Value, *schema, error) {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, nil, fmt.Errorf("config: need a struct or a pointer to one, not %T", cfg)
	}
	s, err := schemaOf(v.Type())
	if err != nil {
		return reflect.Value{}, nil, err
	}
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c, s, nil
}

func sectionNode(sec *field, root reflect.Value) (*yaml.Node, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, c := range sec.children {
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: c.name, HeadComment: wrap(c.help, 78)}
		var v *yaml.Node
		var err error
		if c.section {
			v, err = sectionNode(c, root)
		} else {
			v, err = leafNode(c, root.FieldByIndex(c.index))
		}
		if err != nil {
			return nil, err
		}
		m.Content = append(m.Content, k, v)
	}
	return m, nil
}

func leafNode(f *field, v reflect.Value) (*yaml.Node, error) {
	if f.kind == kindList && !f.secret {
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		items := v.Interface().([]string)
		if len(items) == 0 {
			seq.Style = yaml.FlowStyle
		}
		for _, it := range items {
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: it})
		}
		return seq, nil
	}
	text, err := formatLeaf(f, v)
	if err != nil {
		return nil, err
	}
	// Numbers and booleans are written plain; everything else is tagged as
	// a string so that the encoder quotes it where YAML would read it as
	// something else ("true", "null", "1e3").
	tag := "!!str"
	switch f.kind {
	case kindBool, kindInt, kindFloat:
		tag = ""
	case kindBytes:
		if strings.Trim(text, "0123456789") == "" {
			tag = ""
		}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: text}, nil
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for w := range strings.FieldsSeq(text) {
		switch {
		case n == 0:
		case n+1+len(w) > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
