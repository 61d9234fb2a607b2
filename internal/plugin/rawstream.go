package plugin

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// rawMessage is a received message kept as its wire bytes, for costDecoder to
// read without the protobuf runtime building it first.
type rawMessage struct{ b []byte }

// rawCodec is gRPC's protobuf codec, except that it hands a *rawMessage the wire
// bytes as they are. Its name is "proto", so the call's content type is
// application/grpc+proto, which every plugin accepts.
type rawCodec struct{ proto encoding.CodecV2 }

var _ encoding.CodecV2 = rawCodec{}

func newRawCodec() rawCodec { return rawCodec{proto: encoding.GetCodecV2(proto.Name)} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		// A copy: gRPC reuses data's buffers once Unmarshal returns.
		m.b = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (c rawCodec) Name() string { return c.proto.Name() }
