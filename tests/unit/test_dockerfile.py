"""The Dockerfile, checked without a Docker engine.

It may only copy files that exist and that ``.dockerignore`` lets into the build context;
the final image runs as a non-root user, has a HEALTHCHECK and no build tools, and its
ENTRYPOINT + CMD is ``remediator serve ...``. That command line is then run here, with the
image's paths mapped back to the repository, until ``/healthz`` answers and the
HEALTHCHECK command passes against it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Instruction:
    name: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT/CMD/HEALTHCHECK CMD."""
        text = self.args
        if self.name == "HEALTHCHECK":
            text = text[text.index("CMD") + len("CMD") :]
        value = json.loads(text)
        assert isinstance(value, list), f"{self.name} must use the exec (JSON) form"
        return [str(v) for v in value]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def last(self, name: str) -> Instruction | None:
        found = self.all(name)
        return found[-1] if found else None


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        name, _, rest = line.partition(" ")
        name, rest = name.upper(), rest.strip()
        if name == "FROM":
            words = rest.split()
            base = words[0]
            for key, value in args.items():
                base = base.replace(f"${{{key}}}", value).replace(f"${key}", value)
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, alias))
        elif not stages:
            assert name == "ARG", f"only ARG may come before FROM, not {name}"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append(Instruction(name, rest))
    return args, stages


def copy_sources(instruction: Instruction) -> tuple[list[str], str, bool]:
    """Sources, destination, and whether it copies from another stage."""
    words = shlex.split(instruction.args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    from_stage = any(f.startswith("--from=") for f in flags)
    return paths[:-1], paths[-1], from_stage


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (or a parent of it) out of the build context."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        variants = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatch(c, v) for c in candidates for v in variants):
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def test_multi_stage_on_a_slim_python_base(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2, "build and runtime stages"
    for stage in stages:
        assert stage.base.startswith("python:3.11-slim"), stage.base
    # The final image gets the application from the build stage, not by building it.
    runtime_copies = [copy_sources(i) for i in stages[-1].all("COPY")]
    assert any(from_stage for _, _, from_stage in runtime_copies)


def test_every_copied_file_exists_and_is_in_the_build_context(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    sources = [
        source
        for stage in dockerfile[1]
        for instruction in (*stage.all("COPY"), *stage.all("ADD"))
        for sources, _, from_stage in [copy_sources(instruction)]
        if not from_stage
        for source in sources
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_the_build_stage_copies_what_pip_install_needs(final: Stage, dockerfile: tuple) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    copied = {
        source.rstrip("/")
        for instruction in dockerfile[1][0].all("COPY")
        for source in copy_sources(instruction)[0]
    }
    assert {"pyproject.toml", project["readme"], "remediator"} <= copied
    assert "remediator" in project["scripts"]


def test_the_final_image_runs_as_a_non_root_user(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None, "no USER in the final stage"
    name = user.args.split(":")[0]
    assert name not in {"root", "0"}
    assert name.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"


def test_the_final_image_has_no_build_tools(final: Stage) -> None:
    for run in final.all("RUN"):
        for tool in ("apt-get install", "apk add", "gcc", "build-essential", "pip install"):
            assert tool not in run.args, f"final stage runs {tool!r}"


def test_healthcheck_and_entrypoint(final: Stage) -> None:
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None
    assert "/healthz" in " ".join(healthcheck.exec_form())
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form() == ["remediator", "serve"]
    cmd = final.last("CMD")
    assert cmd is not None
    args = cmd.exec_form()
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert "9595" in {e.split("/")[-1] for e in final.all("EXPOSE")[0].args.split()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_entrypoint_serves_until_healthz_answers(final: Stage, tmp_path: Path) -> None:
    """ENTRYPOINT + CMD as the image runs it, with the image's paths mapped to the repo."""
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    argv = entrypoint.exec_form() + cmd.exec_form()
    in_image = {
        dest.rstrip("/"): REPO / sources[0]
        for instruction in final.all("COPY")
        for sources, dest, from_stage in [copy_sources(instruction)]
        if not from_stage
    }
    port = _free_port()
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert set(options) <= {"--host", "--port", "--runbooks", "--store", "--config"}
    options["--host"] = "127.0.0.1"
    options["--port"] = str(port)
    if "--runbooks" in options:
        options["--runbooks"] = str(in_image[options["--runbooks"].rstrip("/")])
    store = options.get("--store", "")
    assert store.startswith("sqlite+aiosqlite:////data/"), "SQLite on the /data volume"
    options["--store"] = f"sqlite+aiosqlite:///{tmp_path / Path(store).name}"
    command = [
        sys.executable,
        "-m",
        "remediator",
        argv[1],
        *(x for kv in options.items() for x in kv),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
    env["REMEDIATOR_AUTH__BEARER_TOKEN"] = "dockerfile-test"
    log = tmp_path / "serve.log"
    with (
        log.open("wb") as out,
        subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        ) as proc,
    ):
        try:
            deadline = time.monotonic() + 60
            status = 0
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    status = _get(f"http://127.0.0.1:{port}/healthz")
                except OSError:
                    status = 0
                if status == 200:
                    break
                time.sleep(0.2)
            assert status == 200, f"/healthz never answered:\n{log.read_text(errors='replace')}"
            assert _get(f"http://127.0.0.1:{port}/readyz") == 200

            healthcheck = final.last("HEALTHCHECK")
            assert healthcheck is not None
            check = healthcheck.exec_form()
            assert check[0] == "python"
            check = [sys.executable, *(a.replace(":9595/", f":{port}/") for a in check[1:])]
            result = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
            assert result.returncode == 0, result.stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # And the healthcheck fails once nothing answers.
    result = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
