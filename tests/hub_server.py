#!/usr/bin/env python
"""A small Hugging Face Hub-compatible HTTP server for tests and offline demos (127.0.0.1 only, in memory).

It answers enough of the Hub API for huggingface_hub's real client to create a repo, commit files (as
"regular" uploads, never LFS or Xet), read repo info and trees, and download files:

    POST /api/repos/create                          create a repo (409 with its url if it exists)
    POST /api/validate-yaml                         check a README.md's YAML metadata
    POST /api/{type}s/{ns}/{name}/preupload/{rev}   upload modes ("regular") and remote oids
    POST /api/{type}s/{ns}/{name}/commit/{rev}      an ndjson commit (header, file, deletedFile...)
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]  repo info (sha, siblings, private)
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/dir]  file listing
    HEAD|GET /[{type}s/]{ns}/{name}/resolve/{rev}/{path}   with X-Repo-Commit, ETag, Content-Length
    GET  /api/whoami-v2
    GET|POST|DELETE /api/spaces/{ns}/{name}/variables   a Space's variables (create_repo type "space" needs an sdk)

Writes need an `Authorization: Bearer TOKEN` header (any token, or the one given with --token; a wrong token is
refused on every request when --token is set); private repos need it to be read. A gated repo's downloads
answer 403 GatedRepo to tokens that were not granted. `HubServer.put(repo, {path: bytes | Announced(size)})`
fills a repo directly; an `Announced` file is listed with its size but never held (a 50 GB weights file). Faults can be injected (`--fail-commits N`, or `HubServer.fail(...)` in
tests) to simulate an upload that breaks half-way.

    python tests/hub_server.py --port 8765          # then: HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=x ...
    python tests/hub_server.py --port 8765 --detach --pid-file hub.pid   # returns once it listens; kill $(cat hub.pid)

In tests, `start_hub_server()` runs it in a thread on a free port; the `hub_server` fixture wraps that.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

USER = "test-user"
REPO_TYPES = ("model", "dataset", "space")
PIPELINE_TAGS = {"image-to-image", "image-classification", "unconditional-image-generation", "text-to-image",
                 "image-segmentation", "depth-estimation", "other"}


class Announced(bytes):
    """A file the server lists with a declared size but does not hold (its content is empty): metadata,
    trees and HEAD report `size`; a GET is refused. Lets a test announce a 50 GB weights file."""

    size: int

    def __new__(cls, size: int):
        obj = super().__new__(cls, b"")
        obj.size = int(size)
        return obj


def size_of(data: bytes) -> int:
    return data.size if isinstance(data, Announced) else len(data)


def git_oid(data: bytes) -> str:
    """The git blob id of a file's content (what the Hub reports for regular files)."""
    if isinstance(data, Announced):
        return hashlib.sha1(b"announced %d" % data.size).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, bytes]
    date: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    created: str = ""
    sdk: str | None = None                                     # a Space's SDK ("gradio", ...)
    variables: dict[str, dict] = field(default_factory=dict)   # a Space's variables: key -> {value, description}
    gated: bool = False                                        # downloads need a granted token
    granted: set[str] = field(default_factory=set)             # tokens that accepted a gated repo's conditions

    def resolve(self, rev: str) -> Commit | None:
        sha = self.branches.get(rev, rev)
        return self.commits.get(sha)

    def history(self, branch: str = "main") -> list[Commit]:
        out, sha = [], self.branches.get(branch)
        while sha:
            out.append(self.commits[sha])
            sha = self.commits[sha].parent
        return out


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubState:
    """Repos, the request log and the injected faults, shared by the handler threads."""

    def __init__(self, token: str | None = None):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[tuple[str, str, int]] = []
        self.faults: list[dict] = []
        self.lock = threading.Lock()
        self._counter = 0

    def new_sha(self, *parts: str) -> str:
        self._counter += 1
        return hashlib.sha1("\0".join([*parts, str(self._counter), str(time.time_ns())]).encode()).hexdigest()

    def commit(self, repo: Repo, branch: str, message: str, files: dict[str, bytes]) -> Commit:
        parent = repo.branches.get(branch)
        c = Commit(self.new_sha(repo.repo_id, message, parent or ""), parent, message, files, now())
        repo.commits[c.sha] = c
        repo.branches[branch] = c.sha
        return c

    def fail(self, method: str, path_pattern: str, times: int = 1, status: int = 500,
             mode: str = "status", delay: float = 0.0) -> None:
        """The next `times` requests matching METHOD and the regex fail: with `status`, or mode "drop"
        (the connection is closed without an answer), or mode "slow" (answered normally after `delay` s)."""
        with self.lock:
            self.faults.append(dict(method=method, pattern=re.compile(path_pattern), times=times, status=status,
                                    mode=mode, delay=delay))

    def take_fault(self, method: str, path: str) -> dict | None:
        with self.lock:
            for f in self.faults:
                if f["times"] > 0 and f["method"] == method and f["pattern"].search(path):
                    f["times"] -= 1
                    return f
        return None

    def requests(self, method: str | None = None, contains: str = "") -> list[tuple[str, str, int]]:
        return [r for r in self.log if (method is None or r[0] == method) and contains in r[1]]


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, body: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.body = status, message, code, body


