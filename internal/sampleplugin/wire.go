package sampleplugin

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// recordSizeHint is about the wire size of one generated CostInfo, to size a
// message's buffer.
const recordSizeHint = 240

// wireMessage is a message already in its wire form (a CostsInfo the generator
// wrote), sent as it is.
type wireMessage struct{ b []byte }

// wireCodec is gRPC's protobuf codec, except that it sends a *wireMessage's bytes
// as they are. Its name is "proto", as the codec it stands for.
type wireCodec struct{ proto encoding.CodecV2 }

func newWireCodec() wireCodec { return wireCodec{proto: encoding.GetCodecV2(proto.Name)} }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*wireMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c wireCodec) Name() string { return c.proto.Name() }
