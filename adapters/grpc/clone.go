package grpc

import (
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/proto"
)

func cloneSettings(s *v2.Settings) *v2.Settings {
	return proto.Clone(s).(*v2.Settings)
}
