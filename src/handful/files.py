"""What every run directory promises: names stay inside it, files are written whole and free
of secrets, and one process writes to it at a time.

- Names that become paths (recipe and run names, model labels) are single path components;
  anything else is refused before it is used (`safe_name`), and every move or delete is
  checked to stay inside the run directory (`inside`).
- A run directory with a symbolic link that leads outside it is refused: writing through the
  link would create files elsewhere.
- `write_text` writes a temporary file, syncs it and renames it over the target, so a reader
  or a killed process never sees half a file; every text goes through `redact` first.
- `redact` removes the value of every secret handful was told about (the variable named by
  `api_key_env`, whatever its name), of every environment variable whose name looks like a
  key, and the user:password part of URLs.
- `RunDirectory` holds a lock file for as long as a command writes; a second process is
  refused at once with the first one's pid, instead of interleaving its records.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

from handful.errors import ConfigError, HandfulError

LOCK_FILE = ".handful.lock"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|AUTH", re.IGNORECASE)
URL_USERINFO = re.compile(r"(?<=://)[^/\s@\"'<>]+@")
_SECRETS: dict[str, str] = {}  # value -> what it is, named in its place


# ---- secrets -------------------------------------------------------------------------


def register_secret(value: str | None, what: str = "a secret") -> None:
    """A value that must never be written anywhere (short ones too: they were named as secrets)."""
    if value and value.strip():
        _SECRETS.setdefault(value, what)


def register_config_secrets(node) -> None:
    """Every `api_key_env` in a settings tree names a secret; so does the password in a URL."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "api_key_env" and isinstance(value, str) and value:
                register_secret(os.environ.get(value), f"value of ${value}")
            elif isinstance(value, str) and "://" in value:
                for userinfo in URL_USERINFO.findall(value):
                    login = unquote(userinfo[:-1])
                    register_secret(login.partition(":")[2] or login, "URL password")
                    register_secret(
                        base64.b64encode(login.encode()).decode(), "URL login"
                    )  # as a Basic header sends it
            else:
                register_config_secrets(value)
    elif isinstance(node, list):
        for value in node:
            register_config_secrets(value)


def redact(text: str) -> str:
    """The text with every secret replaced by what it was: `[value of $NAME removed]`."""
    values = dict(_SECRETS)
    for name, value in os.environ.items():
        if SECRET_NAME.search(name) and len(value) >= 8:
            values.setdefault(value, f"value of ${name}")
    if "://" in text:
        text = URL_USERINFO.sub("[credentials removed]@", text)
    for value in sorted(values, key=len, reverse=True):  # longest first: one secret may contain another
        if value in text:
            text = text.replace(value, f"[{values[value]} removed]")
    return text


# ---- names and containment -----------------------------------------------------------


def safe_name(kind: str, name: str) -> str:
    """A name that becomes one folder or file: no separators, no `..`, nothing invisible."""
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or len(name.encode()) > 200
    )
    if bad:
        raise ConfigError(
            f"{kind} {name!r} cannot name a folder: use letters, digits, '-', '_' or '.', "
            "without '/' and not '.' or '..'"
        )
    return name


def inside(root: Path, path: Path) -> Path:
    """`path`, after checking that it (symbolic links followed) stays inside `root`."""
    real_root, real = Path(root).resolve(), Path(path).resolve()
    if real != real_root and real_root not in real.parents:
        raise ConfigError(f"{path} leads outside {root} (to {real}); refusing to write, move or delete there")
    return Path(path)


def outside_links(root: Path) -> list[Path]:
    """Symbolic links under `root` whose target is outside it (not followed while walking)."""
    real_root = Path(root).resolve()
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                target = path.resolve()
                if target != real_root and real_root not in target.parents:
                    found.append(path)
    return found


# ---- writing -------------------------------------------------------------------------


def writable_file(path: str | Path) -> Path:
    """A path a whole file may be renamed onto: nothing there yet, a regular file, or a link
    (the link itself is replaced, its target is untouched). A device or a directory is not
    replaced: renaming over /dev/full would swap the device for a file."""
    path = Path(path)
    if path.exists() and not path.is_symlink() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise HandfulError(f"{path}: is {kind}; give the path of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_whole(path: str | Path, pieces: Iterable[bytes]) -> Path:
    """The whole file or nothing: a temporary file, synced, then renamed over the target."""
    path = writable_file(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.writelines(pieces)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_whole(path, [redact(text).encode("utf-8")])


def write_json(path: str | Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


def settings_key(settings) -> str:
    """sha256 of settings as sorted JSON: the one way work is keyed for resuming (a run's stages,
    curation's steps, an eval run's samples), so that the same settings find the same work."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def read_json(path: str | Path, what: str = "file", expect: type = dict):
    """JSON that handful wrote (an object unless `expect` says otherwise), or a clear error when it is damaged."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HandfulError(
            f"{path}: the {what} is damaged ({e}); restore it, or move the directory away and start again"
        ) from None
    if not isinstance(data, expect):
        raise HandfulError(
            f"{path}: the {what} is damaged (not a JSON {'object' if expect is dict else expect.__name__})"
        )
    return data


def os_error_message(error: OSError) -> str:
    """One line for a failure of the file system, saying what happened to finished work."""
    where = error.filename or ""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device writing {where}: finished work is kept; free some space and rerun the same command"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: not allowed to write here ({error.strerror}); choose a writable --out"
    if error.errno == errno.EISDIR:
        return f"{where}: is a directory, expected a file"
    if error.errno == errno.ENOTDIR:
        return f"{where}: a file stands where a directory is needed"
    return f"{where}: {error.strerror or error}"


# ---- one writer per run directory ----------------------------------------------------


class RunDirectory:
    """`with RunDirectory(out):` makes the directory, refuses links out of it, and holds its lock."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self._lock = None

    def __enter__(self) -> Path:
        from filelock import FileLock, Timeout

        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"{self.out}: is a file; --out must be a directory")
        self.out.mkdir(parents=True, exist_ok=True)
        links = outside_links(self.out)
        if links:
            raise ConfigError(
                f"{self.out} holds symbolic links that lead outside it ({', '.join(map(str, links[:3]))}); "
                "handful writes only inside its run directory: remove them or use another --out"
            )
        path = self.out / LOCK_FILE
        self._lock = FileLock(str(path), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            pid_file = self.out / (LOCK_FILE + ".pid")
            owner = pid_file.read_text().strip() if pid_file.exists() else "?"
            raise HandfulError(
                f"{self.out} is in use by another handful process (pid {owner}); wait for it to finish, or use another --out"
            ) from None
        (self.out / (LOCK_FILE + ".pid")).write_text(str(os.getpid()))
        return self.out

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()
