#!/usr/bin/env bash
# Installs llama-cpp-python's OpenAI-compatible server, which the tests run on 127.0.0.1
# against the real SmolLM2 GGUF. It builds from source (about 6 minutes on 2 cores), once:
# the wheel is kept in ~/.cache/handful-wheels (HANDFUL_WHEELS moves it), keyed by the build
# flags below, apart from the model cache so that an empty model cache keeps the build.
#
# The flags turn off GGML_NATIVE: a native build uses AMX tiles where the CPU has them,
# and in virtual machines that do not grant AMX state to processes it dies with SIGSEGV
# at the first decode.
set -euo pipefail
VERSION=0.3.36
FLAGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if [ "$(uname -m)" = "x86_64" ]; then
  FLAGS="$FLAGS -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
fi
KEY=$(printf '%s %s' "$VERSION" "$FLAGS" | sha256sum | cut -c1-12)
WHEELS="${HANDFUL_WHEELS:-$HOME/.cache/handful-wheels}/llama-cpp-python-$KEY"
if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION ($FLAGS) into $WHEELS"
  CMAKE_ARGS="$FLAGS" pip wheel --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$VERSION"
fi
pip install "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl "llama-cpp-python[server]==$VERSION"
