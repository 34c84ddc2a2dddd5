"""What the commands share: failing with a message, configuration errors, connecting to
Ray within a timeout (and quietly), formatting figures, reading ``--since``."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, NoReturn, Optional, Tuple

import click

from raywatch.config import ConfigError, MonitorConfig, load_config, parse_duration

__all__ = ["fail", "config_error", "load_monitor_config", "connect", "ask", "quiet_ray_notices", "model_keys", "no_such_model",
           "fmt", "since",
           "ADDRESS_HELP", "CONFIG_HELP", "TIMEOUT_HELP", "CONNECT_TIMEOUT"]

ADDRESS_HELP = "Ray cluster address (default: $RAY_ADDRESS or auto)."
CONFIG_HELP = "raywatch YAML (actor name, namespace, shards)."


def fail(message: str, code: int = 1) -> NoReturn:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


def config_error(err: ConfigError) -> NoReturn:
    click.secho("configuration error:", fg="red", bold=True, err=True)
    for line in err.problems:
        click.secho(f"  {line}", fg="red", err=True)
    sys.exit(2)


def load_monitor_config(path: Optional[str]) -> MonitorConfig:
    """The raywatch YAML at ``path`` (the defaults without one); exits 2 naming its problems."""
    if path is None:
        return MonitorConfig()
    try:
        return load_config(path)
    except ConfigError as err:
        config_error(err)


CONNECT_TIMEOUT = 15.0
TIMEOUT_HELP = "Seconds to wait for the Ray cluster (and the stats actor) before giving up."
RAY_NOTICES = ("ray._private.authentication.authentication_token_setup",)
"""Ray's loggers whose notices raywatch's commands do not repeat: Ray 2.60's "Token
authentication is enabled for this Ray cluster…" on every connection."""


_THREAD_NOTICE = "SIGTERM handler is not set because current thread"


def _not_the_thread_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_THREAD_NOTICE)


def quiet_ray_notices() -> None:
    """Keep Ray's connection notices out of the commands' output: :data:`RAY_NOTICES` (their
    errors still show) and the one ``ray.init`` gives when :func:`connect` runs it in a thread."""
    for name in RAY_NOTICES:
        logging.getLogger(name).setLevel(logging.ERROR)
    worker = logging.getLogger("ray._private.worker")
    if _not_the_thread_notice not in worker.filters:
        worker.addFilter(_not_the_thread_notice)


def _endpoint(address: str) -> Optional[Tuple[str, int]]:
    """``(host, port)`` of a ``host:port`` or ``ray://host:port`` address; None for ``auto``,
    ``local`` or anything else Ray resolves itself.

    >>> _endpoint("127.0.0.1:6379"), _endpoint("ray://head:10001"), _endpoint("auto")
    (('127.0.0.1', 6379), ('head', 10001), None)
    """
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _gone(message: str, code: int = 1) -> NoReturn:
    """Print and leave at once: a Ray connection still trying in a thread must not hold the exit."""
    click.secho(message, fg="red", err=True)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


def connect(address: Optional[str], timeout: float = CONNECT_TIMEOUT, *, offline_hint: str = "") -> Any:
    """Connect to the Ray cluster at ``address`` ($RAY_ADDRESS or auto) within ``timeout``
    seconds; otherwise exit 1 saying how to start one (``offline_hint`` adds what the command
    can do without Ray).

    Ray's own client retries an unreachable address for minutes and does not stop on Ctrl-C,
    so the address is first tried with a plain TCP connection, and ``ray.init`` then runs in
    a thread that is abandoned (the process exits) when it has not connected in time.
    """
    import ray

    if ray.is_initialized():
        return ray
    quiet_ray_notices()
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    advice = "Start one (`ray start --head`, see the README) or pass --address." + (f" {offline_hint}" if offline_hint else "")

    def failed(why: str) -> str:
        return f"cannot connect to a Ray cluster at {address!r}: {why}\n{advice}"

    endpoint = _endpoint(address)
    if endpoint is not None:
        try:
            socket.create_connection(endpoint, timeout=min(timeout, 5.0)).close()
        except OSError as exc:
            fail(failed(f"nothing answers at {endpoint[0]}:{endpoint[1]} ({exc.strerror or exc})"))
    outcome: Dict[str, BaseException] = {}

    def init() -> None:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, namespace="raywatch")
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=init, name="raywatch-connect", daemon=True)
    thread.start()
    try:
        thread.join(timeout)
    except KeyboardInterrupt:
        _gone("interrupted while connecting to Ray", 130)
    if thread.is_alive():
        _gone(failed(f"no answer within {timeout:g} s (is it a Ray cluster's GCS address, and is it up?)"))
    err = outcome.get("error")
    if err is not None:
        fail(failed(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__))
    return ray


def ask(what: str, call: Callable[[], Any], timeout: float) -> Any:
    """``call()`` (a question to the stats actor); exit 1 when it does not answer in time."""
    from ray.exceptions import GetTimeoutError

    try:
        return call()
    except GetTimeoutError:
        fail(f"the raywatch stats actor did not answer {what} within {timeout:g} s (is it overloaded? try --timeout)")


def model_keys(models: Mapping[str, Mapping[str, Any]], wanted: str) -> List[str]:
    """The keys of the models that ``wanted`` names: a key (``app/deployment``) or a model name.

    >>> model_keys({"shop/Fraud": {"labels": {"model": "fraud"}}, "shop/Approval": {"labels": {"model": "approval"}}}, "fraud")
    ['shop/Fraud']
    """
    return [k for k, m in models.items() if k == wanted or (m.get("labels") or {}).get("model") == wanted]


def no_such_model(wanted: str, models: Mapping[str, Mapping[str, Any]]) -> NoReturn:
    """Exit 1: ``--model wanted`` matches nothing; list the models there are."""
    if not models:
        fail(f"no model {wanted!r}: no model has reported to the stats actor yet")
    known = ", ".join(f"{k} (model {(m.get('labels') or {}).get('model') or '?'})" for k, m in sorted(models.items()))
    fail(f"no model {wanted!r}; known models: {known}. --model takes an app/deployment key or a model name.")


def fmt(v: Any, unit: str = "") -> str:
    """A figure for people (``12 ms``, ``2.5%``); a dash when it is not a number."""
    from raywatch.report.svg import format_value

    return format_value(v if isinstance(v, (int, float)) and not isinstance(v, bool) else None, unit)


def since(value: Optional[str]) -> Optional[float]:
    """The UTC time ``--since DURATION`` ago (None without the option)."""
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
