#!/usr/bin/python3
"""Clang's thread-safety analysis over every source that uses absl::Mutex.

GCC builds the project and ignores ABSL_GUARDED_BY and friends; this check
re-parses those sources with clang (-fsyntax-only, the build's own flags
from compile_commands.json) with -Werror=thread-safety, so a field read
without its mutex, or a lock-order annotation broken, fails the tests.

Usage: thread_safety.py BUILD_DIR [FILE...]  (files: only those)
"""
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

CHECKED_DIRS = ("common/", "storage/", "worker/", "coordinator/")
# Sources that must be analysed, not skipped: if one starts including
# LibTorch (or stops being selected), the check fails instead of quietly
# checking less.
MUST_CHECK = {
    "coordinator/engine.cc",
    "coordinator/pending_deletions.cc",
    "coordinator/purger.cc",
    "coordinator/retrain_scheduler.cc",
    "coordinator/verifier.cc",
    "coordinator/chunk_replication.cc",
    "coordinator/model_registry.cc",
    "coordinator/worker_pool.cc",
    "coordinator/worker_training.cc",
    "storage/lineage_store.cc",
}
# The tensor type alone parses with clang (see includes_libtorch).
PARSABLE_TORCH_HEADERS = {"ATen/core/Tensor.h"}
USES_LOCKS = re.compile(r"absl::Mutex|ABSL_GUARDED_BY|ABSL_EXCLUSIVE_LOCKS")


def clang_command(entry):
    args = shlex.split(entry["command"])
    out = ["clang++"]
    skip = 0
    for i, arg in enumerate(args[1:], start=1):
        if skip:
            skip -= 1
            continue
        if arg in ("-o", "-MT", "-MF", "-include"):
            skip = 1  # the flag and its value
            continue
        if arg in ("-c", "-MD", "-Winvalid-pch") or arg.startswith("-g"):
            continue
        if arg == "/usr/bin/ccache":
            continue
        out.append(arg)
    # GCC's warning set is not clang's; only the analysis matters here.
    out += ["-fsyntax-only", "-Wno-everything", "-Wthread-safety",
            "-Werror=thread-safety"]
    return out


def check(entry):
    cmd = clang_command(entry)
    result = subprocess.run(cmd, cwd=entry["directory"], capture_output=True,
                            text=True)
    return entry["file"], result.returncode, result.stderr


def includes_libtorch(path, root, seen=None):
    """Whether `path` includes LibTorch, directly or through our headers."""
    seen = set() if seen is None else seen
    if path in seen or not os.path.exists(path):
        return False
    seen.add(path)
    with open(path) as f:
        for line in f:
            m = re.match(r'#include [<"]([^>"]+)[>"]', line)
            if not m:
                continue
            name = m.group(1)
            if name in PARSABLE_TORCH_HEADERS:
                continue
            if name.startswith(("torch/", "ATen/", "c10/")):
                return True
            if includes_libtorch(os.path.join(root, name), root, seen):
                return True
    return False


def main():
    build_dir = sys.argv[1]
    only = set(os.path.abspath(f) for f in sys.argv[2:])
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        entries = json.load(f)
    root = os.path.dirname(os.path.abspath(__file__ + "/../.."))
    selected = []
    unparsable = []
    for entry in entries:
        path = entry["file"]
        rel = os.path.relpath(path, root)
        if only and path not in only:
            continue
        if not rel.startswith(CHECKED_DIRS):
            continue
        with open(path) as f:
            text = f.read()
        header = os.path.splitext(path)[0] + ".h"
        if os.path.exists(header):
            with open(header) as f:
                text += f.read()
        if not USES_LOCKS.search(text):
            continue
        # clang 14 cannot parse LibTorch's headers in C++20 mode against
        # libstdc++ 12 (constexpr std::vector of an incomplete c10::IValue),
        # and with a parse error it runs no analysis: those sources are
        # listed, not checked.
        if includes_libtorch(path, root):
            unparsable.append(rel)
            continue
        selected.append(entry)
    if not selected:
        print("thread-safety: no sources selected", file=sys.stderr)
        return 1
    checked = {os.path.relpath(e["file"], root) for e in selected}
    missing = sorted(MUST_CHECK - checked) if not only else []
    if missing:
        print("thread-safety: not analysed (skipped or not selected): " +
              ", ".join(missing), file=sys.stderr)
        return 1
    failed = 0
    jobs = int(os.environ.get("OUBLI_JOBS", "2"))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for path, code, stderr in pool.map(check, selected):
            rel = os.path.relpath(path, root)
            if code != 0:
                failed += 1
                print(f"FAIL {rel}\n{stderr}")
            else:
                print(f"ok   {rel}")
    for rel in sorted(set(unparsable)):
        print(f"skip {rel} (includes LibTorch)")
    print(f"thread-safety: {len(selected) - failed}/{len(selected)} clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
