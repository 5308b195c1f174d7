#!/usr/bin/env bash
# Checks that the Dockerfile gives the images the same files `make images`
# gives them. An engine's build needs its base images from a registry, which
# this check cannot reach; so it makes the Dockerfile's Debian base the way
# Debian makes it (mmdebstrap, from Debian's packages), builds the
# Dockerfile's runtime stage with buildah (no daemon) on it, and compares
# that stage's files — path, type, mode, owner, size, content — with the
# root filesystem layer of the images in the OCI layout. The service stages
# add one file each, /usr/local/bin/<service>-service, which build.py adds
# the same way.
#
# Usage: same-files.sh IMAGE_DIR TAG
set -euo pipefail
dir=$1 tag=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
base=localhost/tradewatch/debian-bookworm:same-files
stage=localhost/tradewatch/runtime:same-files
work=$(mktemp -d)
ctr=
cleanup() {
  [ -z "$ctr" ] || { buildah umount "$ctr" >/dev/null 2>&1; buildah rm "$ctr" >/dev/null 2>&1; } || true
  buildah rmi -f "$stage" "$base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/debian.tar"
buildah import "$work/debian.tar" "$base" >/dev/null 2>&1 || podman import -q "$work/debian.tar" "$base" >/dev/null
# What this machine's runtime needs (as in smoke.sh): runc for a hybrid
# cgroup hierarchy, rlimits no higher than the process may set.
flags=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
if [ -d /sys/fs/cgroup/unified ] && command -v runc >/dev/null; then flags+=(--runtime runc); fi
buildah bud --quiet "${flags[@]}" --network host --target runtime --build-arg "DEBIAN_IMAGE=$base" \
  -t "$stage" -f "$repo/Dockerfile" "$repo" >/dev/null
ctr=$(buildah from "$stage")
mnt=$(buildah mount "$ctr")
python3 - "$dir/oci" "$tag" "$mnt" <<'PY'
import hashlib, json, os, stat, sys, tarfile
oci, tag, root = sys.argv[1:]
index = json.load(open(f"{oci}/index.json"))
ref = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == f"tariff-service:{tag}")
blob = lambda d: f"{oci}/blobs/sha256/{d.split(':')[1]}"
manifest = json.load(open(blob(ref["digest"])))
def sha(f):
    return hashlib.sha256(f.read()).hexdigest()
layer = {}
with tarfile.open(blob(manifest["layers"][0]["digest"])) as tar:
    for m in tar.getmembers():
        kind = "dir" if m.isdir() else "link" if m.issym() else "file"
        extra = m.linkname if m.issym() else (sha(tar.extractfile(m)) if m.isfile() else "")
        layer[m.name.strip("/")] = (kind, m.mode & 0o7777 if kind != "link" else 0, m.uid, m.gid, m.size if kind == "file" else 0, extra)
built = {}
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            built[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, 0, "")
        elif stat.S_ISLNK(st.st_mode):
            built[rel] = ("link", 0, st.st_uid, st.st_gid, 0, os.readlink(path))
        else:
            with open(path, "rb") as f:
                built[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, sha(f))
only_layer = sorted(set(layer) - set(built))
only_built = sorted(set(built) - set(layer))
differ = sorted(p for p in set(layer) & set(built) if layer[p] != built[p])
for what, paths in (("only in make images", only_layer), ("only in the Dockerfile's", only_built), ("different", differ)):
    for p in paths[:20]:
        print(f"  {what}: {p} {layer.get(p)} {built.get(p)}")
if only_layer or only_built or differ:
    sys.exit(f"same-files: the Dockerfile's runtime stage and make images differ ({len(only_layer)} + {len(only_built)} + {len(differ)} paths)")
print(f"== same-files: the Dockerfile's runtime stage and make images hold the same {len(layer)} paths "
      "(type, mode, owner, size and content of each)")
PY
