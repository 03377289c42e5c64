"""What the client's OS offers (kubectl_build.host.facts), with capabilities taken away."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from kubectl_build.host import facts


def test_this_linux_machine_has_everything_the_agent_needs() -> None:
    assert facts.agent_blocker() is None
    assert facts.unix_sockets() and facts.sockets_as_stdio() and facts.kernel_splice()


@pytest.mark.parametrize("client_os", ["darwin", "win32", "freebsd14"])
def test_the_agent_is_linux_only(client_os: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", client_os)
    assert facts.agent_blocker() == f"the local agent runs on Linux clients only (this is {client_os})"


def test_a_linux_without_what_the_agent_uses_says_what_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "SO_PEERCRED")
    monkeypatch.delattr(os, "fork")
    assert facts.agent_blocker() == "the local agent needs SO_PEERCRED, fork"


def test_windows_has_no_socket_stdio_and_no_priority_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert not facts.sockets_as_stdio()
    assert not facts.lower_priority_supported()
    monkeypatch.delattr(socket, "AF_UNIX")
    assert not facts.unix_sockets()


def test_ctrl_break_becomes_a_keyboard_interrupt_where_it_exists(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from kubectl_build.host.signals import interrupt_on_ctrl_break

    installed: dict[int, object] = {}
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.setdefault(signum, handler))
    interrupt_on_ctrl_break()
    assert installed == {}  # Linux has no SIGBREAK
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    interrupt_on_ctrl_break()
    assert installed == {21: signal.default_int_handler}
