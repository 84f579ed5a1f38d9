"""Whether the Hugging Face hub can be asked at all. Offline, its clients retry for about 25 s
before they give up; a failed name lookup says the same at once."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def hub_host() -> str:
    return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"


def hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.getaddrinfo(hub_host(), 443)
    except OSError:
        return False
    return True
