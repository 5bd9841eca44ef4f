#!/bin/sh
# Regenerate test/engine/vectors/fpu-vectors.bin.gz from real RISC-V instructions.
# Needs Debian's gcc-riscv64-linux-gnu and qemu-user (qemu-riscv64). Run from the repo root.
set -eu
mkdir -p build
riscv64-linux-gnu-gcc -O1 -static -Wall -o build/fpgen test/engine/vectors/gen/fpgen.c
qemu-riscv64 build/fpgen > build/fpu-vectors.bin
gzip -9n < build/fpu-vectors.bin > test/engine/vectors/fpu-vectors.bin.gz
ls -l test/engine/vectors/fpu-vectors.bin.gz
