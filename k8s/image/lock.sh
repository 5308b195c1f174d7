#!/usr/bin/env bash
# `make images-lock`: pins, in packages.lock, the version Debian's index now
# offers of each package the images' root filesystem is made of, with its
# SHA-256. Run after a Debian point release or a security update, then
# `make images` and commit both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lock="$here/packages.lock"
# The Dockerfile builds on debian:bookworm: pin what bookworm offers.
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || { echo "images-lock: run it on Debian bookworm (this is ${PRETTY_NAME:-unknown})" >&2; exit 1; }
apt-get update -qq
tmp=$(mktemp)
grep '^#' "$lock" > "$tmp"
grep -v '^#' "$lock" | while read -r name _ _; do
  [ -n "$name" ] || continue
  version=$(apt-cache policy "$name" | awk '/Candidate:/ {print $2}')
  sha=$(apt-cache show "$name=$version" | awk '/^SHA256:/ {print $2; exit}')
  [ -n "$version" ] && [ -n "$sha" ] || { echo "images-lock: no candidate for $name" >&2; exit 1; }
  printf '%-16s %-19s %s\n' "$name" "$version" "$sha" >> "$tmp"
done
mv "$tmp" "$lock"
echo "images-lock: $(grep -vc '^#' "$lock") packages pinned in $lock"
git -C "$here" diff --stat -- "$lock" || true
