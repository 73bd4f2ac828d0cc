// Package config is rmqproxy's typed configuration mechanism: it loads one
// root struct from defaults, a YAML file, the environment and command-line
// flags, validates it, prints it with secrets redacted, and describes every
// setting for --help and the README.
//
// It owns the mechanism only. Each adapter declares its own Config struct
// (with DefaultConfig and Validate); the composition root in cmd/rmqproxy
// aggregates them into a root struct, fills it with the defaults and calls
// [Load]. This is the only package that reads the process environment
// ([FromOS]); adapters receive their Config slice through [Module].
//
// # Struct tags
//
//	yaml:"certFile"   the key of the field (camelCase); "-" skips the field,
//	                  ",inline" flattens an embedded struct. Without a tag the
//	                  field name with a lower-case first letter is used.
//	help:"..."        one sentence shown by --help and the README table.
//	secret:"true"     printed as REDACTED; implied by the [Secret] type.
//	unit:"bytes"      on an int64: accepts 4MiB, 512KiB, 10MB or 4194304.
//	enum:"text,json"  on a string: the words it takes, in any case (JSON,
//	                  Json) and stored in the tag's spelling; any other
//	                  value is refused naming them all.
//
// Leaf types: string, bool, int, int32, int64, float64, time.Duration,
// []string, [Secret], and any type whose pointer implements
// encoding.TextUnmarshaler (and which implements encoding.TextMarshaler, so
// it can be printed). Nested structs recurse. Any other field type is a bug in
// the Config struct and makes [Load] and [Print] return an error and
// [Reference] panic.
//
// # Sources and precedence
//
// A setting's key is its dotted YAML path, such as grpc.tls.certFile. Values
// are applied in this order, each overriding the previous one:
//
//  1. the defaults already in the destination struct;
//  2. the YAML file;
//  3. the environment: RMQPROXY_ followed by the key in upper snake case,
//     camelCase split into words (RMQPROXY_GRPC_TLS_CERT_FILE);
//  4. the flags: --grpc.tls.certFile=value or --grpc.tls.certFile value;
//     a boolean also accepts --grpc.tls.enabled alone (and never takes the
//     next argument as its value: write --grpc.tls.enabled=false). One
//     leading dash works too.
//
// Lists ([]string) are YAML sequences in the file and comma-separated in the
// environment and in flags; a later source replaces the whole list. When a
// flag repeats, the last one wins.
//
// # Which file
//
// The file is chosen before any layering happens: --config <file> wins over
// RMQPROXY_CONFIG, which wins over [Sources].File (the composition root's
// default, possibly empty). An empty --config is a usage error (a script's
// unset variable would start on the defaults); an empty RMQPROXY_CONFIG
// means "no file". A file named by any of them must exist. Only then is the chosen file applied
// over the defaults, the environment over the file and the flags over the
// environment.
//
// # Errors
//
// Unknown YAML keys, unknown RMQPROXY_ environment variables and unknown flags
// are errors that name the key and suggest the closest valid one. Variables
// starting with RMQPROXY_TEST_ are left to the test suites and ignored. Type
// errors name the key, where the value came from (file:line, environment
// variable, flag) and the expected form. [Load] collects every such error and
// returns them joined; only when all values loaded does it call Derive on
// every struct that has one with a pointer receiver (to fill settings left
// empty from others, such as local.storeHost from grpc.address), then
// Validate on every struct that has one, and again returns all errors
// joined. A Config's Validate names its own keys ("flush must be sync or
// async"); each of its errors becomes a [*FieldError] that names them in
// full ("local.flush must be sync or async"), or is prefixed with the
// struct's key path when it names none. When some of the load errors are
// in the command line itself (an unknown flag, a flag value that does not
// parse, an argument that is not a flag), the error matches [ErrUsage].
// --help and -h make [Load] return [ErrHelp].
//
// [LoadFor] is Load for a command that reads a few settings of a
// configuration it may share with the server (the CLI's admin and
// PostgreSQL commands): the same sources and load errors, but no Validate,
// and a secret left as Print's placeholder is an error only in the
// settings the command names as the ones it reads.
//
// Invariants: Load, and the parsers behind it, never panic on any input (a
// file, an environment or flags); they return errors. Print never writes a
// non-empty secret.
package config