def validate_card_metadata(content: str) -> list[str]:
    """Errors in a README.md's YAML front matter, roughly as the Hub reports them."""
    import yaml

    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    if not m:
        return []  # no metadata: the Hub only warns
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        return [f"YAML syntax error: {e}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    for key in ("library_name", "license", "pipeline_tag", "license_name", "license_link"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    if isinstance(meta.get("pipeline_tag"), str) and meta["pipeline_tag"] not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" must be a known task, got {meta["pipeline_tag"]!r}')
    if "sdk" in meta and meta["sdk"] not in ("gradio", "docker", "static"):
        errors.append(f'"sdk" must be one of gradio, docker, static, got {meta["sdk"]!r}')
    for key in ("tags", "datasets", "models"):
        if key in meta and not (isinstance(meta[key], list) and all(isinstance(t, str) for t in meta[key])):
            errors.append(f'"{key}" must be a list of strings')
    if meta.get("license") == "other" and not meta.get("license_name"):
        errors.append('"license: other" needs "license_name"')
    return errors


class Handler(BaseHTTPRequestHandler):
    server_version = "TinyHub/1.0"
    protocol_version = "HTTP/1.1"
    state: HubState  # set on the subclass made by make_server

    def log_message(self, fmt, *args):  # quiet; the state keeps its own log
        pass

    # -- plumbing ----------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.state.take_fault(method, path)
        status = 0
        try:
            if fault is not None and fault["mode"] == "slow":
                time.sleep(fault["delay"])
                fault = None
            if fault is not None:
                if fault["mode"] == "drop":
                    self.state.log.append((method, path, -1))
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                raise HubError(fault["status"], "Internal Error (injected fault)")
            tok = self.token()
            if tok is not None and self.state.token is not None and tok != self.state.token:
                raise HubError(401, "Invalid credentials in Authorization header")
            status = self.route(method, path, query, body)
        except HubError as e:
            status = e.status
            payload = e.body if e.body is not None else {"error": e.message}
            headers = {"X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
            self.send_json(status, payload, headers, head=method == "HEAD")
        except Exception as e:  # a bug in this server: report it, keep serving
            status = 500
            self.send_json(500, {"error": f"server error: {e!r}"}, head=method == "HEAD")
        self.state.log.append((method, path, status))

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def send_json(self, status: int, payload, headers: dict | None = None, head: bool = False) -> int:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(data)
        return status

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() or None if auth.startswith("Bearer ") else None

    def require_auth(self) -> None:
        tok = self.token()
        if tok is None:
            raise HubError(401, "Invalid username or password.")
        if self.state.token is not None and tok != self.state.token:
            raise HubError(401, "Invalid credentials in Authorization header")

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.state.repos.get((repo_type, repo_id))
        readable = repo is not None and (not repo.private or (
            self.token() is not None and (self.state.token is None or self.token() == self.state.token)))
        if not readable:
            raise HubError(404 if self.token() else 401, "Repository not found", "RepoNotFound")
        return repo

    def repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self.base}/{prefix}{repo.repo_id}"

    # -- routes -------------------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict, body: bytes) -> int:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "POST" and path == "/api/repos/create":
            return self.create_repo(json.loads(body or b"{}"))
        if method == "POST" and path == "/api/validate-yaml":
            req = json.loads(body or b"{}")
            errors = validate_card_metadata(req.get("content", ""))
            payload = {"errors": [{"message": e} for e in errors], "warnings": []}
            if errors:
                raise HubError(400, "Invalid metadata in README.md", body=payload)
            return self.send_json(200, payload)
        if method == "GET" and path == "/api/whoami-v2":
            self.require_auth()
            return self.send_json(200, {"type": "user", "name": USER, "fullname": "Test User", "orgs": [],
                                        "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if parts[0] == "api" and len(parts) >= 4 and parts[1].rstrip("s") in REPO_TYPES:
            repo_type, repo_id, rest = parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4:]
            if method == "POST" and len(rest) >= 2 and rest[0] in ("preupload", "commit"):
                self.require_auth()
                repo = self.get_repo(repo_type, repo_id)
                rev = "/".join(rest[1:])
                if rest[0] == "preupload":
                    return self.preupload(repo, rev, json.loads(body or b"{}"))
                return self.commit(repo, rev, body)
            if method == "GET" and not rest:
                return self.info(self.get_repo(repo_type, repo_id), "main")
            if method == "GET" and len(rest) >= 2 and rest[0] == "revision":
                return self.info(self.get_repo(repo_type, repo_id), "/".join(rest[1:]))
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return self.tree(self.get_repo(repo_type, repo_id), rest[1], "/".join(rest[2:]))
            if repo_type == "space" and rest == ["variables"]:
                return self.variables(method, self.get_repo(repo_type, repo_id), json.loads(body or b"{}"))
        if method in ("GET", "HEAD") and "resolve" in parts:
            i = parts.index("resolve")
            prefix = parts[:i]
            repo_type = "model"
            if len(prefix) == 3 and prefix[0].rstrip("s") in REPO_TYPES:
                repo_type, prefix = prefix[0][:-1], prefix[1:]
            if len(prefix) == 2 and len(parts) > i + 2:
                return self.resolve(self.get_repo(repo_type, "/".join(prefix)), parts[i + 1],
                                    "/".join(parts[i + 2:]), head=method == "HEAD")
        raise HubError(404, f"no route for {method} {path}")

    def create_repo(self, req: dict) -> int:
        self.require_auth()
        repo_type = req.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        name = req.get("name") or ""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name):
            raise HubError(400, f"invalid repo name {name!r}")
        repo_id = f"{req.get('organization') or USER}/{name}"
        with self.state.lock:
            repo = self.state.repos.get((repo_type, repo_id))
            if repo is not None:
                raise HubError(409, "You already created this repo", body={
                    "error": "You already created this repo", "url": self.repo_url(repo)})
            if repo_type == "space" and req.get("sdk") not in ("gradio", "docker", "static"):
                raise HubError(400, f"a Space needs an sdk (gradio, docker or static), got {req.get('sdk')!r}")
            repo = Repo(repo_id, repo_type, req.get("visibility") == "private" or bool(req.get("private")),
                        created=now(), sdk=req.get("sdk"))
            for var in req.get("variables") or []:
                repo.variables[var["key"]] = {"value": var["value"], "description": var.get("description")}
            self.state.repos[(repo_type, repo_id)] = repo
            self.state.commit(repo, "main", "initial commit", {".gitattributes": b"*.safetensors filter=lfs\n"})
        return self.send_json(200, {"url": self.repo_url(repo), "name": repo_id, "id": repo_id})

    def preupload(self, repo: Repo, rev: str, req: dict) -> int:
        head = repo.resolve(rev)
        files = []
        for f in req.get("files", []):
            remote = head.files.get(f["path"]) if head else None
            files.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                          "oid": git_oid(remote) if remote is not None else None})
        return self.send_json(200, {"files": files, "commitOid": head.sha if head else None})

    def commit(self, repo: Repo, rev: str, body: bytes) -> int:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit starts with a header line")
        header = lines[0]["value"]
        with self.state.lock:
            head = repo.resolve(rev)
            if head is None or rev not in repo.branches:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            parent = header.get("parentCommit")
            if parent and not head.sha.startswith(parent):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, "file content must be base64")
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    if value["path"] not in files:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[value["path"]]
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    files = {p: d for p, d in files.items() if not p.startswith(folder)}
                else:
                    raise HubError(400, f"this test server does not support {key!r} commit entries "
                                        f"(LFS and Xet uploads are not implemented)")
            c = self.state.commit(repo, rev, header.get("summary", ""), files)
        return self.send_json(200, {"success": True, "commitOid": c.sha, "commitUrl":
                                    f"{self.repo_url(repo)}/commit/{c.sha}", "hookOutput": ""})

    def info(self, repo: Repo, rev: str) -> int:
        c = repo.resolve(rev)
        if c is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        payload = {
            "_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
            "sha": c.sha, "private": repo.private, "gated": "auto" if repo.gated else False, "disabled": False,
            "lastModified": c.date, "createdAt": repo.created, "tags": [], "downloads": 0, "likes": 0,
            "siblings": [{"rfilename": p, "size": size_of(d), "blobId": git_oid(d)} for p, d in sorted(c.files.items())]}
        if repo.repo_type == "space":
            payload.update(sdk=repo.sdk, subdomain=repo.repo_id.replace("/", "-"),
                           runtime={"stage": "BUILDING", "hardware": {"current": None, "requested": "cpu-basic"}})
        return self.send_json(200, payload)

    def variables(self, method: str, repo: Repo, req: dict) -> int:
        """A Space's variables: GET lists them, POST adds or updates one, DELETE removes one."""
        if method != "GET" or repo.private:
            self.require_auth()
        with self.state.lock:
            if method == "POST":
                if not isinstance(req.get("key"), str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", req["key"]):
                    raise HubError(400, f"invalid variable key {req.get('key')!r}")
                repo.variables[req["key"]] = {"value": str(req.get("value", "")), "description": req.get("description"),
                                              "updatedAt": now()}
            elif method == "DELETE":
                repo.variables.pop(req.get("key"), None)
            elif method != "GET":
                raise HubError(405, f"{method} not allowed on variables")
            return self.send_json(200, {k: dict(v) for k, v in repo.variables.items()})

    def tree(self, repo: Repo, rev: str, folder: str) -> int:
        c = repo.resolve(rev)
        if c is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries = [{"type": "file", "oid": git_oid(d), "size": size_of(d), "path": p}
                   for p, d in sorted(c.files.items()) if p.startswith(prefix)]
        if folder and not entries:
            raise HubError(404, f"{folder} does not exist", "EntryNotFound")
        return self.send_json(200, entries)

    def resolve(self, repo: Repo, rev: str, path: str, head: bool) -> int:
        c = repo.resolve(rev)
        if c is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        if path not in c.files:
            raise HubError(404, "Entry not found", "EntryNotFound")
        if repo.gated and self.token() not in repo.granted:
            raise HubError(403, "Access to model is restricted: you must accept its conditions", "GatedRepo")
        data = c.files[path]
        if isinstance(data, Announced) and not head:
            raise HubError(500, f"{path} is only announced ({data.size} bytes): this test server does not hold it")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size_of(data)))
        self.send_header("ETag", f'"{git_oid(data)}"')
        self.send_header("X-Repo-Commit", c.sha)
        self.send_header("Accept-Ranges", "none")
        self.end_headers()
        if not head:
            self.wfile.write(data)
        return 200


