#!/usr/bin/python3
"""Which folder may include which: the layering the README's architecture
table describes, checked on every #include of the sources.

- common/ sits below everything: no storage/, worker/, coordinator/ or
  tools/ header.
- storage/ knows no worker/, coordinator/ or tools/ header.
- worker/ml/ (the ML core) is shared by the coordinator and the worker
  server and knows neither: no worker-server, coordinator/ or tools/
  header, and no gRPC.
- worker/ (the worker server) includes no coordinator/ or tools/ header.
- coordinator/ includes the ML core, never the worker server: what it
  sends workers is in common/worker_requests.h.
- The ML core opens no named namespace but oubli::ml, so its callers'
  code says ml::, never worker:: (which is the worker server).

Usage: layering.py [SOURCE_ROOT]  (default: this file's repository)
"""
import os
import re
import sys

INCLUDE = re.compile(r'\s*#\s*include\s*[<"]([^>"]+)[>"]')
GRPC = ("grpc/", "grpcpp/")
NAMESPACE = re.compile(r"\s*namespace\s+([\w:]+)\s*\{")


def is_grpc(name):
    return name.startswith(GRPC) or name.endswith(".grpc.pb.h")


def worker_server(name):
    return name.startswith("worker/") and not name.startswith("worker/ml/")


# (folder, predicate on an included name, why it is refused). The most
# specific folder of a file applies: worker/ml/ files follow the ML core's
# rules, not the worker server's.
RULES = {
    "common/": [
        (lambda n: n.startswith(("storage/", "worker/", "coordinator/",
                                 "tools/")),
         "common/ sits below storage, the ML core, the worker and the "
         "coordinator"),
    ],
    "storage/": [
        (lambda n: n.startswith(("worker/", "coordinator/", "tools/")),
         "storage/ sits below the ML core, the worker and the coordinator"),
    ],
    "worker/ml/": [
        (worker_server, "the ML core knows no worker-server header"),
        (lambda n: n.startswith(("coordinator/", "tools/")),
         "the ML core knows no coordinator or tools header"),
        (is_grpc, "the ML core includes no gRPC"),
    ],
    "worker/": [
        (lambda n: n.startswith(("coordinator/", "tools/")),
         "the worker server knows no coordinator or tools header"),
    ],
    "coordinator/": [
        (worker_server,
         "the coordinator depends on the ML core and common/, not on the "
         "worker server (plain requests: common/worker_requests.h)"),
        (lambda n: n.startswith("tools/"),
         "the coordinator knows no tools header"),
    ],
}


def folder_of(rel):
    best = None
    for folder in RULES:
        if rel.startswith(folder) and (best is None or len(folder) > len(best)):
            best = folder
    return best


def main():
    root = (sys.argv[1] if len(sys.argv) > 1 else
            os.path.dirname(os.path.abspath(__file__ + "/../..")))
    violations = []
    checked = 0
    for top in ("common", "storage", "worker", "coordinator"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                rules = RULES[folder_of(rel)]
                checked += 1
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, start=1):
                        ns = NAMESPACE.match(line)
                        if (ns and rel.startswith("worker/ml/") and
                                ns.group(1) != "oubli::ml"):
                            violations.append(
                                f"{rel}:{number}: namespace {ns.group(1)}: "
                                "the ML core lives in oubli::ml")
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        for refused, why in rules:
                            if refused(m.group(1)):
                                violations.append(
                                    f"{rel}:{number}: includes {m.group(1)}: "
                                    f"{why}")
    for v in violations:
        print(v)
    if checked == 0:
        print("layering: no sources found under " + root, file=sys.stderr)
        return 1
    print(f"layering: {checked} sources, {len(violations)} violation(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
