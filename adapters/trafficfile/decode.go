package trafficfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/application"
)

// MaxFileSize bounds the rules file.
const MaxFileSize = 1 << 20

// File is the rules file. In every scope but clients, the key "*" gives
// the limits of every name not listed, each name with buckets of its own.
type File struct {
	// Clients applies to every client id, each with its own buckets.
	Clients    *Limits            `yaml:"clients"`
	Topics     map[string]*Limits `yaml:"topics"`
	Groups     map[string]*Limits `yaml:"groups"`
	Namespaces map[string]*Limits `yaml:"namespaces"`
	Users      map[string]*Limits `yaml:"users"`
}

// Limits are the limits of one scope.
type Limits struct {
	Send    *Flow `yaml:"send"`
	Receive *Flow `yaml:"receive"`
}

// Flow limits one direction. Byte values take units (8MiB, 500KB).
type Flow struct {
	MessagesPerSecond float64 `yaml:"messagesPerSecond"`
	BurstMessages     float64 `yaml:"burstMessages"`
	BytesPerSecond    Bytes   `yaml:"bytesPerSecond"`
	BurstBytes        Bytes   `yaml:"burstBytes"`
}

// Bytes is a byte count written as a number or with a unit.
type Bytes int64

// UnmarshalYAML reads 8388608, "8MiB" or "8 MB".
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a byte size must be a number or a string such as 8MiB", n.Line)
	}
	if v, err := strconv.ParseFloat(n.Value, 64); err == nil && n.Tag != "!!str" {
		if v < 0 || v > math.MaxInt64 || v != math.Trunc(v) {
			return fmt.Errorf("line %d: %q is not a whole, non-negative number of bytes", n.Line, n.Value)
		}
		*b = Bytes(v)
		return nil
	}
	v, err := config.ParseBytes(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*b = Bytes(v)
	return nil
}

// Decode reads a rules file (YAML or JSON) into rules, validated. Unknown
// keys are errors, so that a misspelt limit does not silently limit
// nothing.
func Decode(data []byte) (application.TrafficRules, error) {
	if len(data) > MaxFileSize {
		return application.TrafficRules{}, fmt.Errorf("the file is %d bytes, more than %d", len(data), MaxFileSize)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return application.TrafficRules{}, fmt.Errorf("not a traffic rules file: %v", trimYAMLError(err))
	}
	// Only the first document is decoded: rules after it would silently
	// not be in force.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return application.TrafficRules{}, fmt.Errorf("not a traffic rules file: %v", trimYAMLError(err))
		}
		return application.TrafficRules{}, fmt.Errorf("line %d: a second YAML document; the file must hold exactly one", extra.Line)
	}
	r := application.TrafficRules{}
	if f.Clients != nil {
		r.Clients = f.Clients.convert()
	}
	var errs []error
	scope := func(name string, m map[string]*Limits) application.ScopeRules {
		var s application.ScopeRules
		for k, v := range m {
			if v == nil {
				v = &Limits{}
			}
			l := v.convert()
			if k == "*" {
				s.Default = &l
				continue
			}
			if strings.TrimSpace(k) != k || (k == "" && name != "namespaces") {
				errs = append(errs, fmt.Errorf("%s: %q is not a name (\"*\" stands for every other name)", name, k))
				continue
			}
			if s.Named == nil {
				s.Named = map[string]application.Limits{}
			}
			s.Named[k] = l
		}
		return s
	}
	r.Topics = scope("topics", f.Topics)
	r.Groups = scope("groups", f.Groups)
	r.Namespaces = scope("namespaces", f.Namespaces)
	r.Users = scope("users", f.Users)
	if len(errs) == 0 {
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return application.TrafficRules{}, errors.Join(errs...)
	}
	return r, nil
}

func (l *Limits) convert() application.Limits {
	return application.Limits{Send: l.Send.convert(), Receive: l.Receive.convert()}
}

func (f *Flow) convert() application.FlowLimits {
	if f == nil {
		return application.FlowLimits{}
	}
	return application.FlowLimits{
		Messages: application.Rate{PerSecond: f.MessagesPerSecond, Burst: f.BurstMessages},
		Bytes:    application.Rate{PerSecond: float64(f.BytesPerSecond), Burst: float64(f.BurstBytes)},
	}
}

// unknownField is the decoder's message for a key the file format does
// not have, which names a Go type the operator has never seen.
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// trimYAMLError keeps yaml's message without its "yaml: " prefix, with an
// unknown key said as such ("line 3: unknown key \"topcs\"").
func trimYAMLError(err error) string {
	return unknownField.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), `unknown key "$1"`)
}
