package app_test

import (
	"testing"

	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

func TestProductionProfileTurnsOffReflection(t *testing.T) {
	if !app.Defaults(app.ProfileDevelopment).GRPC.Reflection {
		t.Error("the development profile serves no gRPC reflection")
	}
	if app.Defaults(app.ProfileProduction).GRPC.Reflection {
		t.Error("the production profile serves gRPC reflection")
	}
}
