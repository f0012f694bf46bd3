# Sourced by the scripts that configure a build: sets `launcher` to the cmake option that
# compiles through ccache when it is installed (empty otherwise). Paths are hashed relative to
# the checkout, so a fresh clone in another folder (CI) reuses what an earlier build cached.
launcher=()
if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
fi
