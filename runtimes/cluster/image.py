#!/usr/bin/env python3
"""Writes a one-layer container image as a Docker archive, which
`ctr images import` reads: no registry and no image builder needed for
images that are a few static files.

    image.py OUT.tar NAME:TAG --file SRC=DEST[:MODE] ... [--entrypoint=ARG ...] [--user UID:GID]
"""
import argparse
import hashlib
import io
import json
import tarfile


def layer(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = set()
        for src, dest, mode in files:
            parts = dest.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                directory = "/".join(parts[:i])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            data = open(src, "rb").read() if src else b""
            info = tarfile.TarInfo(dest.strip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("name")
    parser.add_argument("--file", action="append", default=[], help="SRC=DEST[:MODE] (empty SRC: an empty file)")
    parser.add_argument("--entrypoint", action="append", default=[], help="one argument of the entrypoint (repeat)")
    parser.add_argument("--user", default="")
    args = parser.parse_args()
    files = []
    for spec in args.file:
        src, rest = spec.split("=", 1)
        dest, _, mode = rest.partition(":")
        files.append((src, dest, int(mode, 8) if mode else 0o755))
    blob = layer(files)
    diff_id = "sha256:" + hashlib.sha256(blob).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": args.entrypoint, "User": args.user, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [args.name], "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(args.out, "w") as out:
        for name, data in [("layer.tar", blob), (config_name, config), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
