"""Helpers for drivers that hold connections: URLs masked for logs, the pid checked cheaply after a fork."""

from __future__ import annotations

import os
import re

_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def current_pid() -> int:
    """This process's id, kept up to date across forks without a system call per ask.

    Drivers compare it with the id they recorded at connect time, on every command, to
    notice that they run in a forked child and must open connections of their own.
    """
    return _pid


#: Where a URL's authority starts: a scheme and ``://``. A URL may hold several
#: (``sentinel://:pw@h1;sentinel://:pw@h2``), and each has its own user part.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
#: Query parameters whose value is a credential: ``?password=``, ``?token=``, ``?access_key=``...
_SECRET_PARAM = re.compile(
    r"([?&;])([^=&;#?]*(?:pass|pwd|secret|token|credential|signature|auth|key|key_?id|sas)[^=&;#?]*)=([^&;#]*)",
    re.IGNORECASE,
)
#: Schemes whose user name is an access key (``dynamodb://KEY_ID:SECRET@region``): masked too.
#: Matched as parts of the scheme, so that a misspelt ``dynamo://`` is masked as well.
_KEY_SCHEMES = ("dynamo", "s3", "sqs", "aws")
#: An AWS access key id, masked wherever it stands as a URL's user (a misspelt scheme too).
_ACCESS_KEY = re.compile(r"(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}")
MASK = "****"


def mask_url(url: str) -> str:
    """``url`` with every password, access key and secret replaced by ``****``, safe to log.

    Masks the user part of each host of a multi-host URL (``;`` or ``,`` between them),
    the whole user part where it is an access key (``dynamodb://``, ``s3://``, ``sqs://``)
    or a token alone (``https://TOKEN@host``), and query parameters that carry a
    credential (``?password=``, ``?token=``, ``?aws_secret_access_key=``...). A password
    written unencoded with ``@``, ``;``, ``,`` or ``/`` in it is still masked whole.
    """
    if not isinstance(url, str):
        url = str(url)
    starts = list(_SCHEME.finditer(url))
    if not starts:  # not a URL (a mistake, quoted in an error): hide anything before an "@"
        at = url.rfind("@")
        return _mask_query(url if at < 0 else MASK + url[at:])
    out = [url[: starts[0].start()]]
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(url)
        scheme = match.group()[:-3].lower()
        out.append(match.group())
        out.append(_mask_authority(url[match.end() : end], any(name in scheme for name in _KEY_SCHEMES)))
    return "".join(out)


def _mask_authority(rest: str, user_is_key: bool) -> str:
    """One host's part of a URL (all after ``scheme://``), its user part and secret parameters masked."""
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, cut)
    if at < 0:
        # A password holding an unencoded "/" ends the authority early: take the first "@"
        # before any query as the end of the user part.
        first = rest.find("@")
        query = rest.find("?")
        if first > 0 and not rest.startswith("/") and (query < 0 or first < query):
            at = first
    if at < 0:
        return _mask_query(rest)
    userinfo, tail = rest[:at], rest[at:]
    user, colon, _ = userinfo.partition(":")
    user_is_key = user_is_key or _ACCESS_KEY.fullmatch(user) is not None
    if colon and not user_is_key:
        masked = f"{user}:{MASK}"
    elif colon:
        masked = f"{MASK if user else ''}:{MASK}"
    else:
        masked = MASK if userinfo else ""
    return masked + _mask_query(tail)


def _mask_query(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}", text)


#: A URL in free text (a log line): a scheme, ``://`` and everything up to a space or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
#: Credentials libraries print in their own debug logs: SigV4's ``Credential=KEYID/...``,
#: an ``Authorization`` header's value, and access key ids on their own.
_CREDENTIALS_IN_TEXT = (
    (re.compile(r"(Credential=)[^/,\s'\"]+"), r"\1" + MASK),
    (re.compile(r"""((?:'|")?Authorization(?:'|")?\s*[:=]\s*b?(?:'|")?)[^'"\r\n]+""", re.IGNORECASE), r"\1" + MASK),
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b"), MASK),
)


def redact(text: str) -> str:
    """``text`` (a log line, an error) with every URL masked and other credentials removed.

    The worker's log formatter runs every line through it, so that a library's own debug
    logging (botocore prints its signed requests) shows no credential either.
    """
    text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)
    for pattern, replacement in _CREDENTIALS_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


__all__ = ["current_pid", "mask_url", "redact"]
