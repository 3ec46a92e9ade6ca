#!/usr/bin/env bash
# Fails when the committed generated code (agent/gen, leoflow/agent/v1) differs from what
# hack/proto.sh produces from proto/ now.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$repo/hack/proto.sh" "$tmp"
stale=0
for dir in agent/gen/leoflow/agent/v1 leoflow/agent/v1; do
  for file in "$tmp/$dir"/*; do
    name=$(basename "$file")
    if ! diff -u "$repo/$dir/$name" "$file"; then
      stale=1
    fi
  done
done
if [[ $stale -ne 0 ]]; then
  echo "generated protocol code is stale: run hack/proto.sh (make proto) and commit the result" >&2
  exit 1
fi
echo "generated protocol code is up to date"
