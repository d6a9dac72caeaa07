"""A local stand-in for the Hugging Face Hub's HTTP API, on 127.0.0.1, for the tests.

It implements what huggingface_hub 2.4 calls for create_repo, upload_folder /
upload_file (preupload, the git-LFS batch / PUT / verify path, the NDJSON commit,
the no-op commit), model_info, snapshot_download and hf_hub_download (revision,
tree listing, HEAD/GET resolve), so the real client runs end to end. Xet is not
implemented: clients use the plain LFS path with HF_HUB_DISABLE_XET=1.

Dataset repositories (`add_dataset`, `add_dataset_commit`) answer what `datasets` 5.2
asks for one at a revision: dataset_info, the tree and paths-info listings, and the
files under /datasets/<id>/resolve/<rev>/, so `datasets.load_dataset` runs end to end.

State lives in memory. Tests can read every request (`requests`), require a
token, and inject faults: `fail(path_regex, status, times, method)`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".zip", ".gz", ".parquet")
LFS_THRESHOLD = 10 * 1024 * 1024


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Err(Exception):
    def __init__(self, status: int, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class Repo:
    def __init__(self, repo_id: str, private: bool):
        self.repo_id, self.private = repo_id, private
        self.commits: Dict[str, Dict[str, tuple]] = {}  # oid -> {path: (sha256, size, lfs)}
        self.head: Optional[str] = None


class HubStub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: Optional[str] = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.repos: Dict[str, Repo] = {}
        self.dataset_repos: Dict[str, Repo] = {}
        self.blobs: Dict[str, bytes] = {}  # sha256 -> content
        self.requests: List[dict] = []
        self.faults: List[dict] = []
        self.lock = threading.RLock()
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "HubStub":
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def fail(self, path_regex: str, status: int = 503, times: int = 1, method: Optional[str] = None) -> None:
        """The next `times` requests matching get `status` (times=-1: all of them)."""
        with self.lock:
            self.faults.append({"path": path_regex, "status": status, "times": times, "method": method})

    def commits(self, repo_id: str) -> List[str]:
        return list(self.repos[repo_id].commits)

    def file(self, repo_id: str, path: str, rev: Optional[str] = None) -> bytes:
        repo = self.repos[repo_id]
        return self.blobs[repo.commits[rev or repo.head][path][0]]

    def add_dataset(self, repo_id: str, files: Dict[str, bytes]) -> str:
        """A public dataset repository holding ``files`` (path -> content); its first commit."""
        with self.lock:
            self.dataset_repos[repo_id] = Repo(repo_id, private=False)
        return self.add_dataset_commit(repo_id, files)

    def add_dataset_commit(self, repo_id: str, files: Dict[str, bytes]) -> str:
        """A new commit of a dataset repository: exactly ``files``; returns its oid (the new head)."""
        with self.lock:
            stored = {}
            for path, data in files.items():
                sha = hashlib.sha256(data).hexdigest()
                self.blobs[sha] = data
                stored[path] = (sha, len(data), path.endswith(LFS_SUFFIXES))
            return self.new_commit(self.dataset_repos[repo_id], stored)

    def new_commit(self, repo: Repo, files: Dict[str, tuple]) -> str:
        oid = hashlib.sha1(
            json.dumps([repo.repo_id, repo.head, time.time_ns(), sorted(files.items())]).encode()
        ).hexdigest()
        repo.commits[oid] = files
        repo.head = oid
        return oid


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubStub

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_GET

    # ---- plumbing
    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, length: Optional[int] = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj, status: int = 200):
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        srv = self.server
        with srv.lock:
            srv.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
            for f in srv.faults:
                if f["times"] != 0 and re.search(f["path"], self.path) and f["method"] in (None, self.command):
                    f["times"] -= 1 if f["times"] > 0 else 0
                    return self._send(
                        f["status"], json.dumps({"error": "injected"}).encode(), {"Content-Type": "application/json"}
                    )
            try:
                self._route(body)
            except Err as e:
                headers = {"Content-Type": "application/json", "X-Error-Message": e.message}
                if e.code:
                    headers["X-Error-Code"] = e.code
                self._send(e.status, json.dumps({"error": e.message}).encode(), headers)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else None
        return given is not None and (self.server.token is None or given == self.server.token)

    def _repo(self, repo_id: str, write: bool = False, kind: str = "models") -> Repo:
        repo = (self.server.dataset_repos if kind == "datasets" else self.server.repos).get(repo_id)
        if repo is None or ((repo.private or write) and not self._authorized()):
            raise Err(404 if repo is None else 401, "Repository not found", "RepoNotFound")
        return repo

    def _rev(self, repo: Repo, rev: str) -> str:
        if rev == "main":
            return repo.head
        hits = [c for c in repo.commits if c.startswith(rev)]
        if len(hits) != 1:
            raise Err(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return hits[0]

    # ---- routes
    def _route(self, body: bytes):
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/") if p]
        m = self.command
        if parts == ["api", "agent-harnesses"]:
            return self._json({"standardEnvVars": [], "harnesses": {}})
        if parts == ["api", "validate-yaml"]:
            return self._json({"errors": [], "warnings": []})
        if parts == ["api", "repos", "create"] and m == "POST":
            return self._create(json.loads(body))
        if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            if not rest and m == "GET":
                return self._info(repo_id, "main", "datasets")
            if rest[:1] == ["revision"] and m == "GET":
                return self._info(repo_id, "/".join(rest[1:]), "datasets")
            if rest[:1] == ["tree"] and m == "GET":
                return self._tree(repo_id, rest[1], "datasets", "/".join(rest[2:]))
            if rest[:1] == ["paths-info"] and m == "POST":
                return self._paths_info(repo_id, rest[1], body)
        if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve" and m in ("GET", "HEAD"):
            return self._resolve("/".join(parts[1:3]), parts[4], "/".join(parts[5:]), "datasets")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            if not rest and m == "GET":
                return self._info(repo_id, "main")
            if rest[:1] == ["revision"] and m == "GET":
                return self._info(repo_id, "/".join(rest[1:]))
            if rest[:1] == ["preupload"] and m == "POST":
                return self._preupload(repo_id, rest[1], json.loads(body))
            if rest[:1] == ["commit"] and m == "POST":
                return self._commit(repo_id, rest[1], body)
            if rest[:1] == ["tree"] and m == "GET":
                return self._tree(repo_id, rest[1])
        if len(parts) >= 5 and parts[2] == "resolve" and m in ("GET", "HEAD"):
            return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(f"{parts[0]}/{parts[1][:-4]}", json.loads(body))
        if parts[:1] == ["_lfs"] and len(parts) == 3:
            return self._lfs(parts[1], parts[2], body)
        raise Err(404, f"not found: {self.path}")

    def _create(self, payload: dict):
        if not self._authorized():
            raise Err(401, "Invalid credentials")
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = f"{self.server.url}/{repo_id}"
        if repo_id in self.server.repos:
            return self._json({"error": "You already created this model repo", "url": url}, 409)
        repo = Repo(repo_id, payload.get("visibility") == "private")
        self.server.repos[repo_id] = repo
        gitattributes = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
        self.server.blobs[hashlib.sha256(gitattributes).hexdigest()] = gitattributes
        self.server.new_commit(
            repo, {".gitattributes": (hashlib.sha256(gitattributes).hexdigest(), len(gitattributes), False)}
        )
        return self._json({"url": url, "name": repo_id, "id": repo_id})

    def _info(self, repo_id: str, rev: str, kind: str = "models"):
        repo = self._repo(repo_id, kind=kind)
        oid = self._rev(repo, rev)
        files = repo.commits[oid]
        card = {}
        if "README.md" in files:
            text = self.server.blobs[files["README.md"][0]].decode()
            if text.startswith("---\n"):
                import yaml

                card = yaml.safe_load(text.split("---\n", 2)[1]) or {}
        return self._json(
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": oid,
                "private": repo.private,
                "lastModified": "2026-11-28T00:00:00.000Z",
                "tags": [],
                "cardData": card,
                "siblings": [{"rfilename": p} for p in sorted(files)],
            }
        )

    def _is_lfs(self, path: str, size: int, sample: bytes) -> bool:
        return path.endswith(LFS_SUFFIXES) or size >= LFS_THRESHOLD or b"\0" in sample

    def _preupload(self, repo_id: str, rev: str, payload: dict):
        repo = self._repo(repo_id, write=True)
        files = repo.commits[self._rev(repo, rev)]
        out = []
        for f in payload["files"]:
            lfs = self._is_lfs(f["path"], int(f["size"]), base64.b64decode(f.get("sample") or ""))
            oid = None
            if f["path"] in files:  # the client skips unchanged files by this oid
                sha, _, _ = files[f["path"]]
                oid = sha if lfs else git_sha1(self.server.blobs[sha])
            out.append(
                {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        return self._json({"files": out})

    def _lfs_batch(self, repo_id: str, payload: dict):
        self._repo(repo_id, write=True)
        objects = []
        for o in payload["objects"]:
            entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.server.blobs:  # stored already: no actions, nothing re-uploaded
                entry["actions"] = {
                    "upload": {"href": f"{self.server.url}/_lfs/upload/{o['oid']}", "header": {}},
                    "verify": {"href": f"{self.server.url}/_lfs/verify/{o['oid']}", "header": {}},
                }
            objects.append(entry)
        return self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs(self, action: str, oid: str, body: bytes):
        if action == "upload" and self.command == "PUT":
            if hashlib.sha256(body).hexdigest() != oid:
                raise Err(400, "sha256 mismatch")
            self.server.blobs[oid] = body
            return self._send(200)
        if action == "verify" and self.command == "POST":
            if oid not in self.server.blobs:
                raise Err(404, "object not found")
            return self._json({"success": True})
        raise Err(404, "not found")

    def _commit(self, repo_id: str, rev: str, body: bytes):
        repo = self._repo(repo_id, write=True)
        lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
        files = dict(repo.commits[self._rev(repo, rev)])
        for line in lines[1:]:
            v = line["value"]
            if line["key"] == "file":
                data = base64.b64decode(v["content"])
                sha = hashlib.sha256(data).hexdigest()
                self.server.blobs[sha] = data
                files[v["path"]] = (sha, len(data), False)
            elif line["key"] == "lfsFile":
                if v["oid"] not in self.server.blobs:
                    raise Err(422, f"LFS object {v['oid']} was not uploaded")
                files[v["path"]] = (v["oid"], int(v["size"]), True)
            elif line["key"] == "deletedFile":
                files.pop(v["path"], None)
        oid = self.server.new_commit(repo, files)
        return self._json(
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self.server.url}/{repo_id}/commit/{oid}",
                "pullRequestUrl": None,
            }
        )

    def _entry(self, path: str, sha: str, size: int, lfs: bool) -> dict:
        e = {"type": "file", "oid": git_sha1(self.server.blobs[sha]), "size": size, "path": path}
        if lfs:
            e["lfs"] = {"oid": sha, "size": size, "pointerSize": 134}
        return e

    def _tree(self, repo_id: str, rev: str, kind: str = "models", under: str = ""):
        repo = self._repo(repo_id, kind=kind)
        recursive = "recursive=true" in (urlsplit(self.path).query or "").lower() or kind == "models"
        entries, dirs = [], set()
        prefix = under.strip("/") + "/" if under.strip("/") else ""
        for path, (sha, size, lfs) in sorted(repo.commits[self._rev(repo, rev)].items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if "/" in rest and not recursive:
                dirs.add(prefix + rest.split("/", 1)[0])
                continue
            entries.append(self._entry(path, sha, size, lfs))
        if recursive:  # every folder too, as the Hub lists them
            for path in {e["path"] for e in entries}:
                parts = path[len(prefix) :].split("/")[:-1]
                dirs.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(dirs)]
        if prefix and not entries:
            raise Err(404, f"Entry not found: {under}", "EntryNotFound")
        return self._json(entries)

    def _paths_info(self, repo_id: str, rev: str, body: bytes):
        from urllib.parse import parse_qs

        repo = self._repo(repo_id, kind="datasets")
        files = repo.commits[self._rev(repo, rev)]
        text = body.decode()
        wanted = json.loads(text)["paths"] if text.startswith("{") else parse_qs(text).get("paths", [])
        out = []
        for p in wanted:
            if p in files:
                out.append(self._entry(p, *files[p]))
            elif any(f.startswith(p.rstrip("/") + "/") for f in files):
                out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": p})
        return self._json(out)

    def _resolve(self, repo_id: str, rev: str, path: str, kind: str = "models"):
        repo = self._repo(repo_id, kind=kind)
        oid = self._rev(repo, rev)
        if path not in repo.commits[oid]:
            raise Err(404, "Entry not found", "EntryNotFound")
        sha, size, lfs = repo.commits[oid][path]
        data = self.server.blobs[sha]
        etag = sha if lfs else git_sha1(data)
        headers = {
            "X-Repo-Commit": oid,
            "ETag": f'"{etag}"',
            "X-Linked-Size": size,
            "Content-Type": "application/octet-stream",
        }
        if lfs:
            headers["X-Linked-Etag"] = f'"{sha}"'
        return self._send(200, data, headers, length=len(data))
