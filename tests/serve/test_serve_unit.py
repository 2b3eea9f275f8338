"""Pieces of `vsplade serve` that need no server: the core stays free of the web stack, the
bind check, width snapping."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vsplade.serve.runner import ServeConfigError, check_bind, is_loopback
from vsplade.serve.service import IMAGE_WIDTHS, SearchService


def test_core_and_cli_do_not_import_the_web_stack():
    code = ("import sys, vsplade, vsplade.cli, vsplade.serve, vsplade.serve.runner; "
            "bad = [m for m in ('fastapi', 'uvicorn', 'starlette', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("host, loop", [
    ("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("10.0.0.1", False),
])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_check_bind():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "a-long-enough-token-123")
    with pytest.raises(ServeConfigError, match="VSPLADE_SERVE_TOKEN"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ServeConfigError, match="at least 16"):
        check_bind("127.0.0.1", "short")


def test_widths_snap_up_and_are_bounded():
    assert SearchService.snap_width(None) == 320
    assert SearchService.snap_width(1) == IMAGE_WIDTHS[0]
    assert SearchService.snap_width(320) == 320
    assert SearchService.snap_width(321) == 480
    assert SearchService.snap_width(10_000) == IMAGE_WIDTHS[-1]
