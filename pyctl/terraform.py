"""The only code that runs terraform: pure argv builders, one runner, and `show -json` into a `Plan`.

Progress streams live while terraform runs: with `-json`, its machine-readable UI events are rendered
with rich (to stderr); diagnostics are kept so callers can explain a held lock or a stale plan.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pyctl.core.plan import Plan
from pyctl.errors import PyctlError

BUNDLED = "pyctl-terraform"
LOCK_FILE = ".terraform.lock.hcl"
# Terraform's own summary of the errors this module explains in its own words.
LOCK_ERROR = "Error acquiring the state lock"
STALE_PLAN_ERROR = "Saved plan is stale"

# --- executable resolution --------------------------------------------------------------------------


def resolve_executable(explicit: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """`--terraform PATH` / PYCTL_TERRAFORM, then `terraform` and `tofu` on PATH, then the bundled core."""
    env = os.environ if environ is None else environ
    chosen = explicit or env.get("PYCTL_TERRAFORM")
    if chosen:
        found = shutil.which(chosen, path=env.get("PATH"))
        if not found:
            raise PyctlError(f"terraform executable not found: {chosen} (from --terraform / PYCTL_TERRAFORM)")
        return found
    for name in ("terraform", "tofu"):
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found
    beside_python = Path(sys.executable).parent / BUNDLED
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(BUNDLED, path=env.get("PATH"))
    if found:
        return found
    raise PyctlError("no terraform found: install terraform or tofu, or reinstall pyctl (pyctl-terraform)")


# --- argv builders (pure) ---------------------------------------------------------------------------


def _lock_args(lock_timeout: str | None) -> list[str]:
    return [f"-lock-timeout={lock_timeout}"] if lock_timeout else []


def init_argv(
    workdir: Path,
    *,
    backend_config: Path | None = None,
    lock_timeout: str | None = None,
    readonly_lock: bool = False,
) -> list[str]:
    argv = [f"-chdir={workdir}", "init", "-input=false", "-no-color"]
    if backend_config is not None:
        argv.append(f"-backend-config={backend_config}")
    if readonly_lock:
        argv.append("-lockfile=readonly")
    return argv + _lock_args(lock_timeout)


def plan_argv(
    workdir: Path,
    *,
    out: Path | None,
    var_files: Sequence[Path] = (),
    destroy: bool = False,
    detailed_exitcode: bool = False,
    lock_timeout: str | None = None,
    json_ui: bool = True,
) -> list[str]:
    argv = [f"-chdir={workdir}", "plan", "-input=false"]
    argv += ["-json"] if json_ui else ["-no-color"]
    argv += [f"-var-file={f}" for f in var_files]
    if out is not None:
        argv.append(f"-out={out}")
    if destroy:
        argv.append("-destroy")
    if detailed_exitcode:
        argv.append("-detailed-exitcode")
    return argv + _lock_args(lock_timeout)


def apply_argv(
    workdir: Path, plan_file: Path, *, lock_timeout: str | None = None, json_ui: bool = True
) -> list[str]:
    argv = [f"-chdir={workdir}", "apply", "-input=false"]
    argv += ["-json"] if json_ui else ["-no-color"]
    return argv + _lock_args(lock_timeout) + [str(plan_file)]


# The platforms `pyctl init` records provider hashes for: the team's laptops and CI runners. Terraform's own
# init records only the platform it runs on, so a lock file made on a Mac would be refused on Linux CI.
DEFAULT_LOCK_PLATFORMS: tuple[str, ...] = ("linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64")
_PLATFORM = re.compile(r"^[a-z0-9]+_[a-z0-9]+$")


def providers_lock_argv(
    workdir: Path, platforms: Sequence[str], *, fs_mirror: Path | None = None
) -> list[str]:
    """`terraform providers lock` with one -platform per OS_ARCH, from the registry or a local mirror."""
    if not platforms:
        raise PyctlError("no platform to lock providers for: give --platform OS_ARCH (e.g. linux_amd64)")
    bad = [p for p in platforms if not _PLATFORM.match(p)]
    if bad:
        raise PyctlError(f"--platform: {', '.join(bad)} is not OS_ARCH (e.g. linux_amd64, darwin_arm64)")
    argv = [f"-chdir={workdir}", "providers", "lock"]
    argv += [f"-platform={p}" for p in dict.fromkeys(platforms)]
    if fs_mirror is not None:
        argv.append(f"-fs-mirror={fs_mirror}")
    return argv


def show_plan_argv(workdir: Path, plan_file: Path) -> list[str]:
    return [f"-chdir={workdir}", "show", "-json", str(plan_file)]


def output_argv(workdir: Path, name: str | None = None) -> list[str]:
    return [f"-chdir={workdir}", "output", "-json"] + ([name] if name else [])


def version_argv() -> list[str]:
    return ["version", "-json"]


def force_unlock_argv(workdir: Path, lock_id: str) -> list[str]:
    return [f"-chdir={workdir}", "force-unlock", "-force", lock_id]


# --- the runner -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""


@dataclass
class RunResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


# Commands whose `-json` output is a stream of UI events (the others print one JSON document).
_UI_EVENT_COMMANDS = frozenset({"init", "plan", "apply"})


# One version per executable path for the life of the process.
_VERSIONS: dict[str, str] = {}


def _verb(argv: Sequence[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "terraform")


class Terraform:
    """One terraform executable, the environment it runs with, and where its progress is shown.

    `console` is a rich Console (stderr by default); None shows nothing.
    """

    def __init__(
        self, executable: str, *, extra_env: Mapping[str, str] | None = None, console: Any = "stderr"
    ):
        self.executable = executable
        self.extra_env = dict(extra_env or {})
        self._console = console

    @property
    def console(self) -> Any:
        if self._console == "stderr":
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._console

    def run(self, argv: Sequence[str], *, stream: bool = True, ok_codes: Iterable[int] = (0,)) -> RunResult:
        """Run terraform; stream its progress when `stream`; raise TerraformFailed unless the exit code is ok."""
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", **self.extra_env}
        ui_events = "-json" in argv and _verb(argv) in _UI_EVENT_COMMANDS
        console = self.console if stream else None
        # Its own process group: a Ctrl-C in the terminal reaches pyctl only, which forwards it exactly once
        # (a second copy from the terminal would count as terraform's "two interrupts: exit immediately").
        # Its output goes to unlinked temporary files that pyctl follows, not to pipes: if pyctl dies, a pipe
        # would break and terraform die of SIGPIPE at its next line, holding the lock with its state unsaved;
        # a file keeps taking its output while it finishes (or stops gracefully) on its own.
        out_w, out_r = _output_file()
        err_w, err_r = _output_file()
        try:
            proc = subprocess.Popen(
                [self.executable, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                env=env,
                process_group=0,
            )
        except BaseException:
            out_r.close()
            err_r.close()
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        with _forwarding_interrupts(proc, console) as interrupts, out_r, err_r:
            result = self._collect(proc, out_r, err_r, argv, ui_events, console)
        if interrupts and result.returncode != 0:
            raise TerraformInterrupted(result, len(interrupts))
        if result.returncode not in tuple(ok_codes):
            raise TerraformFailed(result)
        return result

    def _collect(
        self,
        proc: subprocess.Popen[bytes],
        out: TextIO,
        err: TextIO,
        argv: Sequence[str],
        ui_events: bool,
        console: Any,
    ) -> RunResult:
        stderr_lines: list[str] = []
        reader = threading.Thread(target=_drain, args=(_follow(err, proc), stderr_lines, console))
        reader.start()
        stdout_lines: list[str] = []
        diagnostics: list[Diagnostic] = []
        for line in _follow(out, proc):
            stdout_lines.append(line)
            event = _json_event(line) if ui_events else None
            if event is not None and event.get("type") == "diagnostic":
                diagnostics.append(_diagnostic(event.get("diagnostic") or {}))
            if console is not None and (ui_events or "-json" not in argv):
                _render(console, event, line)
        returncode = proc.wait()
        reader.join()
        stderr = "".join(stderr_lines)
        if not diagnostics:
            diagnostics = _text_diagnostics(stderr) or _text_diagnostics("".join(stdout_lines))
        return RunResult(list(argv), returncode, "".join(stdout_lines), stderr, diagnostics)

    def version(self) -> str:
        if self.executable not in _VERSIONS:
            _VERSIONS[self.executable] = str(
                json.loads(self.run(version_argv(), stream=False).stdout)["terraform_version"]
            )
        return _VERSIONS[self.executable]

    def show_plan(self, workdir: Path, plan_file: Path) -> Plan:
        result = self.run(show_plan_argv(workdir, plan_file), stream=False)
        return Plan.from_json(json.loads(result.stdout))

    def outputs(self, workdir: Path, name: str | None = None) -> Any:
        return json.loads(self.run(output_argv(workdir, name), stream=False).stdout)


class TerraformFailed(PyctlError):
    """terraform exited with an error; the message is terraform's own first error, in one line or a few."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        errors = result.errors()
        self.verb = verb = _verb(result.argv)  # init, plan, show, providers, ...
        if errors:
            detail = "; ".join(
                f"{e.summary}: {_one_line(e.detail)}" if e.detail else e.summary for e in errors
            )
        else:
            detail = _one_line(result.stderr) or f"exit code {result.returncode}"
        super().__init__(f"terraform {verb} failed: {detail}", exit_code=1)