class HubServer:
    """A running server: `.url`, `.state` (repos, log, faults), `.fail(...)`, `.stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.state = HubState(token)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread: threading.Thread | None = None

    def start(self) -> "HubServer":
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="hub-server")
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, *args, **kwargs) -> None:
        self.state.fail(*args, **kwargs)

    def put(self, repo_id: str, files: dict[str, bytes], *, repo_type: str = "model", message: str = "add files",
            private: bool = False, gated: bool = False, branch: str = "main") -> str:
        """Creates the repo if needed and commits `files` (bytes, or `Announced(size)` for a file the server only
        lists) straight into the state; returns the commit sha. For tests that need a repo without a client."""
        with self.state.lock:
            repo = self.state.repos.get((repo_type, repo_id))
            if repo is None:
                repo = Repo(repo_id, repo_type, private, created=now(), gated=gated,
                            sdk="gradio" if repo_type == "space" else None)
                self.state.repos[(repo_type, repo_id)] = repo
                self.state.commit(repo, "main", "initial commit", {".gitattributes": b"*.safetensors filter=lfs\n"})
            head = repo.resolve(branch) or repo.resolve("main")
            return self.state.commit(repo, branch, message, {**head.files, **files}).sha

    def files(self, repo_id: str, rev: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        repo = self.state.repos[(repo_type, repo_id)]
        return dict(repo.resolve(rev).files)

    def client_env(self, tmp_path, token: str = "hf_test_token") -> dict[str, str]:
        """Environment for a client subprocess: this endpoint, a token, a private cache, no telemetry."""
        return {"HF_ENDPOINT": self.url, "HF_TOKEN": token, "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
                "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_ETAG_TIMEOUT": "10", "NO_PROXY": "127.0.0.1",
                "no_proxy": "127.0.0.1"}


def start_hub_server(token: str | None = None) -> HubServer:
    return HubServer(token=token).start()


try:  # the pytest fixture (this module is also a plain script)
    import pytest

    @pytest.fixture(scope="module")
    def hub_server():
        server = start_hub_server()
        yield server
        server.stop()
except ImportError:  # pragma: no cover
    pass


def detach(pid_file: str | None = None) -> int:
    """Forks: the child goes on (returns 0) serving on the socket the parent already bound, so no client can arrive
    before it listens, with its standard streams on /dev/null (so `$(...)` and pipes do not wait for it); the
    parent gets the child's pid (to print, then exit). For `--detach`."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    elif pid_file:
        Path(pid_file).parent.mkdir(parents=True, exist_ok=True)
        Path(pid_file).write_text(f"{pid}\n")
    return pid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="A small Hub-compatible server on 127.0.0.1 (in memory) for tests and "
                                            "offline demos. Point huggingface_hub at it with HF_ENDPOINT.")
    p.add_argument("--port", type=int, default=8765, help="port (0: a free one)")
    p.add_argument("--token", default=None, help="accept only this token for writes (default: any token)")
    p.add_argument("--fail-commits", type=int, default=0, metavar="N",
                   help="answer the first N commit requests with a 500 error (simulates a failed upload)")
    p.add_argument("--detach", action="store_true",
                   help="serve from a background process and return once the port accepts connections (prints its "
                        "pid, for `kill PID`)")
    p.add_argument("--pid-file", default=None, help="with --detach: also write the server's pid to this file")
    args = p.parse_args(argv)
    try:
        server = HubServer(port=args.port, token=args.token)  # listening from here on
    except OSError as e:
        sys.exit(f"error: cannot listen on 127.0.0.1:{args.port} ({e.strerror}); choose another --port.")
    if args.fail_commits:
        server.fail("POST", r"^/api/\w+/[^/]+/[^/]+/commit/", times=args.fail_commits)
    if args.detach and (pid := detach(args.pid_file)):
        print(f"Hub server on {server.url} (HF_ENDPOINT={server.url}), pid {pid}; stop it with: kill {pid}",
              flush=True)
        return 0
    print(f"Hub server on {server.url} (HF_ENDPOINT={server.url}); Ctrl-C stops it", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
