#!/usr/bin/env bash
# Fetch one Debian trixie package (without touching the system's apt sources) and
# extract it under $KB_CACHE/trixie/<pkg>-<version>/root. Prints that root dir.
#   hack/cluster/fetch-trixie.sh PKG VERSION [ARCH]   (ARCH default amd64)
# Idempotent: the extracted tree is kept by exact version.
set -euo pipefail
pkg="$1"; ver="$2"; arch="${3:-amd64}"
KB_CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
top="$KB_CACHE/trixie"
name="$pkg-$ver"; [[ "$arch" == amd64 ]] || name="$pkg-$ver-$arch"
dest="$top/$name/root"
if [[ -f "$top/$name/.done" ]]; then echo "$dest"; exit 0; fi
apt_dir="$top/apt"; [[ "$arch" == amd64 ]] || apt_dir="$top/apt-$arch"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$top/debs"
# Same mirror as the system's bookworm sources.
mirror="$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
mirror="${mirror:-$(sed -n 's/^deb \(http[^ ]*debian\) bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)}"
[[ -n "$mirror" ]] || { echo "cannot find the system's Debian mirror" >&2; exit 1; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$apt_dir/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
      -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
if [[ ! -s "$apt_dir/lists/.updated" ]] || ! apt-cache "${opts[@]}" show "$pkg=$ver" >/dev/null 2>&1; then
  apt-get "${opts[@]}" -qq update >&2
  date > "$apt_dir/lists/.updated"
fi
( cd "$top/debs" && apt-get "${opts[@]}" -qq download "$pkg=$ver" >&2 )
deb="$(ls "$top/debs/${pkg}_"*"_$arch.deb" | grep -F "_${ver//:/%3a}_" | head -1)"
rm -rf "${top:?}/$name"; mkdir -p "$dest"
dpkg-deb -x "$deb" "$dest"
touch "$top/$name/.done"
echo "$dest"
