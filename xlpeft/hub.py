"""Is the Hugging Face hub usable right now? Decided in seconds, so offline users never wait on retries."""

from __future__ import annotations

import os
import threading
import urllib.request

PROBE_TIMEOUT_S = 3.0
PROBE_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"  # any public repo: the probe asks for its metadata


def hub_reachable(repo_id: str = PROBE_REPO, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub may be used: offline mode is not set and ``HF_ENDPOINT`` serves ``repo_id``'s metadata.

    The hub's own client would retry for minutes before giving up; one request with a hard deadline
    (DNS included, hence the thread) settles it in seconds. Only a JSON answer counts: captive portals
    and intercepting proxies answer any HTTP request, so "some HTTP response" proves nothing.
    """
    if offline_mode():
        return False
    url = f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co').rstrip('/')}/api/models/{repo_id}"
    answered = threading.Event()
    probe = threading.Thread(target=_probe, args=(url, timeout, answered), daemon=True)
    probe.start()
    probe.join(timeout)
    return answered.is_set()


def _probe(url: str, timeout: float, answered: threading.Event) -> None:
    """Set ``answered`` if ``url`` returns JSON (a thread target, so it reports through the event)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.headers.get_content_type() == "application/json":
                answered.set()
    except (OSError, ValueError):
        pass


def offline_mode() -> bool:
    """The user asked for no network, the way huggingface_hub and transformers read these variables."""
    flags = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f in {"1", "ON", "YES", "TRUE"} for f in flags)
