#!/usr/bin/env python3
"""Offline checks of docker/ (no Docker engine needed; scripts/docker_smoke.sh builds and runs it for real):
the compose files' structure, that the Dockerfile's COPY sources exist and aren't dockerignored, that its
apt packages match scripts/install.sh, that the binaries it runs are CMake targets, that both variants'
stages exist, and that ports, paths, settings and timeouts agree between Dockerfile, compose files,
.env.example and config example. Exit status 1 on any failure."""

import fnmatch
import json
import os
import re
import shlex
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(ROOT, "docker")
results = []  # (name, ok, detail)


def check(name, ok, detail=""):
    results.append((name, bool(ok), detail))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


# ---- YAML: PyYAML when importable, else a parser for the block-style subset compose files use -------
def _scalar(s):
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    if s.startswith("[") and s.endswith("]"):
        return [_scalar(x) for x in s[1:-1].split(",") if x.strip()]
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return {"true": True, "false": False, "null": None, "~": None}.get(s, s)


def _strip_comment(line):
    out, quote = [], None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(c)
    return "".join(out).rstrip()


def mini_yaml(text):
    lines = [(len(l) - len(l.lstrip(" ")), l.strip()) for l in map(_strip_comment, text.splitlines())
             if l.strip() and l.strip() != "---"]
    pos = 0

    def block(indent):
        nonlocal pos
        if lines[pos][1].startswith("- "):
            seq = []
            while pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("- "):
                item = lines[pos][1][2:]
                if re.match(r"^[\w.-]+:(\s|$)", item):  # "- key: value" starts a mapping item
                    lines[pos] = (indent + 2, item)
                    seq.append(block(indent + 2))
                else:
                    seq.append(_scalar(item))
                    pos += 1
            return seq
        mapping = {}
        while pos < len(lines) and lines[pos][0] == indent:
            key, _, rest = lines[pos][1].partition(":")
            pos += 1
            if rest.strip():
                mapping[key.strip()] = _scalar(rest)
            elif pos < len(lines) and lines[pos][0] > indent:
                mapping[key.strip()] = block(lines[pos][0])
            elif pos < len(lines) and lines[pos][0] == indent and lines[pos][1].startswith("- "):
                mapping[key.strip()] = block(indent)
            else:
                mapping[key.strip()] = None
        return mapping

    return block(lines[0][0]) if lines else {}


def load_yaml(text):
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        return mini_yaml(text), "mini parser"

    class ComposeLoader(yaml.SafeLoader):
        pass

    # Compose's merge tags: !reset (drop the inherited value), !override (replace instead of merge).
    for tag in ("!reset", "!override"):
        ComposeLoader.add_constructor(tag, lambda loader, node: (
            loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else
            loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else loader.construct_scalar(node)))
    return yaml.load(text, Loader=ComposeLoader), "PyYAML"


def env_default(s):
    """${NAME:-default} -> default (what compose substitutes when .env does not set NAME)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(s))


# ---- Dockerfile parsing ---------------------------------------------------------------------------
def dockerfile_instructions(text):
    """[(stage_index, INSTRUCTION, args)] with continuations joined and comments dropped."""
    out, cur, stage = [], "", -1
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if cur and line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        instr, _, args = cur.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage += 1
        out.append((stage, instr, args.strip()))
        cur = ""
    return out


def exec_form(args):
    args = args.strip()
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def apt_packages(run_args):
    pkgs = set()
    for cmd in re.split(r"&&|;|\|\|", run_args):
        toks = cmd.split()
        if "install" in toks and any(t in ("apt-get", "apt") for t in toks[: toks.index("install")]):
            pkgs |= {t for t in toks[toks.index("install") + 1:] if not t.startswith("-")}
    return pkgs


def install_sh_packages():
    m = re.search(r"APT_PACKAGES=\((.*?)\)", read("scripts/install.sh"), re.S)
    return set(m.group(1).split()) if m else set()


def cmake_targets():
    names = set()
    for dirpath, _, files in os.walk(ROOT):
        if any(p in dirpath for p in ("/.venv", "/build", "/.git")):
            continue
        for f in files:
            if f == "CMakeLists.txt":
                with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                    names |= set(re.findall(r"add_executable\(\s*([\w.-]+)", fh.read()))
    return names


def dockerignored(path, patterns):
    """Docker semantics, simplified: patterns are anchored at the context root ("**/" matches at any
    depth); a path is excluded when it or a parent matches; the last matching pattern wins ("!" re-includes)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    anywhere = ["/".join(parts[j: i + 1]) for i in range(len(parts)) for j in range(i + 1)]
    excluded = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = (pat[1:] if neg else pat).strip("/")
        cands, q = (anywhere, p[3:]) if p.startswith("**/") else (prefixes, p)
        if any(fnmatch.fnmatchcase(c, q) for c in cands):
            excluded = not neg
    return excluded


