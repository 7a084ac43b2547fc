#!/usr/bin/env bash
# Build grit_fast._C with AddressSanitizer + UBSan in its own build directory and run the trace and
# reward fuzz tests against that build.
#
#   scripts/fuzz_sanitizers.sh [extra pytest args]
#
# Needs: the Python environment the package is installed in (pytest, hypothesis, pybind11, numpy),
# CMake >= 3.18, Ninja or Make, and g++ or clang++ with their sanitizer runtimes.
#
# Why the extra steps:
# * Python itself is not built with ASan, so the ASan runtime must be the first library loaded:
#   it is put in LD_PRELOAD (found with `$CXX -print-file-name=libasan.so`), followed by libstdc++
#   so that ASan's C++-exception interceptor finds the real __cxa_throw (without it, the first
#   exception the module raises aborts the interpreter). Leak detection is off because the
#   interpreter keeps objects alive at exit by design.
# * The sanitized module is staged with a copy of the Python package and put first on the path;
#   an editable install's import hook would otherwise hand back the installed (unsanitized)
#   module, so the runner removes such hooks and checks _C.build_info()["sanitizers"].
# * Environment overrides: PYTHON (interpreter), CXX (compiler), BUILD_DIR (default
#   build/sanitize), SANITIZE_TESTS (test files).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
CXX=${CXX:-g++}
BUILD_DIR=${BUILD_DIR:-$ROOT/build/sanitize}
SANITIZE_TESTS=${SANITIZE_TESTS:-"tests/rewards/test_fuzz_rewards.py tests/rewards/test_trace.py tests/rewards/test_rewards.py tests/rewards/test_rule_judge.py"}
VERSION=$("$PYTHON" -c "import re,sys; print(re.search(r'\"(.+?)\"', open(sys.argv[1]).read()).group(1))" \
  "$ROOT/grit_fast/_version.py")

GENERATOR=()
if command -v ninja >/dev/null 2>&1; then GENERATOR=(-G Ninja); fi
cmake -S "$ROOT" -B "$BUILD_DIR" "${GENERATOR[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$CXX" \
  -DGRIT_FAST_SANITIZE=ON \
  -DSKBUILD_PROJECT_NAME=grit_fast \
  -DSKBUILD_PROJECT_VERSION="$VERSION" \
  -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD_DIR" --target _C

STAGE="$BUILD_DIR/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -r "$ROOT/grit_fast" "$STAGE/grit_fast"
find "$STAGE/grit_fast" -name "_C*.so" -delete
cp "$BUILD_DIR"/_C*.so "$STAGE/grit_fast/"

LIBASAN=$("$CXX" -print-file-name=libasan.so)
if [[ ! -e "$LIBASAN" ]]; then
  echo "libasan.so not found for $CXX (install the compiler's sanitizer runtime)" >&2
  exit 1
fi

LIBSTDCXX=$("$CXX" -print-file-name=libstdc++.so)

cd "$ROOT"
# shellcheck disable=SC2086
LD_PRELOAD="$LIBASAN $LIBSTDCXX" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
GRIT_FAST_REQUIRE_FAST=1 \
"$PYTHON" - "$STAGE" $SANITIZE_TESTS "$@" <<'PY'
import sys

stage, args = sys.argv[1], sys.argv[2:]
# Drop editable-install import hooks so that the staged package is the one imported.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, stage)
import grit_fast._C as C  # noqa: E402

assert C.__file__.startswith(stage), f"imported {C.__file__}, not the sanitized build"
assert C.build_info()["sanitizers"], "the staged module was not built with sanitizers"
print(f"sanitized grit_fast._C: {C.__file__}")
import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *args]))
PY
