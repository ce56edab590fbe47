#!/bin/sh
# Makes TensorBoard's Python package importable from source (no TensorFlow, no pip): extracts the
# `tensorboard` folder from a git dir of tensorflow/tensorboard and compiles its protos with the
# protoc of Debian's python3-grpc-tools (which predates proto3 `optional`, so that label is
# dropped: it changes presence tracking only, not the wire format).
set -eu
git_dir=$1
out=$2
mkdir -p "$out"
git -C "$git_dir" archive HEAD tensorboard | tar -x -C "$out"
cd "$out"
find tensorboard -name '*.proto' -exec sed -i 's/^\([[:space:]]*\)optional /\1/' {} +
/usr/bin/python3 -m grpc_tools.protoc -I. --python_out=. $(find tensorboard/compat/proto tensorboard/plugins -name '*.proto')
