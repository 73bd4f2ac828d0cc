package policyfile

import (
	"errors"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlError returns err, an error of the YAML decoder, without the file's
// values: a type error quotes the scalar it could not use (whole up to
// ten characters, else its first seven), and a policy file's scalars
// include passwords and secret keys, which a misplaced line would put
// into an error and so into the logs and /readyz. What is left names the
// line, what was expected and what was found, and unknown or repeated
// keys by name.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = typeProblem(m)
		}
		return errors.New("yaml: " + strings.Join(msgs, "; "))
	}
	// Syntax errors name a line and a fixed problem; only a mapping key
	// that is a list or mapping is printed, with its contents.
	if strings.Contains(err.Error(), "invalid map key") {
		return errors.New("yaml: a mapping key is a list or mapping (not shown); keys must be plain names")
	}
	return err
}

// unmarshalProblem matches the decoder's "line N: cannot unmarshal !!tag
// `value` into T" (the value left out for lists and mappings). The value
// is matched greedily up to the last "` into ": a Go type has no
// backquote.
var unmarshalProblem = regexp.MustCompile("(?s)^line (\\d+): cannot unmarshal (\\S+)(?: `.*`)? into (.+)$")

var lineOf = regexp.MustCompile(`^line \d+`)

// unknownField matches the decoder's "line N: field KEY not found in type
// T" for a key the format does not have.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)

// typeProblem rewrites one message of a yaml.TypeError without the value
// it quotes.
func typeProblem(m string) string {
	if sub := unmarshalProblem.FindStringSubmatch(m); sub != nil {
		return "line " + sub[1] + ": expected " + goKind(sub[3]) + ", found " + tagKind(sub[2]) + " (value not shown)"
	}
	if sub := unknownField.FindStringSubmatch(m); sub != nil {
		return "line " + sub[1] + ": unknown key \"" + sub[2] + "\"" // not the Go type it names
	}
	if strings.Contains(m, ": field ") || strings.Contains(m, ": mapping key ") {
		return m // names a key, not a value
	}
	if l := lineOf.FindString(m); l != "" {
		return l + ": a value of the wrong type (not shown)"
	}
	return "a value of the wrong type (not shown)"
}

func goKind(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "string":
		return "a string"
	case t == "bool" || t == "*bool":
		return "true or false"
	case strings.Contains(t, "."):
		return "a mapping"
	}
	return t
}

func tagKind(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true or false"
	case "!!null":
		return "null"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	}
	return "a value"
}