class TerraformInterrupted(TerraformFailed):
    """terraform stopped because pyctl was interrupted (SIGINT/SIGTERM, forwarded to it as SIGINT)."""

    def __init__(self, result: RunResult, interrupts: int) -> None:
        super().__init__(result)
        self.interrupts = interrupts
        self.exit_code = 130  # 128 + SIGINT, as a shell reports an interrupted command


@contextmanager
def _forwarding_interrupts(proc: subprocess.Popen[bytes], console: Any) -> Iterator[list[int]]:
    """While terraform runs, SIGINT and SIGTERM to pyctl are passed on to it as SIGINT.

    Terraform handles the first interrupt gracefully (no new operations, in-flight ones finish or are
    cancelled, the state is written and the lock released); a second one makes it exit at once. pyctl
    waits for it either way, and yields the count (a list, filled in as signals arrive; truthy once
    interrupted). Outside the main thread signals cannot be caught and nothing is installed."""
    count: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield count
        return

    def forward(signum: int, frame: Any) -> None:
        count.append(signum)
        try:
            os.kill(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        if console is not None:
            from rich.text import Text

            if len(count) == 1:
                note = (
                    "pyctl: interrupted; asked terraform to stop (it finishes or cancels what is in flight, "
                    "saves the state and releases the lock). Interrupt again to stop it at once (state may be lost)."
                )
            else:
                note = "pyctl: interrupted again; terraform exits at once"
            console.print(Text(note, style="bold yellow"))

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield count
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _output_file() -> tuple[int, TextIO]:
    """A temporary file for terraform's output: the fd it writes, and pyctl's own reader (its own offset).
    Unlinked at once, so nothing is left behind, even when pyctl is killed."""
    fd, path = tempfile.mkstemp(prefix="pyctl-terraform-")
    try:
        reader = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by the caller
    finally:
        os.unlink(path)
    return fd, reader


_FOLLOW_INTERVAL = 0.02  # seconds between looks at a quiet output file


def _follow(stream: TextIO, proc: subprocess.Popen[bytes]) -> Iterator[str]:
    """Lines of a file terraform is writing, as they come (like `tail -f`), until it exits and all is read."""
    pending = ""
    while True:
        chunk = stream.readline()
        if chunk:
            pending += chunk
            if pending.endswith("\n"):
                yield pending
                pending = ""
            continue
        if proc.poll() is not None:
            rest = pending + stream.read()
            yield from rest.splitlines(keepends=True)
            return
        with suppress(
            subprocess.TimeoutExpired
        ):  # returns as soon as terraform exits, else after the interval
            proc.wait(timeout=_FOLLOW_INTERVAL)


def _drain(stream: Any, into: list[str], console: Any) -> None:
    for line in stream:
        into.append(line)
        if console is not None:
            _render(console, None, line)


def _json_event(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _diagnostic(doc: Mapping[str, Any]) -> Diagnostic:
    return Diagnostic(
        str(doc.get("severity", "error")), str(doc.get("summary", "")), str(doc.get("detail", ""))
    )


def _text_diagnostics(stderr: str) -> list[Diagnostic]:
    """`Error: summary` blocks from terraform's text output (commands run without -json)."""
    diagnostics = []
    raw = [_ANSI.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line.strip(" │╷╵\t") for line in raw]
    for i, line in enumerate(lines):
        if line.startswith("Error: "):
            rest = []
            for follow, follow_raw in zip(lines[i + 1 :], raw[i + 1 :], strict=True):
                if follow.startswith(("Error: ", "Warning: ")) or follow_raw == "╵":  # next one, or box end
                    break
                rest.append(follow)
            diagnostics.append(Diagnostic("error", line.removeprefix("Error: "), "\n".join(rest).strip()))
    return diagnostics


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(text: str) -> str:
    return " ".join(text.split())


_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red", "remove": "red"}
_QUIET_EVENTS = frozenset({"version", "log", "outputs"})


def _render(console: Any, event: dict[str, Any] | None, raw: str) -> None:
    """Terraform's text as is; a UI event as one coloured line (diagnostics with their detail)."""
    from rich.text import Text

    if event is None:
        console.print(Text(raw.rstrip("\n")))
        return
    kind, message = event.get("type"), str(event.get("@message", ""))
    if kind in _QUIET_EVENTS or event.get("@level") == "debug":
        return
    if kind == "diagnostic":
        diag = event.get("diagnostic") or {}
        text = Text(message, style="bold red" if diag.get("severity") == "error" else "yellow")
        if diag.get("detail"):
            text.append("\n  " + str(diag["detail"]).replace("\n", "\n  "))
        console.print(text)
        return
    action = str((event.get("change") or event.get("hook") or {}).get("action", ""))
    console.print(Text(message, style=_STYLE.get(action, "")))