def main():
    dockerfile = read("docker/Dockerfile")
    instrs = dockerfile_instructions(dockerfile)
    ignore_file = "docker/Dockerfile.dockerignore"
    check("dockerignore exists", os.path.exists(os.path.join(ROOT, ignore_file)), ignore_file)
    patterns = [l.strip() for l in read(ignore_file).splitlines() if l.strip() and not l.startswith("#")] \
        if os.path.exists(os.path.join(ROOT, ignore_file)) else []
    for must in (".venv", "build*", "test-models"):
        check(f"dockerignore excludes {must}", must in patterns)
    for rel in ("scripts/install.sh", "scripts/build.sh", "scripts/requirements.txt", "CMakeLists.txt",
                "server/cli/ditctl.cc", "docker/install_torch.sh", "proto/ditserve/v1/ditserve.proto"):
        check(f"dockerignore keeps {rel}", not dockerignored(rel, patterns))
    for rel in (".venv/bin/python", "build/server/ditserve", "build-cli/x", "docker/models/flux", "docker/Dockerfile",
                "docker/docker-compose.yml", "docs/deployment.md", "README.md", "tests/config_test.cc", ".dev/tools"):
        check(f"dockerignore drops {rel}", dockerignored(rel, patterns))

    # FROM: per variant a toolchain and a base stage (CUDA 13 for gpu, Debian 12 for cpu), one builder and one
    # runtime stage picked by ARG VARIANT.
    stages = {}
    for _, i, a in instrs:
        if i == "FROM":
            image, _, name = a.partition(" AS ")
            stages[name.strip()] = image.strip()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", dockerfile, re.M))

    def expand(s):
        for _ in range(5):  # ARG defaults may name other ARGs
            s = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), s)
        return s

    check("ARG VARIANT defaults to gpu", args.get("VARIANT") == "gpu", args.get("VARIANT"))
    check("gpu toolchain is a CUDA 13 devel image",
          re.match(r"nvidia/cuda:13\.\d+\.\d+-\S*devel", expand(stages.get("gpu-toolchain", ""))),
          expand(stages.get("gpu-toolchain", "missing")))
    check("gpu base is a CUDA 13 base image", re.match(r"nvidia/cuda:13\.\d+\.\d+-base", expand(stages.get("gpu-base", ""))),
          expand(stages.get("gpu-base", "missing")))
    check("cpu toolchain and base are Debian 12", expand(stages.get("cpu-toolchain", "")).startswith("debian:bookworm")
          and expand(stages.get("cpu-base", "")).startswith("debian:bookworm"),
          (stages.get("cpu-toolchain"), stages.get("cpu-base")))
    check("builder FROM ${VARIANT}-toolchain", stages.get("builder") == "${VARIANT}-toolchain", stages.get("builder"))
    check("runtime FROM ${VARIANT}-base", stages.get("runtime") == "${VARIANT}-base", stages.get("runtime"))
    check("runtime is the last stage", list(stages)[-1:] == ["runtime"], list(stages))
    runtime_idx = list(stages).index("runtime") if "runtime" in stages else -1
    users = [a for st, i, a in instrs if i == "USER" and st == runtime_idx]
    check("runtime runs as a non-root user", users and users[-1].split(":")[0] not in ("root", "0"), users)

    # COPY/ADD sources exist in the repository and survive the dockerignore.
    for stage, instr, a in instrs:
        if instr not in ("COPY", "ADD"):
            continue
        toks = exec_form(a)
        if any(t.startswith("--from") for t in toks):
            continue
        srcs = [t for t in toks if not t.startswith("--")][:-1]
        for src in srcs:
            if src in (".", "./"):
                check("COPY . (context root)", True)
                continue
            check(f"{instr} source exists: {src}", os.path.exists(os.path.join(ROOT, src)))
            check(f"{instr} source not dockerignored: {src}", not dockerignored(src, patterns))

    # apt packages: Dockerfile == scripts/install.sh.
    docker_pkgs = set()
    for _, instr, a in instrs:
        if instr == "RUN":
            docker_pkgs |= apt_packages(a)
    sh_pkgs = install_sh_packages()
    check("install.sh APT_PACKAGES parsed", len(sh_pkgs) > 5, f"{len(sh_pkgs)} packages")
    check("apt packages in Dockerfile but not install.sh", not (docker_pkgs - sh_pkgs), sorted(docker_pkgs - sh_pkgs))
    check("apt packages in install.sh but not Dockerfile", not (sh_pkgs - docker_pkgs), sorted(sh_pkgs - docker_pkgs))
    check("python3-venv installed", "python3-venv" in docker_pkgs)

    # Builder installs the pinned torch (requirements.txt) and runs build.sh; the runtime keeps torch/lib and the
    # three binaries.
    runs = " ".join(a for _, i, a in instrs if i == "RUN")
    check("RUN docker/install_torch.sh", "docker/install_torch.sh" in runs)
    check("install_torch.sh takes torch's pin from requirements.txt",
          "scripts/requirements.txt" in read("docker/install_torch.sh"))
    check("RUN scripts/build.sh build", re.search(r"scripts/build\.sh\s+build\b", runs))
    check("scripts/build.sh exists", os.path.exists(os.path.join(ROOT, "scripts/build.sh")))
    check("keeps torch/lib", "torch/lib" in runs)
    targets = cmake_targets()
    for b in ("ditserve", "ditserve-worker", "ditctl"):
        check(f"build/server/{b} is a CMake target and staged", b in targets and f"build/server/{b}" in runs)

    # ENTRYPOINT / HEALTHCHECK binaries are CMake targets; config path and ports.
    entry = [exec_form(a) for _, i, a in instrs if i == "ENTRYPOINT"]
    check("ENTRYPOINT present", entry)
    entry = entry[-1] if entry else []
    check("ENTRYPOINT binary is a CMake target", entry and os.path.basename(entry[0]) in targets, entry[:1])
    check("ENTRYPOINT --config /etc/ditserve/config.json",
          "--config" in entry and entry[entry.index("--config") + 1:][:1] == ["/etc/ditserve/config.json"])
    hc = [a for _, i, a in instrs if i == "HEALTHCHECK"]
    hc_cmd = exec_form(hc[-1].split("CMD", 1)[1]) if hc and "CMD" in hc[-1] else []
    check("HEALTHCHECK runs `ditctl health`", hc_cmd[:2] == ["ditctl", "health"] and "ditctl" in targets, hc_cmd)
    expose = set()
    for _, i, a in instrs:
        if i == "EXPOSE":
            expose |= {int(p.split("/")[0]) for p in a.split()}
    check("EXPOSE 50051 9090", expose == {50051, 9090}, sorted(expose))

    # docker-compose.yml (+ the GPU and host-network overrides, .env.example)
    compose, parser = load_yaml(read("docker/docker-compose.yml"))
    check(f"compose parses ({parser})", isinstance(compose, dict))
    check("compose v2 format (no version key)", isinstance(compose, dict) and "version" not in compose)
    svc = (compose or {}).get("services", {}).get("ditserve") if isinstance(compose, dict) else None
    check("service ditserve", isinstance(svc, dict))
    svc = svc if isinstance(svc, dict) else {}
    build = svc.get("build") or {}
    check("build.context ..", build.get("context") == "..", build.get("context"))
    df = build.get("dockerfile", "")
    check("build.dockerfile resolves to docker/Dockerfile",
          os.path.normpath(os.path.join(DOCKER, build.get("context", ""), df)) == os.path.join(DOCKER, "Dockerfile"), df)
    build_args = build.get("args") or {}
    check("build args are Dockerfile ARGs", build_args and set(build_args) <= set(args), sorted(build_args))
    ports = [env_default(p) for p in svc.get("ports") or []]
    check("ports published on loopback by default", set(ports) == {"127.0.0.1:50051:50051", "127.0.0.1:9090:9090"}, ports)
    check("compose container ports == EXPOSE", {int(p.rsplit(":", 1)[-1].split("/")[0]) for p in ports} == expose)
    vols = [env_default(v) for v in svc.get("volumes") or []]
    check("volume ./models:/models:ro", "./models:/models:ro" in vols, vols)
    cfg_mount = [v for v in vols if v.split(":")[1:2] == ["/etc/ditserve/config.json"]]
    check("config mounted read-only at the ENTRYPOINT path", cfg_mount and cfg_mount[0].endswith(":ro"), cfg_mount)
    check("read-only root filesystem", svc.get("read_only") is True)
    check("tmpfs /tmp (worker sockets)", any(str(t).split(":")[0] == "/tmp" for t in svc.get("tmpfs") or []))
    check("init: true (signals forwarded, zombies reaped)", svc.get("init") is True)
    check("stop_signal SIGTERM", svc.get("stop_signal") == "SIGTERM")
    grace = str(svc.get("stop_grace_period", ""))
    check("stop_grace_period 120s", grace == "120s", grace)
    check("restart unless-stopped", svc.get("restart") == "unless-stopped")
    cmd = [env_default(c) for c in svc.get("command") or []]
    check("command: --log-format json by default", cmd[:2] == ["--log-format", "json"], cmd)
    check("logs rotated", ((svc.get("logging") or {}).get("options") or {}).get("max-size"))

    gpu_file, _ = load_yaml(read("docker/docker-compose.gpu.yml"))
    gsvc = ((gpu_file or {}).get("services") or {}).get("ditserve") or {}
    check("gpu override builds VARIANT gpu", ((gsvc.get("build") or {}).get("args") or {}).get("VARIANT") == "gpu")
    devices = (((gsvc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    gpu = [d for d in devices if isinstance(d, dict) and d.get("driver") == "nvidia"]
    check("GPU reservation driver nvidia", gpu)
    check("GPU reservation count all by default", gpu and env_default(gpu[0].get("count")) == "all")
    check("GPU reservation capabilities [gpu]", gpu and "gpu" in (gpu[0].get("capabilities") or []))
    check("gpu override: /dev/shm for NCCL", gsvc.get("shm_size"))

    host_file, _ = load_yaml(read("docker/docker-compose.hostnet.yml"))
    hsvc = ((host_file or {}).get("services") or {}).get("ditserve") or {}
    check("hostnet override: network_mode host, no published ports",
          hsvc.get("network_mode") == "host" and hsvc.get("ports") in ([], "!reset []"), hsvc)

    env_example = read("docker/.env.example")
    env_keys = set(re.findall(r"^#?\s*(\w+)=", env_example, re.M))
    used = set()
    for f in ("docker/docker-compose.yml", "docker/docker-compose.gpu.yml"):
        used |= set(re.findall(r"\$\{(\w+)", read(f)))
    check(".env.example documents every variable the compose files use", not (used - env_keys), sorted(used - env_keys))
    check(".env.example sets nothing the compose files ignore", not (env_keys - used - {"COMPOSE_FILE"}),
          sorted(env_keys - used - {"COMPOSE_FILE"}))

    # config.example.json: valid, keys the daemon knows, consistent with the compose file.
    try:
        cfg = json.loads(read("docker/config.example.json"))
    except (OSError, ValueError) as e:
        cfg = None
        check("config.example.json parses", False, str(e))
    if cfg is not None:
        check("config.example.json parses", True)
        config_cc = read("server/config.cc") if os.path.exists(os.path.join(ROOT, "server/config.cc")) else ""

        def keys(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    yield k
                    yield from keys(v)
            elif isinstance(o, list):
                for v in o:
                    yield from keys(v)

        unknown = sorted({k for k in keys(cfg) if f'"{k}"' not in config_cc})
        check("config keys are known to server/config.cc", config_cc and not unknown, unknown)
        srv = cfg.get("server", {})
        for key, port in (("grpc_address", 50051), ("metrics_address", 9090)):
            check(f"server.{key} listens on 0.0.0.0:{port}", srv.get(key) == f"0.0.0.0:{port}", srv.get(key))
        paths = [m.get("path", "") for m in cfg.get("models", [])]
        check("model paths under the /models mount", paths and all(p.startswith("/models/") for p in paths), paths)
        drain = srv.get("drain_timeout_s", 600)
        check("drain_timeout_s < stop_grace_period", grace.endswith("s") and drain < float(grace[:-1]), drain)

    failed = [r for r in results if not r[1]]
    for name, ok, detail in results:
        if not ok or os.environ.get("VERBOSE"):
            print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail not in ("", None) else ""))
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
