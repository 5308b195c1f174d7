#!/usr/bin/env bash
# Makes the images' root filesystem in DEST from the Debian packages pinned in
# packages.lock, as `make images` and the Dockerfile's rootfs stage both do:
# each .deb fetched with apt-get (or taken from DEB_CACHE), checked against
# its SHA-256, unpacked; its control record kept under
# /var/lib/dpkg/status.d for image scanners, as distroless images do; the CA
# bundle made from the certificates the package ships (what
# update-ca-certificates does, in the same order); the users root and
# nonroot (65532) with no shell; /tmp and nonroot's home. No package's
# maintainer scripts run, so no shell is needed in the result.
#
# Usage: rootfs.sh DEST   (DEST must not exist)
set -euo pipefail
dest=$1
here=$(cd "$(dirname "$0")" && pwd)
umask 022   # the modes of what this script writes, whoever runs it
own_cache=
if [ -z "${DEB_CACHE:-}" ]; then own_cache=$(mktemp -d); fi
cache=${DEB_CACHE:-$own_cache}
trap '[ -z "$own_cache" ] || rm -rf "$own_cache"' EXIT
[ ! -e "$dest" ] || { echo "rootfs.sh: $dest exists" >&2; exit 1; }
mkdir -p "$dest" "$cache"
updated=0
fetch() {  # fetch NAME VERSION: the .deb into $cache/NAME
  # (apt warns that root downloads unsandboxed into a folder _apt cannot write: the SHA-256 is the check.)
  (cd "$cache/$1" && apt-get download -qq "$1=$2" </dev/null 2> >(grep -v unsandboxed >&2))
}
while read -r name version sha; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  mkdir -p "$cache/$name"
  deb=$(ls "$cache/$name/${name}_${version}_"*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    if ! fetch "$name" "$version" 2>/dev/null; then
      [ "$updated" = 1 ] || { apt-get update -qq </dev/null; updated=1; }
      fetch "$name" "$version" ||
        { echo "rootfs.sh: $name $version cannot be fetched (a newer Debian point release? make images-lock)" >&2; exit 1; }
    fi
    deb=$(ls "$cache/$name/${name}_${version}_"*.deb | head -1)
  fi
  echo "$sha  $deb" | sha256sum --check --quiet --strict ||
    { echo "rootfs.sh: $deb does not match its SHA-256 in packages.lock" >&2; exit 1; }
  if [ "$name" = base-files ]; then
    # Only what says which Debian this is.
    tmp=$(mktemp -d); dpkg-deb -x "$deb" "$tmp"
    mkdir -p "$dest/etc" "$dest/usr/lib"
    cp -a "$tmp/usr/lib/os-release" "$dest/usr/lib/os-release"
    ln -s ../usr/lib/os-release "$dest/etc/os-release"
    cp -a "$tmp/etc/debian_version" "$dest/etc/debian_version"
    rm -rf "$tmp"
  else
    dpkg-deb -x "$deb" "$dest"
  fi
  mkdir -p "$dest/var/lib/dpkg/status.d"
  dpkg-deb -f "$deb" > "$dest/var/lib/dpkg/status.d/$name"
done < "$here/packages.lock"

# Documentation but the licences; manual pages; translations.
find "$dest/usr/share/doc" -type f ! -name copyright -delete
find "$dest/usr/share/doc" -type l -delete
rm -rf "$dest/usr/share/man" "$dest/usr/share/locale" "$dest/usr/share/lintian"

# The CA bundle rustls reads (/etc/ssl/certs/ca-certificates.crt).
mkdir -p "$dest/etc/ssl/certs"
(cd "$dest/usr/share/ca-certificates" && find . -name '*.crt' | LC_ALL=C sort | while read -r crt; do
  cat "$crt"; [ -z "$(tail -c1 "$crt")" ] || echo
done) > "$dest/etc/ssl/certs/ca-certificates.crt"
rm -rf "$dest/usr/sbin" "$dest/etc/ca-certificates" "$dest/etc/ca-certificates.conf" 2>/dev/null || true

# Users, without a shell; the directories a process may write to.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$dest/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$dest/etc/group"
mkdir -p "$dest/tmp" "$dest/home/nonroot" "$dest/root" "$dest/usr/local/bin"
chmod 1777 "$dest/tmp"
chmod 0700 "$dest/home/nonroot" "$dest/root"
if [ "$(id -u)" = 0 ]; then chown 65532:65532 "$dest/home/nonroot"; fi
echo "rootfs.sh: $(find "$dest" -type f | wc -l) files, $(du -sh "$dest" | cut -f1) in $dest"
