#!/usr/bin/env bash
# Installs the C library like any C library: the header, libshm_alloc.so and a pkg-config file
# under a prefix, so that
#     gcc prog.c $(pkg-config --cflags --libs shm_alloc)
# works once PREFIX/lib/pkgconfig is on PKG_CONFIG_PATH (it is for /usr/local on most systems).
#
# usage: scripts/install.sh PREFIX [LIBRARY_DIR]
#   PREFIX        where to install: PREFIX/include, PREFIX/lib, PREFIX/lib/pkgconfig
#   LIBRARY_DIR   a folder holding an already built libshm_alloc.so; without it the library is
#                 built first with `swift build -c release --product shm_alloc`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/install.sh PREFIX [LIBRARY_DIR]" >&2
  exit 64
fi
prefix=$1
if [ $# -eq 2 ]; then
  library_dir=$2
else
  swift build -c release --product shm_alloc >&2
  library_dir=.build/release
fi
if [ ! -f "$library_dir/libshm_alloc.so" ]; then
  echo "install.sh: no libshm_alloc.so in $library_dir" >&2
  exit 1
fi
# The version shmtop --version prints, from its one definition.
version=$(sed -n 's/^ *version: "\([0-9.]*\)",$/\1/p' Sources/shmtop/Shmtop.swift)

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
prefix=$(cd "$prefix" && pwd)
install -m 0644 Sources/CShmAlloc/include/shm_alloc.h "$prefix/include/shm_alloc.h"
install -m 0755 "$library_dir/libshm_alloc.so" "$prefix/lib/libshm_alloc.so"
cat > "$prefix/lib/pkgconfig/shm_alloc.pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: shm_alloc
Description: Lock-free shared-memory allocator over a memory-mapped file (libc only)
Version: ${version:-0}
Cflags: -I\${includedir}
Libs: -L\${libdir} -lshm_alloc
PC
echo "installed shm_alloc ${version:-} under $prefix"
