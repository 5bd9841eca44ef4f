#!/usr/bin/env bash
# Debian packages tsvisor itself needs on the host (run as root or with sudo):
#   apt dpkg xz-utils debian-archive-keyring  fetching and unpacking Debian's packages
#   fakeroot fdisk kmod e2fsprogs              building the Debian image (owners, GPT, depmod, ext4)
#   passt                                      user-mode networking of the guests (NAT, published ports)
#   openssh-client                             tsvisor vm ssh
#   xorriso                                    cloud-init seed discs (vm create --cloud-init)
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  apt dpkg xz-utils debian-archive-keyring ca-certificates fakeroot fdisk kmod e2fsprogs passt openssh-client xorriso >/dev/null
