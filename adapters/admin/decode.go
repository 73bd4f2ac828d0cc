package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rmqproxy/rmqproxy/domain"
)

// MaxRequestBody bounds a request body. The largest legitimate request, a
// group with a long customized retry list, is a few KiB.
const MaxRequestBody = 64 << 10

// decodeRequest reads r's body, at most MaxRequestBody bytes, into a *T.
// It is strict: unknown fields, a second JSON value after the first, null,
// and wrong types are ReasonBadRequest errors; an oversized body is
// ReasonBodyTooLarge. It never panics on any input. The Content-Type was
// checked before any route ([Server.guard]).
func decodeRequest[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	return decodeBody[T](http.MaxBytesReader(w, r.Body, MaxRequestBody))
}

// decodeBody is decodeRequest's strict decoder over any reader.
func decodeBody[T any](body io.Reader) (T, error) {
	var zero T
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var v *T
	if err := dec.Decode(&v); err != nil {
		return zero, decodeError(err)
	}
	if v == nil {
		return zero, domain.Errorf(domain.ReasonBadRequest, "request body must be a JSON object, not null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return zero, decodeError(err)
		}
		return zero, domain.Errorf(domain.ReasonBadRequest, "request body must hold exactly one JSON object; found more after it")
	}
	return *v, nil
}

func decodeError(err error) error {
	var (
		maxBytes *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxBytes):
		return domain.Errorf(domain.ReasonBodyTooLarge, "request body is larger than the limit of %d bytes", maxBytes.Limit)
	case errors.Is(err, io.EOF):
		return domain.Errorf(domain.ReasonBadRequest, "request body is empty; expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Errorf(domain.ReasonBadRequest, "request body is truncated JSON")
	case errors.As(err, &syntax):
		return domain.Errorf(domain.ReasonBadRequest, "request body is not valid JSON (at byte %d): %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return domain.Errorf(domain.ReasonBadRequest, "request body must be a JSON object, not %s", typ.Value)
		}
		return domain.Errorf(domain.ReasonBadRequest, "field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return domain.Errorf(domain.ReasonBadRequest, "%s in request body", truncate(msg))
	}
	return domain.Errorf(domain.ReasonBadRequest, "invalid request body: %s", truncate(msg))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int32", "int64", "int":
		return "a whole number in range"
	case "float64":
		return "a number"
	case "slice":
		return "a list"
	case "struct", "ptr":
		return "an object"
	}
	return fmt.Sprintf("a %s", goKind)
}
