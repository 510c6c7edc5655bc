"""Reading files out of a git repository by commit and path, with git plumbing only."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ...errors import InputError


def find_clone(clones: Path, repo: str) -> Path:
    """The git directory of ``owner/name`` under ``clones``: ``owner+name/repo`` (a bare mirror),
    ``owner+name``, ``owner/name`` or ``name``, each either bare or with a ``.git`` inside."""
    owner, _, name = repo.partition("/")
    for candidate in (clones / f"{owner}+{name}" / "repo", clones / f"{owner}+{name}", clones / owner / name,
                      clones / name):
        for git_dir in (candidate / ".git", candidate):
            if (git_dir / "HEAD").is_file() and (git_dir / "objects").is_dir():
                return git_dir
    raise InputError(f"{clones}: no clone of {repo} (looked for {owner}+{name}, {owner}/{name} and {name})")


def _git(git_dir: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", f"--git-dir={git_dir}", *args], input=input, capture_output=True)
    if proc.returncode != 0:
        raise InputError(f"{git_dir}: git {' '.join(args[:2])} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def full_commit(git_dir: Path, commit: str) -> str:
    """The 40-hex id of ``commit`` (the manifest pins full ids)."""
    return _git(git_dir, "rev-parse", "--verify", f"{commit}^{{commit}}").decode().strip()


def list_blobs(git_dir: Path, commit: str) -> list[tuple[str, int]]:
    """(path, size) of every file at ``commit`` (size −1: listed but absent from this clone)."""
    rows = []
    for line in _git(git_dir, "ls-tree", "-r", "-l", "-z", commit).split(b"\0"):
        if not line:
            continue
        meta, _, path = line.partition(b"\t")
        mode, kind, _sha, size = meta.split()
        if kind == b"blob" and mode != b"120000":  # never follow a symlink
            # a snapshot may list a large file it does not hold: git reports its size as "BAD" (-1 here)
            rows.append((path.decode("utf-8", "surrogateescape"), int(size) if size.isdigit() else -1))
    return rows


class BlobReader:
    """``git cat-file --batch``: many files of one repository through one process."""

    def __init__(self, git_dir: Path) -> None:
        self.proc = subprocess.Popen(["git", f"--git-dir={git_dir}", "cat-file", "--batch"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)

    def read(self, commit: str, path: str) -> bytes | None:
        """The file's bytes, or None when the commit does not hold it."""
        self.proc.stdin.write(f"{commit}:{path}\n".encode("utf-8", "surrogateescape"))  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        header = self.proc.stdout.readline().split()  # type: ignore[union-attr]
        if len(header) < 3 or header[1] != b"blob":
            return None
        data = self.proc.stdout.read(int(header[2]))  # type: ignore[union-attr]
        self.proc.stdout.read(1)  # type: ignore[union-attr]  # the newline after the content
        return data

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait()

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
