"""A scanner for secrets committed by mistake: keys, password hashes, tokens, passwords in URLs.

Secrets belong in environment variables or ``*_FILE`` paths (Docker secrets),
never in the repository. What looks like a secret but is a placeholder
(``change-me``, ``${INFLUX_TOKEN}``, ``<password>``...) is allowed, so examples
stay readable.
"""

from __future__ import annotations

import math
import re
import subprocess
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER = re.compile(
    r"""(?ix)^(
        \$\{?[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}?   # ${VAR}, $VAR, ${VAR:?message}
      | <[^>]*> | \{[^}]*\} | \*+ | x+ | \.\.\.    # <password>, {token}, ***, xxx, ...
      | (change|replace)[-_]?me.* | placeholder.* | example.* | dummy.* | not[-_]?a[-_]?secret.*
      | secret | password | pass | pw | token | s3cret | hunter2 | guess
    )$"""
)

_SAYS_FAKE = re.compile(r"(?i)secret|passw|example|dummy|fake|placeholder|change[-_]?me")
"""A value that names itself a stand-in (``hook-secret-1`` in a test) is not a leaked secret."""

RULES: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "mosquitto password hash": re.compile(r"\$[67]\$(?:\d+\$)?[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{80,}={0,2}"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?P<value>[^@\s/'\"]+)@"),
    "assigned secret": re.compile(
        r"(?i)\b[a-z_]*(?:password|passwd|token|secret|api_?key)[a-z_]*\b[\"']?\s*[:=]\s*[\"'](?P<value>[^\"'\s]{12,})[\"']"
    ),
    "secret in an env file": re.compile(
        r"(?m)^\s*[A-Z0-9_]*(?:PASSWORD|TOKEN|SECRET|API_KEY)[A-Z0-9_]*\s*=\s*(?P<value>[^\s#]+)"
    ),
    "credentials file": re.compile(r"(?m)^user,role,password$"),
    "InfluxDB token": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{80,}==(?![A-Za-z0-9])"),
    "cloud or forge token": re.compile(
        r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,})"
    ),
}


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}"


def looks_secret(value: str) -> bool:
    """A value that could be a real password or token: no placeholder, 8+ characters, letters and more.

    A user name, a word in an example or a value that calls itself a stand-in
    (``citypulse-ingest``, ``s@cret``, ``hook-secret-1``) is not flagged; a generated
    secret (``pONzEK_IcyBVw0IE...``) or a person's password with digits (``Winter2024!``) is.
    """
    if PLACEHOLDER.match(value) or len(value) < 8 or _SAYS_FAKE.search(value):
        return False
    has_letters = any(c.isalpha() for c in value)
    has_other = any(c.isdigit() for c in value)
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return has_letters and has_other and entropy >= 2.5


def scan_text(text: str, path: str) -> Iterator[Finding]:
    """Every line of ``text`` that holds something a rule calls a secret and is no placeholder."""
    env_file = Path(path).name.startswith(".env") or path.endswith(".env")
    for rule, pattern in RULES.items():
        if rule == "secret in an env file" and not env_file:
            continue
        for match in pattern.finditer(text):
            value = match.groupdict().get("value")
            if value is not None and not looks_secret(urllib.parse.unquote(value.strip("\"'"))):
                continue
            yield Finding(path, text.count("\n", 0, match.start()) + 1, rule)


def repository_files(root: Path) -> list[Path]:
    """Tracked files and new files git would add (not ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return [root / name for name in dict.fromkeys(listed.decode().split("\0")) if name]


def scan_files(paths: Iterable[Path], root: Path) -> list[Finding]:
    found: list[Finding] = []
    for path in paths:
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        found += scan_text(data.decode("utf-8", errors="replace"), str(path.relative_to(root)))
    return found
