package config

import (
	"fmt"
	"reflect"

	"go.uber.org/fx"
)

// Module supplies the loaded root configuration to the fx graph: the root
// struct itself (by value) and each of its top-level sections by value, so
// that an adapter's constructor can take its own Config (grpc.Config,
// admin.Config, ...) and nothing else. root is the struct [Load] filled, or
// a pointer to it. Two sections of the same type are an error, since fx
// could not tell them apart.
func Module(root any) fx.Option {
	v := reflect.ValueOf(root)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return fx.Error(fmt.Errorf("config: Module needs the root configuration struct, not %T", root))
	}
	supplies := []any{v.Interface()}
	seen := map[reflect.Type]string{v.Type(): "the root"}
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Type.Kind() != reflect.Struct || isLeafType(sf.Type) {
			continue
		}
		if name, _, skip := yamlName(sf); !skip {
			if prev, dup := seen[sf.Type]; dup {
				return fx.Error(fmt.Errorf("config: sections %s and %s have the same type %v; give each adapter its own Config type", prev, name, sf.Type))
			}
			seen[sf.Type] = name
			supplies = append(supplies, v.Field(i).Interface())
		}
	}
	return fx.Module("config", fx.Supply(supplies...))
}
