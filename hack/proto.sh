#!/usr/bin/env bash
# Generates the agent protocol code from proto/leoflow/agent/v1/agent.proto:
#   Go:     agent/gen/leoflow/agent/v1/{agent.pb.go,agent_grpc.pb.go}
#   Python: leoflow/agent/v1/{agent_pb2.py,agent_pb2.pyi,agent_pb2_grpc.py}
# There is no system protoc: grpcio-tools' bundled protoc drives the Go plugins, which are
# installed with `go install` at pinned versions into a cache outside the repo.
#
# Usage: hack/proto.sh [OUT_ROOT]   (OUT_ROOT defaults to the repo root; proto-check.sh passes a temp dir)
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.11
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo}
python=${PYTHON:-$repo/.venv/bin/python}
tools=${LEOFLOW_CACHE:-$HOME/.cache/leoflow}/bin/go-tools
gobin=$tools/protoc-gen-go-$PROTOC_GEN_GO_VERSION-grpc-$PROTOC_GEN_GO_GRPC_VERSION

if [[ ! -x $gobin/protoc-gen-go || ! -x $gobin/protoc-gen-go-grpc ]]; then
  mkdir -p "$gobin"
  GOBIN=$gobin GOTOOLCHAIN=local GOFLAGS=-mod=mod go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  GOBIN=$gobin GOTOOLCHAIN=local GOFLAGS=-mod=mod go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

mkdir -p "$out/agent/gen" "$out/leoflow/agent/v1"
cd "$repo"
"$python" -m grpc_tools.protoc -I proto \
  --plugin=protoc-gen-go="$gobin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$gobin/protoc-gen-go-grpc" \
  --go_out="$out/agent/gen" --go_opt=paths=source_relative \
  --go-grpc_out="$out/agent/gen" --go-grpc_opt=paths=source_relative \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  proto/leoflow/agent/v1/agent.proto
