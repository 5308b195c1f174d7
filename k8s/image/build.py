#!/usr/bin/env python3
"""Assembles the four service images as an OCI image layout, reproducibly.

Every image is two layers: the root filesystem rootfs.sh made (the same in
all four, so a node pulls it once) and the service's binary under
/usr/local/bin. Each layer is a tar with its entries sorted, every mtime set
to SOURCE_DATE_EPOCH, owner root (nonroot's home: 65532), gzip without a
name or time; the config and manifest are JSON with sorted keys. The same
commit gives the same bytes, so the same digests, on any machine.

    build.py --rootfs DIR --bin-dir DIR --out DIR --tag TAG [--epoch N]
             [--version V] [--revision R] [--source URL]

prints each image's compressed size and manifest digest, and writes the
digests to OUT/digests.txt ("<name>@sha256:...").
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time

SERVICES = {
    "tariff": (50052, "measures and duties"),
    "dispute": (50051, "trade disputes"),
    "dialogue": (50053, "sessions and commitments"),
    "relations": (50054, "bilateral briefs and dispute dossiers, no database"),
}
NONROOT = 65532


def layer(entries, epoch):
    """A deterministic tar.gz of (path in image, path on disk | None for a
    directory, mode, uid) entries; its digest, diff_id and bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, source, mode, uid in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uid = info.gid = uid
            info.uname = info.gname = "nonroot" if uid == NONROOT else "root"
            info.mode = mode
            if source is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif os.path.islink(source):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(source)
                tar.addfile(info)
            else:
                info.size = os.path.getsize(source)
                with open(source, "rb") as f:
                    tar.addfile(info, f)
    data = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(data)
    blob = packed.getvalue()
    return blob, "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def rootfs_entries(root):
    """Every file, directory and link under root, as the image holds them."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        # A link to a directory is a link in the image, not a directory to walk.
        filenames += [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            st = os.lstat(dirpath)
            uid = NONROOT if rel == "home/nonroot" else 0
            out.append((rel, None, stat.S_IMODE(st.st_mode), uid))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            relpath = os.path.normpath(os.path.join(rel, name))
            out.append((relpath, path, stat.S_IMODE(st.st_mode) if not stat.S_ISLNK(st.st_mode) else 0o777, 0))
    return out


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rootfs", required=True)
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tag", default="dev")
    p.add_argument("--epoch", type=int, default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    p.add_argument("--version", default="dev")
    p.add_argument("--revision", default="unknown")
    p.add_argument("--source", default="https://git.example.com/tradewatch/tradewatch")
    a = p.parse_args()

    blobs = os.path.join(a.out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        d = digest(data)
        with open(os.path.join(blobs, d.split(":")[1]), "wb") as f:
            f.write(data)
        return d

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.epoch))
    base_blob, base_diff, base_raw = layer(rootfs_entries(a.rootfs), a.epoch)
    base_digest = put(base_blob)
    manifests, rows = [], []
    for name, (port, what) in SERVICES.items():
        binary = f"{name}-service"
        source = os.path.join(a.bin_dir, binary)
        entries = [
            ("usr", None, 0o755, 0),
            ("usr/local", None, 0o755, 0),
            ("usr/local/bin", None, 0o755, 0),
            (f"usr/local/bin/{binary}", source, 0o755, 0),
        ]
        bin_blob, bin_diff, bin_raw = layer(entries, a.epoch)
        bin_digest = put(bin_blob)
        labels = {
            "org.opencontainers.image.title": binary,
            "org.opencontainers.image.description": f"Tradewatch {name} service: {what} (gRPC :{port})",
            "org.opencontainers.image.source": a.source,
            "org.opencontainers.image.vendor": "Tradewatch",
            "org.opencontainers.image.licenses": "Apache-2.0",
            "org.opencontainers.image.version": a.version,
            "org.opencontainers.image.revision": a.revision,
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.base.name": "scratch",
        }
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {
                "User": f"{NONROOT}:{NONROOT}",
                "Entrypoint": [f"/usr/local/bin/{binary}"],
                "Cmd": ["serve"],
                "Env": [
                    "PATH=/usr/local/bin:/usr/bin:/bin",
                    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                    "TRADEWATCH__SERVER__HOST=0.0.0.0",
                    "TRADEWATCH__LOG__FORMAT=json",
                    "MIMALLOC_ALLOW_THP=0",
                ],
                "WorkingDir": "/home/nonroot",
                "ExposedPorts": {f"{port}/tcp": {}, f"{port + 1000}/tcp": {}},
                "Labels": labels,
            },
            "rootfs": {"type": "layers", "diff_ids": [base_diff, bin_diff]},
            "history": [
                {"created": created, "created_by": "k8s/image/rootfs.sh (Debian packages of packages.lock)"},
                {"created": created, "created_by": f"COPY {binary} /usr/local/bin/"},
            ],
        }
        config_bytes = canonical(config)
        config_digest = put(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": base_digest, "size": len(base_blob)},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": bin_digest, "size": len(bin_blob)},
            ],
            "annotations": {k: v for k, v in labels.items() if k != "org.opencontainers.image.description"},
        }
        manifest_bytes = canonical(manifest)
        manifest_digest = put(manifest_bytes)
        manifests.append({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": f"{binary}:{a.tag}"},
        })
        compressed = len(base_blob) + len(bin_blob) + len(config_bytes) + len(manifest_bytes)
        rows.append((binary, compressed, base_raw + bin_raw, manifest_digest))

    with open(os.path.join(a.out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(a.out, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}))
    with open(os.path.join(a.out, "digests.txt"), "w") as f:
        for binary, _, _, d in rows:
            f.write(f"{binary}@{d}\n")
    print(f"{'image':<24} {'compressed':>11} {'unpacked':>10}  manifest digest")
    for binary, compressed, raw, d in rows:
        print(f"{binary + ':' + a.tag:<24} {compressed / 1e6:>8.1f} MB {raw / 1e6:>7.1f} MB  {d}")
    print(f"(one base layer, {len(base_blob) / 1e6:.1f} MB compressed, {base_digest}, shared by all four)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
