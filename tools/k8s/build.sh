#!/usr/bin/env bash
# Builds the Kubernetes control-plane and node binaries (plus etcd) from the Go module proxy into
# OUT. k8s.io/kubernetes cannot be `go install`ed (its staging modules are required at v0.0.0), so
# this wrapper module replaces every staging module with its published v0.X.Y tag; see go.mod.
# Usage: build.sh OUT
set -euo pipefail
out=${1:?usage: build.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"
version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$version" | cut -d. -f2)
ld="-s -w
 -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1
 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
mkdir -p "$out.partial"
go build -p "${LEOFLOW_BUILD_JOBS:-2}" -ldflags "$ld" -o "$out.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kubectl
go build -ldflags "-s -w" -o "$out.partial/etcd" go.etcd.io/etcd/server/v3
rm -rf "$out" && mv "$out.partial" "$out"
