#!/usr/bin/env python3
"""Writes a container image as a Docker archive, which `ctr images import`
reads: no registry and no image builder needed.

    image.py OUT.tar NAME:TAG [NAME:TAG ...]
        [--layer ROOTFS.tar ...]          lower layers, as they are (shared between images)
        [--file SRC=DEST[:MODE] ...]      files of the top layer (empty SRC: an empty file)
        [--tree SRC_DIR=DEST ...]         a directory's files, recursively, into the top layer (modes and links kept)
        [--dir DEST[:MODE] ...]           an empty directory in the top layer
        [--link TARGET=DEST ...]          a symbolic link in the top layer
        [--entrypoint=ARG ...] [--cmd=ARG ...] [--env K=V ...] [--user UID:GID]

Every name given is a tag of the same image.
"""
import argparse
import hashlib
import json
import os
import shutil
import tarfile
import tempfile


def add_parents(tar, dest, seen):
    parts = dest.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        directory = "/".join(parts[:i])
        if directory not in seen:
            seen.add(directory)
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)


def top_layer(path, files, trees, dirs, links):
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen = set()
        for dest, mode in dirs:
            # Each path once: buildah refuses a layer naming one twice.
            add_parents(tar, dest, seen)
            seen.add(dest.strip("/"))
            info = tarfile.TarInfo(dest.strip("/"))
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for src, dest in trees:
            for directory, subdirs, names in sorted(os.walk(src)):
                for name in sorted(names) + sorted(d for d in subdirs if os.path.islink(os.path.join(directory, d))):
                    full = os.path.join(directory, name)
                    target = os.path.join(dest, os.path.relpath(full, src))
                    if os.path.islink(full):
                        # Kept a link: a toolchain's libLLVM.so.N points at its
                        # versioned name, and copying would store it twice.
                        links.append((os.readlink(full), target))
                    else:
                        files.append((full, target, 0o755 if os.access(full, os.X_OK) else 0o644))
        for src, dest, mode in files:
            add_parents(tar, dest, seen)
            info = tarfile.TarInfo(dest.strip("/"))
            info.mode = mode
            if src:
                info.size = os.path.getsize(src)
                with open(src, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
        for target, dest in links:
            add_parents(tar, dest, seen)
            info = tarfile.TarInfo(dest.strip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("names", nargs="+")
    parser.add_argument("--layer", action="append", default=[])
    parser.add_argument("--file", action="append", default=[])
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--dir", action="append", default=[])
    parser.add_argument("--link", action="append", default=[])
    parser.add_argument("--entrypoint", action="append", default=[])
    parser.add_argument("--cmd", action="append", default=[])
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--user", default="")
    args = parser.parse_args()
    files = []
    for spec in args.file:
        src, rest = spec.split("=", 1)
        dest, _, mode = rest.partition(":")
        files.append((src, dest, int(mode, 8) if mode else 0o755))
    trees = [tuple(spec.split("=", 1)) for spec in args.tree]
    dirs = []
    for spec in args.dir:
        dest, _, mode = spec.partition(":")
        dirs.append((dest, int(mode, 8) if mode else 0o755))
    links = [tuple(spec.split("=", 1)) for spec in args.link]
    env = args.env or ["PATH=/usr/local/bin:/usr/bin:/bin"]

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as work:
        top = os.path.join(work, "top.tar")
        top_layer(top, files, trees, dirs, links)
        layers = args.layer + [top]
        diff_ids = [sha256_of(layer) for layer in layers]
        config = json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": args.entrypoint, "Cmd": args.cmd or None, "User": args.user, "Env": env},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            # One entry per layer: builders (buildah) that stack layers on
            # this image refuse one whose history does not match its layers.
            "history": [{"created_by": f"image.py layer {n}"} for n in range(len(layers))],
        }).encode()
        config_path = os.path.join(work, "config.json")
        with open(config_path, "wb") as out:
            out.write(config)
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        layer_names = [diff_id.split(":")[1] + "/layer.tar" for diff_id in diff_ids]
        manifest_path = os.path.join(work, "manifest.json")
        with open(manifest_path, "w") as out:
            json.dump([{"Config": config_name, "RepoTags": args.names, "Layers": layer_names}], out)
        with tarfile.open(args.out + ".tmp", "w") as out:
            for layer, name in zip(layers, layer_names):
                out.add(layer, arcname=name)
            out.add(config_path, arcname=config_name)
            out.add(manifest_path, arcname="manifest.json")
        shutil.move(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
