// Package pluginpb is the generated Go code of the SpaceONE cost-analysis plugin
// protocol (proto/spaceone/api/cost_analysis/plugin). Do not edit the *.pb.go files:
// change the .proto files and run hack/gen-proto.sh (or `make generate`).
// Only internal/plugin (the client) and internal/sampleplugin use it.
package pluginpb
