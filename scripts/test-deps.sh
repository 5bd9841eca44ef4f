#!/usr/bin/env bash
# Debian packages the test suite and the benchmark need (run as root or with sudo):
#   gcc-riscv64-linux-gnu   ISA tests are built with it
#   qemu-system-misc opensbi  the benchmark compares against QEMU
#   e2fsprogs cpio xz-utils  disk images, initramfs checks, kernel modules
#   qemu-utils            qemu-img and qemu-io: qcow2 interoperability and consistency tests
#   xorriso               ISO images for the CD-ROM tests (also in deps.sh: seed discs)
#   chromium              the web console is tested in headless Chromium (puppeteer-core drives it)
# plus what tsvisor itself needs (scripts/deps.sh: fakeroot, fdisk, kmod, ... for the Debian image)
set -euo pipefail
bash "$(dirname "$0")/deps.sh"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends \
  gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu libc6-dev-riscv64-cross \
  qemu-system-misc opensbi qemu-utils xorriso e2fsprogs cpio xz-utils ca-certificates chromium >/dev/null
