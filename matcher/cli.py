"""Command line: parse options, call one job, render the result, map errors to exit codes."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import functools
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import click

from matcher import IGNORED_AT_START
from matcher import VALIDATION_SEED
from matcher import __version__
from matcher import auditlog
from matcher import signing
from matcher.digests import available_algorithms
from matcher.digests import parse_algorithms
from matcher.errors import ExitCode
from matcher.errors import IntegrityError
from matcher.errors import MatcherError
from matcher.errors import UsageError
from matcher.errors import described
from matcher.evidence.limits import ArchiveLimits
from matcher.inventory import check_seal
from matcher.inventory import default_path as default_inventory_path
from matcher.models import ROLES
from matcher.scan import Counts
from matcher.scan import ScanOptions
from matcher.scan import ScanSummary
from matcher.scan import exit_code_for
from matcher.scan import run_scan
from matcher.store import HashStore
from matcher.store import remove_store_if_empty

if TYPE_CHECKING:
    from matcher.batch import BatchItem

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EXIT_CODES = """\b
Exit codes (scan):
  0  finished, every entry accounted for, no notable match
  1  at least one notable match                       (flag)
  2  usage or fatal error: nothing scanned, or the scan stopped (see the message)
  4  finished, but some entries could not be read     (flag)
  8  interrupted (SIGINT/SIGTERM); continue with --resume (flag)
 16  --verify-image: an E01's media does not match its stored hash (flag)
  Flags add up: 5 = notable match(es) and unreadable entries.
verify: 0 intact, 1 tampered or incomplete, 2 unreadable.
import: 0 imported (or already there), 2 rejected, store unchanged,
  8 interrupted (that list's import rolled back: run the command again)."""


class _NewFile(click.Path):
    """A file a command writes; a value ending in a slash (or `/.`) names a folder, and is refused.

    Note: `--log /cases/item1/`, its folder not made yet, wrote the log as the
    file /cases/item1 (a path drops its trailing slash, and a trailing `/.`
    too), the inventory beside it.
    """

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.endswith((os.sep, os.sep + ".")):
            tail = value[value.rindex(os.sep) :]
            self.fail(
                f"{value!r} ends with {tail}, so it names a folder: give a file's name "
                "(in that folder, once it exists).",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


class _LazyChoice(click.Choice):  # type: ignore[type-arg]
    """A choice whose names come from a registry, loaded only when needed.

    Each command imports its own job when it runs, so that `scan` does not
    pay for the import formats and report writers at every start (about a
    fifth of a second); a choice asks its registry only when it is used.
    """

    def __init__(self, names: Callable[[], list[str]]):
        super().__init__([], case_sensitive=False)  # --format CSV is csv
        self._names = names
        self._loaded: list[str] | None = None

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        if self._loaded is None:
            self._loaded = list(self._names())
        return self._loaded

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        # Note: click.Choice.__init__ sets the empty list given above, which
        # leaves the names to the registry; names set later are used as given.
        self._loaded = list(value) or None


# What `import --format` alone gives (never a format name: no argument holds a NUL).
_LIST_FORMATS = "\0list"


class _ImportFormatChoice(_LazyChoice):
    """The import formats; `--format` given alone passes through, to list them."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == _LIST_FORMATS:
            return value
        return super().convert(value, param, ctx)


def _list_formats() -> None:
    """`import --format` alone: print each format's name, default role and description."""
    from matcher.formats import registry

    for reader in registry.readers():
        click.echo(f"{reader.NAME:<12} {reader.DEFAULT_ROLE:<8} {reader.DESCRIPTION}")


def _format_names() -> list[str]:
    from matcher.formats import registry

    return registry.names()


def _report_names() -> list[str]:
    from matcher.reports import registry

    return registry.names()


def _inventory_report_names() -> list[str]:
    from matcher.reports import registry

    return registry.inventory_names()


class Fatal(click.ClickException):
    """A MatcherError at the top: exit 2 with its one-line message."""

    exit_code = int(ExitCode.FATAL)

    def format_message(self) -> str:
        # Note: a message names evidence, lists and logs (a resume's roots): an
        # escape sequence in a name reached the terminal raw, and piped, click
        # dropped it, naming a path that does not exist; a line feed split it.
        return _terminal_safe(self.message)


class IntegrityFailed(click.ClickException):
    """A log that does not verify: exit 1, naming the first bad line."""

    exit_code = int(ExitCode.NOTABLE)

    def format_message(self) -> str:
        return f"FAILED: {_terminal_safe(self.message)}"


@contextlib.contextmanager
def _translate_errors(integrity_is_fatal: bool = False) -> Iterator[None]:
    """MatcherError to exit 2; IntegrityError to exit 1 (verify, report), or 2.

    Args:
        integrity_is_fatal: for the commands where exit 1 means notable
            matches (scan --resume, rematch, batch): a log that does not
            verify is a refusal there, exit 2, never a reported match.
    """
    try:
        yield
    except IntegrityError as exc:
        if integrity_is_fatal:
            raise Fatal(f"refused: the log does not verify: {described(exc)}") from exc
        raise IntegrityFailed(described(exc)) from exc
    except MatcherError as exc:
        raise Fatal(described(exc)) from exc


@contextlib.contextmanager
def _json_error(as_json: bool, answered: Callable[[], bool] | None = None) -> Iterator[None]:
    """With --json, a refusal or fatal error is a JSON object on stdout too.

    `answered` tells when the command has already printed its own JSON
    answer for the error (import's list of results, the rejected one named).

    Note: `scan --json` (and lists, import, batch) printed nothing on stdout
    when it stopped (exit 2): a script reading its stdout had no object to
    tell why. Nor did any of them interrupted (exit 8) before it had its
    own answer: now `"status": "interrupted"`, with the same three keys.
    """
    try:
        yield
    except click.ClickException as exc:
        if as_json and not (answered is not None and answered()):
            _json_stopped("error", exc.exit_code, exc.format_message())
        raise
    except KeyboardInterrupt as exc:
        # Note: a Ctrl-C or SIGTERM (import, verify, rematch, lists, selftest, a
        # scan's start) printed nothing on stdout: a script parsing it had no
        # object, where a refusal gives one.
        if as_json and not (answered is not None and answered()):
            _no_more_signals()  # winding down: a second signal must not cut the object
            what = "Terminated." if isinstance(exc, _Terminated) else "Interrupted."
            _json_stopped("interrupted", int(ExitCode.INTERRUPTED), what)
        raise


def _json_stopped(status: str, exit_code: int, message: str) -> None:
    """--json's object for a command stopped (refused, failed or interrupted) on stdout."""
    try:
        click.echo(json.dumps({"status": status, "exit_code": exit_code, "error": message}))
    except OSError as lost:
        # Note: the refusal itself still goes to stderr (click prints it);
        # a full stdout had it replaced by "cannot write to standard output".
        _say_stdout_lost(lost.strerror or str(lost))


# Note: a phone's full file system extraction is one zip of hundreds of
# thousands of members: past the default, the rest were one `too-many-members`
# entry, with no way to read them.
_max_members = click.option(
    "--max-members",
    type=click.IntRange(min=1),
    default=ArchiveLimits().max_members,
    show_default=True,
    help="With --archives: members read in one archive (a bomb limit); the rest are one "
    "too-many-members entry. Raise it for a large extraction (a phone's file system zip).",
)

_candidates_only = click.option(
    "--candidates-only",
    is_flag=True,
    help="Hash only files whose size occurs among notable entries. Gives up known/unknown "
    "counts: other files are counted as not-candidate, never as clean. Trusts the lists' "
    "sizes: a notable file whose entry gives a wrong size is never read.",
)


def db_option(f: Any) -> Any:
    return click.option(
        "--db",
        type=_NewFile(),
        envvar="MATCHER_DB",
        default="matcher.db",
        # Note: the value in use may be $MATCHER_DB's; "[default: matcher.db]" said otherwise.
        show_default="$MATCHER_DB, else matcher.db",
        help="Hash store (SQLite). Falls back to $MATCHER_DB, then ./matcher.db.",
    )(f)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, taken as a Ctrl-C is (every command unwinds and rolls back the same way)."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


_TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _no_more_signals() -> None:
    """Ignore SIGINT, SIGTERM and SIGHUP from here on: the command is already winding down.

    Note: a burst of them (a Ctrl-C held, a supervisor's repeated SIGTERM) raised
    again inside the handler of the first, and the last one escaped to click,
    which prints "Aborted!" and exits 1, the code of a notable match.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _terminate_on(signals: tuple[signal.Signals, ...]) -> dict[signal.Signals, Any]:
    """Take SIGTERM, and SIGHUP unless the process was started ignoring it, as a Ctrl-C.

    Returns the handlers they had. Note: a hangup (the terminal of a
    scan gone) in the instants after a scan closed its log, when the
    scan's own handler was gone, killed the process (exit 129, the
    summary and the log's head unsaid).
    """
    return {sig: signal.signal(sig, _terminate) for sig in signals if sig not in IGNORED_AT_START}


def _interrupted(exc: BaseException) -> click.exceptions.Exit:
    """Say how the command was stopped; the exit to raise (8, never click's 1)."""
    _no_more_signals()
    click.echo("Terminated." if isinstance(exc, _Terminated) else "Interrupted.", err=True)
    return click.exceptions.Exit(int(ExitCode.INTERRUPTED))


def _quieten_outputs() -> None:
    """Point stdout and stderr at /dev/null: their reader is gone, or they cannot be written."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                os.dup2(null, stream.fileno())
        os.close(null)


class _Command(click.Command):
    """A command; refused (exit 2) when the current folder no longer exists.

    Note: checked once its options are parsed (so `--help` still works), before
    it runs: paths are taken relative to that folder, and Python's and
    SQLite's calls for it fail deep inside (a traceback, or an output blamed).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Note: a refusal by click itself (a missing option, a file that does
        # not exist, a bad value) printed nothing on stdout with --json: the
        # options are not parsed yet, so --json is looked for as given.
        given = args[: args.index("--")] if "--" in args else args
        with _json_error("--json" in given and "as_json" in {p.name for p in self.params}):
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        # Note: a command's refusal answers its --json too (see _json_error).
        with _json_error(bool(ctx.params.get("as_json")), lambda: bool(ctx.meta.get(_ANSWERED))):
            try:
                os.getcwd()
            except FileNotFoundError:
                raise click.UsageError(
                    "The current folder no longer exists (deleted or moved); cd to another "
                    "folder and run the command again.",
                    ctx,
                ) from None
            return super().invoke(ctx)


# The context key a command sets once it has printed its own JSON answer to an
# error (import's list of results, the rejected list named): _json_error adds none.
_ANSWERED = "matcher.json_answered"


class _Commands(click.Group):
    """The command group; a Ctrl-C or SIGTERM outside a scan's own handling exits 8, never 1.

    A scan handles SIGINT and SIGTERM itself once its log is open (an
    `interrupted` end record, exit 8). Before that (the self-test, importing
    --list, building the filter), and in every other command, click would
    print "Aborted!" and exit 1, the code of a notable match, and a SIGTERM
    would kill the process (exit 143). Nothing is half-written there (an
    import rolls back), so the exit says "interrupted" plainly.
    """

    command_class = _Command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # Note: a signal while the arguments are parsed, before invoke, went
        # to click too ("Aborted!", exit 1).
        _terminate_on(_TERMINATING)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as exc:
            raise _interrupted(exc) from None

    def invoke(self, ctx: click.Context) -> object:
        previous = _terminate_on(_TERMINATING)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _interrupted(exc) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError as exc:
            # Note: the reader of stdout or stderr went away (`| head`). Click
            # would exit 1, the code of a notable match: 2, with the two
            # outputs quietened so that Python's last flush cannot fail.
            # A stdout the command was started without (`>&-`) is said, on
            # stderr: a job could not tell it from an unreadable log.
            if exc.errno == errno.EBADF and getattr(sys.stdout, "closed_at_start", False):
                _say_stdout_lost("it is closed (the command was started without one)")
            elif _echo_to_stdout_failed(exc):
                # Note: said, as `hash` says it: a scan that completed and exit 2
                # with no word of why read as a scan that failed.
                _say_stdout_lost("its reader went away (Broken pipe)")
            _quieten_outputs()
            raise click.exceptions.Exit(int(ExitCode.FATAL)) from None
        except OSError as exc:
            if not _echo_to_stdout_failed(exc):
                raise _internal_error(exc) from None
            # Note: a full disk or an I/O error under stdout (`--json > FILE`)
            # is no fault of matcher's: said as such, exit 2.
            _say_stdout_lost(f"{exc.strerror or exc}")
            _quieten_outputs()
            raise click.exceptions.Exit(int(ExitCode.FATAL)) from None
        except Exception as exc:
            raise _internal_error(exc) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _archive_limits(archives: bool, max_depth: int, max_members: int) -> ArchiveLimits:
    """The archive limits of a scan or batch; --max-depth or --max-members given without
    --archives is refused.

    Note: it was ignored with no word (the run record shows no archives), and
    an examiner who took it to open archives got a log that did not show it.
    """
    context = click.get_current_context()
    for name, what in (("max_depth", "archives inside archives"), ("max_members", "archives")):
        given = context.get_parameter_source(name)
        if not archives and given not in (None, click.core.ParameterSource.DEFAULT):
            raise click.UsageError(
                f"--{name.replace('_', '-')} applies to {what}: add --archives (without it, "
                "an archive is hashed as one file and no member is read)."
            )
    return ArchiveLimits(max_depth=max_depth, max_members=max_members)


def _say_verify_failed(log: Path, exc: IntegrityError, as_json: bool) -> None:
    """verify's output for a log that failed, with what verified before its bad line.

    Note: a log cut short is signed at checkpoints so that its authorship can
    still be checked: what verified is said (as every report says it).
    """
    from matcher.reports.model import Verification

    click.echo(f"FAILED: {log}: {exc}", err=True)
    v = Verification.failed(exc)
    if v.records and not as_json:
        click.echo(f"  {v.verified_before().removeprefix('; ')}", err=True)
    if as_json:
        fields = {"log": str(log), "intact": False, "line": exc.line, "error": str(exc)}
        if exc.seen is not None:
            # Note: the bytes that failed, as an intact log's report gives them:
            # a reviewer can tie the failure to the very file examined.
            fields["size"], fields["sha256"] = exc.seen
        before = {"signatures": v.signatures, "signatures_checked": v.signatures_checked}
        keys = list(v.key_fingerprints)
        click.echo(json.dumps({**fields, "records": v.records, **before, "key_fingerprints": keys}))


def _echo_to_stdout_failed(exc: OSError) -> bool:
    """True when `exc` came from writing stdout (fd 1) in click.echo.

    Note: asked of the traceback: a buffered stream drops what it held once
    a write fails, so the stream itself cannot be asked afterwards.
    """
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "echo" and frame.f_globals.get("__name__") == "click.utils":
            with contextlib.suppress(Exception):
                return bool(frame.f_locals["file"].fileno() == 1)
            return False
        tb = tb.tb_next
    return False


def _say_stdout_lost(why: str) -> None:
    """Say on stderr that what the command printed on stdout was lost (stderr may fail too)."""
    with contextlib.suppress(Exception):
        click.echo(
            f"Error: cannot write to standard output: {why}. What the command printed there "
            "is lost; its files (a log, a store) are as the command left them.",
            err=True,
        )


def _internal_error(exc: Exception) -> click.exceptions.Exit:
    """Report a fault in matcher itself (traceback, then one line); the exit (2) to raise.

    Note: Python would exit 1, which a scan's caller reads as a notable
    match; 2 is a fatal error. With stderr unwritable too (a full disk
    under it), the outputs are quietened.
    """
    import traceback

    try:
        traceback.print_exception(exc)
        click.echo(
            f"Error: internal error ({type(exc).__name__}: {exc}). This is a fault in "
            "matcher, not in the evidence or the lists: please report it with the "
            "traceback above.",
            err=True,
        )
    except Exception:  # noqa: BLE001 - stderr itself cannot be written
        _quieten_outputs()
    return click.exceptions.Exit(int(ExitCode.FATAL))


@click.group(cls=_Commands, context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="matcher")
def cli() -> None:
    """Hash-only known-file matcher for digital-forensic examiners.

    Imports hash lists, hashes every file of the evidence once, and writes a
    tamper-evident log of notable matches. It never views content and never
    writes under an evidence root.

    \b
    Example:
      matcher import known.hashdeep --role known
      matcher scan /evidence/item1 --examiner "J. Doe" --case 2026-0042 --list notable.sha256
      matcher verify matcher-2026-0042-*.jsonl
    """


@contextlib.contextmanager
def _removed_if_nothing_lands(db: Path, results: list[dict[str, object]]) -> Iterator[None]:
    """Remove a store this command created if it fails before any list is imported.

    A refused import leaves the store as it was; when there was no store,
    that means no file either (an empty store would look like a usable one).
    """
    created = not os.path.lexists(db)
    try:
        yield
    except BaseException:
        if created and not results:
            remove_store_if_empty(db)  # unless another process imported into it meanwhile
        raise


@cli.command(name="import")
# Note: LISTS is checked in the command, as `--format` alone needs none.
@click.argument(
    "lists", nargs=-1, metavar="LISTS...", type=click.Path(dir_okay=False, path_type=Path)
)
@db_option
@click.option(
    "--format",
    "format_name",
    type=_ImportFormatChoice(_format_names),
    is_flag=False,
    flag_value=_LIST_FORMATS,
    help="Override format detection. Alone (`matcher import --format`): list the formats, "
    "each with its default role.",
)
@click.option("--name", help="Name of the list in the store (default: the file name).")
@click.option(
    "--role",
    type=click.Choice(ROLES, case_sensitive=False),
    help="notable or known (default: the format's usual role).",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Keep the good lines; count and report malformed ones."
)
@click.option(
    "--replace",
    metavar="NAME",
    help="Replace the list NAME with this one (one list), in one transaction. A new list "
    "whose format defaults to another role than NAME's is refused unless --role says which.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def import_cmd(
    lists: tuple[Path, ...],
    db: Path,
    format_name: str | None,
    name: str | None,
    role: str | None,
    skip_invalid: bool,
    replace: str | None,
    as_json: bool,
) -> None:
    """Import hash lists into the store (one transaction per list).

    The format is detected from the content; the formats are listed under
    --format. A malformed line rejects the whole list (exit 2, store
    unchanged) unless --skip-invalid is given. Importing the same file again
    does nothing. Of several lists, those before a rejected one stay
    imported, and the ones after it are not tried (both are named).

    \b
    Example:
      matcher import case-0042-notable.csv --role notable
      matcher import NSRL.db --name nsrl-2026.09 --replace nsrl-2026.06
    """
    ctx = click.get_current_context()
    if format_name == _LIST_FORMATS:
        if lists:
            # Note: the formats were listed, exit 0, and the lists never imported
            # (`--format $FORMAT` with $FORMAT empty, in a lab's script).
            raise click.UsageError(
                f"--format needs a format's name to import {lists[0]} (one of: "
                f"{', '.join(_format_names())}); alone, `matcher import --format` lists them."
            )
        _list_formats()
        return
    if not lists:
        raise click.MissingParameter(ctx=ctx, param=ctx.command.params[0])
    if name is not None and not name.strip():
        # Note: '' silently took the file name, and '   ' made a list no table shows.
        raise click.UsageError("--name is empty: give the list a name, or leave --name out.")
    if name and len(lists) > 1:
        raise click.UsageError("--name applies to one list; import lists one by one to name each.")
    if replace and len(lists) > 1:
        # Note: else the first list would replace it, and the next fail to find it.
        raise click.UsageError("--replace applies to one list; import the new version alone.")
    for path in lists:
        # Note: checked here, not by click, so that --json answers it too.
        if not os.path.lexists(path):
            raise click.BadParameter(f"File {str(path)!r} does not exist.", param_hint="LISTS")
    from matcher.importing import import_list

    results: list[dict[str, object]] = []
    with _translate_errors(), _removed_if_nothing_lands(db, results):
        store = HashStore(db)
        try:
            replaced = store.find_list(name=replace) if replace else None
            for number, path in enumerate(lists):
                try:
                    result = import_list(
                        store,
                        path,
                        format_name=format_name,
                        name=name,
                        role=role,
                        skip_invalid=skip_invalid,
                        replace=replace,
                    )
                except KeyboardInterrupt:
                    # Note: one list interrupted was said as "Interrupted." alone: not
                    # whether the store had changed, nor what to do.
                    if len(lists) > 1:
                        _say_where_import_stopped(lists, number, "was interrupted")
                        again = "the rest (a list imported already is left as it is)"
                    else:
                        said = f"matcher: the import of {path} was interrupted and left the store "
                        click.echo(_terminal_safe(said + "as it was."), err=True)
                        again = "it"
                    click.echo(f"matcher: run the same command again to import {again}.", err=True)
                    if as_json:
                        # Note: it printed nothing on stdout, the lists before it
                        # imported (each its own transaction) unsaid, as a rejection says them.
                        _no_more_signals()
                        stopped = {"file": str(path), "interrupted": True}
                        untried = [{"file": str(p), "not_tried": True} for p in lists[number + 1 :]]
                        click.echo(json.dumps([*results, stopped, *untried], indent=2))
                        ctx.meta[_ANSWERED] = True
                    raise
                except MatcherError as exc:
                    if len(lists) > 1:
                        _say_where_import_stopped(lists, number)
                    if as_json:
                        # Note: the lists before it stay imported (each its own
                        # transaction); a script must hear of them too.
                        rejected = {"file": str(path), "rejected": True, "error": str(exc)}
                        untried = [{"file": str(p), "not_tried": True} for p in lists[number + 1 :]]
                        click.echo(json.dumps([*results, rejected, *untried], indent=2))
                        ctx.meta[_ANSWERED] = True
                    raise
                info = result.info
                # Note: a name may hold a line break or a control character (as verify's do).
                shown = _terminal_safe(str(path))
                if result.already_imported:
                    click.echo(
                        f"{shown}: already imported as list {info.name!r}; nothing done.", err=True
                    )
                else:
                    entries = "entry" if info.entries == 1 else "entries"
                    click.echo(
                        f"{shown}: imported {info.entries:,} {entries} as {info.role} list "
                        f"{info.name!r} ({info.format})"
                        + (f", replacing {result.replaced!r}" if result.replaced else "")
                        + (
                            f" ({replaced.format})"
                            if result.replaced and replaced and replaced.format != info.format
                            else ""
                        )
                        + ".",
                        err=True,
                    )
                if info.zero_length and not result.already_imported:
                    click.echo(
                        f"{shown}: {info.zero_length:,} entr"
                        f"{'y holds' if info.zero_length == 1 else 'ies hold'} the digest of "
                        "an empty file: flagged (an empty file is never a match).",
                        err=True,
                    )
                for note in result.notes:
                    click.echo(f"{shown}: note: {note}.", err=True)
                if result.flagged_malicious:
                    click.echo(
                        f"{shown}: note: {result.flagged_malicious:,} of its entries carry NIST's "
                        'SpecialCode "M" (malicious), kept as their label; imported as known, as '
                        "the list's role says, a file matching one is counted known, never "
                        "logged. Give such entries to a notable list if the case needs them found.",
                        err=True,
                    )
                if result.skipped_invalid:
                    click.echo(
                        f"{shown}: skipped {result.skipped_invalid:,} invalid line(s):", err=True
                    )
                    for example in result.invalid_examples:
                        click.echo(f"  {example}", err=True)
                results.append(
                    {
                        "file": str(path),
                        "list": info.name,
                        "role": info.role,
                        "format": info.format,
                        "entries": info.entries,
                        "already_imported": result.already_imported,
                        "skipped_invalid": result.skipped_invalid,
                        "zero_length_entries": info.zero_length,
                        "flagged_malicious": result.flagged_malicious,
                        "notes": result.notes,
                    }
                )
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps(results, indent=2))


def _say_where_import_stopped(
    lists: tuple[Path, ...], failed: int, what: str = "is rejected"
) -> None:
    """Name, before the error, the lists imported and those not tried (each its own transaction)."""
    done = ", ".join(str(p) for p in lists[:failed]) or "none"
    left = ", ".join(str(p) for p in lists[failed + 1 :]) or "none"
    said = (
        f"matcher: import stopped at list {failed + 1} of {len(lists)} ({lists[failed]}), "
        f"which {what} and left the store as it was. Imported before it: {done}. "
        f"Not tried: {left}."
    )
    click.echo(_terminal_safe(said), err=True)


@cli.command(name="lists")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the lists as JSON on stdout.")
def lists_cmd(db: Path, as_json: bool) -> None:
    """Show the imported lists: name, role, format, entries per algorithm.

    Exits 0; 2 when the store does not exist or cannot be read.

    \b
    Example:
      matcher lists --db case.db
      matcher lists --json | jq '.[].name'
    """
    with _translate_errors():
        store = HashStore(db, readonly=True)
        try:
            infos = store.lists()
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps([_list_dict(i) for i in infos], indent=2))
        return
    if not infos:
        click.echo("No lists imported.", err=True)
        return
    rows = []
    for i in infos:
        digests = ",".join(f"{a}:{n}" for a, n in i.counts.items())
        if i.zero_length:
            plural = "" if i.zero_length == 1 else "s"
            digests += f" ({i.zero_length:,} empty-file digest{plural}, flagged)"
        rows.append(
            (
                _one_line(i.name),
                i.role,
                i.format,
                f"{i.entries:,}",
                digests,
                i.imported,
                i.source_sha256[:16] + "…",
                # Note: what the list says of itself (an NSRL's VERSION row: version,
                # build set, release date), as --json gives it.
                _one_line("; ".join(f"{k}: {v}" for k, v in i.metadata.items())),
            )
        )
    header = (
        "name", "role", "format", "entries", "digests", "imported", "source sha256", "metadata"
    )  # fmt: skip
    # Note: columns as wide as their widest value, so a long list name shifts no column.
    widths = [max(len(str(row[k])) for row in [header, *rows]) for k in range(len(header))]
    for row in [header, *rows]:
        cells = [
            str(v).rjust(w) if k == 3 else str(v).ljust(w)
            for k, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())


def _list_dict(info: Any) -> dict[str, object]:
    return {
        "name": info.name,
        "role": info.role,
        "format": info.format,
        "source_sha256": info.source_sha256,
        "entries": info.entries,
        "digests": dict(info.counts),
        "imported": info.imported,
        "metadata": dict(info.metadata),
        "zero_length_entries": info.zero_length,
    }


@cli.command(name="remove")
@click.argument("name")
@db_option
def remove_cmd(name: str, db: Path) -> None:
    """Remove an imported list and all its entries.

    One transaction: the whole list, or nothing. Exits 0 when it is removed;
    2 when the store or the list does not exist (nothing is changed).

    \b
    Example:
      matcher remove nsrl-2026.06 --db lab.db
    """
    with _translate_errors():
        store = HashStore(db, create=False)
        try:
            info = store.remove_list(name)
        finally:
            store.close()
    click.echo(f"Removed list {info.name!r} ({info.entries:,} entries).", err=True)


def _terminal_safe(text: str) -> str:
    """`text` for the terminal: controls, bidi and invisible characters as escapes.

    Note: text that names evidence (a note naming a file) reached the terminal
    raw: an escape sequence in a file's name cleared the screen, and piped,
    click dropped the sequence, naming a file that does not exist.
    """
    from matcher.reports.text import display_text

    return display_text(text)


def _one_line(text: str) -> str:
    """`text` for one cell of a table: control characters (a newline) as escapes.

    Note: a list named after a file whose name held a newline broke the
    `lists` table across lines; --json gives every name exactly.
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _complete_log_code(log: Path) -> int | None:
    """The exit code a log says, when it verifies and its last run ended complete; else None."""
    from matcher.auditlog import verify

    try:
        report = verify(log)
    except (MatcherError, OSError):
        return None
    counted = (report.last_end or {}).get("counts")
    if report.last_status != "complete" or not isinstance(counted, dict):
        return None
    return exit_code_for("complete", Counts.from_record(counted))


def _default_log(case: str) -> Path:
    """matcher-CASE-TIME.jsonl here, or -2, -3, ... added when that log or its inventory exists.

    Note: two scans of one case started in the same second took one name: the
    second was refused with "Use --resume", which would continue the first's log.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", case.strip())[:64] or "case"
    number = 1
    while True:
        log = Path(f"matcher-{safe}-{stamp}{f'-{number}' if number > 1 else ''}.jsonl")
        if not os.path.lexists(log) and not os.path.lexists(default_inventory_path(log)):
            return log
        number += 1


@contextlib.contextmanager
def _default_log_taken(log: Path | None) -> Iterator[None]:
    """A log named by default whose name another scan took before this one created it: said so.

    `log` is the name chosen by default (None when --log named it).
    """
    try:
        yield
    except UsageError as exc:
        if log is None:
            raise
        taken = (f"Log {log} already exists", f"Inventory {default_inventory_path(log)} already")
        if not str(exc).startswith(taken):
            raise
        raise _LogNameTaken(
            f"The log name {log}, chosen by default, was taken meanwhile (another scan "
            "starting); run the command again, or give --log."
        ) from exc


class _LogNameTaken(UsageError):
    """A log name chosen by default that another scan took first (see _default_log_taken)."""


# How many default log names a scan tries while other scans of the case start
# in the same second and take them first.
_DEFAULT_LOG_TRIES = 50


class _Progress:
    """One status line on stderr, refreshed at most 5 times a second.

    The line is cut to the terminal's width: a line that wrapped would leave
    a stale row behind at each refresh.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = 0.0

    @staticmethod
    def _show(text: str) -> None:
        try:
            width = os.get_terminal_size(sys.stderr.fileno()).columns
        except (OSError, ValueError):
            width = 0
        width = width if width > 0 else 80  # 0: a terminal that does not say
        sys.stderr.write("\r\x1b[K" + text[: width - 1])
        sys.stderr.flush()

    def __call__(self, counts: Counts) -> None:
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        rate = counts.bytes / max(now - self.started, 1e-6) / 1e6
        self._show(
            f"Hashing: {counts.files:,} files, {counts.bytes / 1e6:,.1f} MB, "
            f"{rate:,.1f} MB/s, {counts.notable:,} notable, {counts.errors:,} errors"
        )

    def stage(self, text: str) -> None:
        """A step before the first file (building the lookup filter), on the same line."""
        now = time.monotonic()
        self.started = now  # the hashing rate counts from the end of the last step
        if now - self.last < 0.2:
            return
        self.last = now
        self._show(text)

    def done(self) -> None:
        sys.stderr.write("\r\x1b[K")


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?)(b?)\s*", text.lower())
    if not match or (match.group(3) and not match.group(2)):
        raise click.BadParameter(f"{text!r} is not a size like 500M or 2G", param_hint="--max-size")
    exponent: int = " kmgt".index(match.group(2) or " ")
    # Note: 500M and 500MiB are 500 x 1024^2, 500MB is 500 x 1000^2 (SI); 1MB was
    # taken as 1 MiB, a limit 4.9% off what the examiner wrote.
    base = 1000 if match.group(4) and not match.group(3) else 1024
    size: int = int(match.group(1)) * base**exponent
    return size


@cli.command(name="scan")
# Note: taken as text, made a Path in scan_cmd: Path("") is ".", so `scan ""` (an
# empty variable in a lab script) scanned the current folder.
@click.argument("evidence", nargs=-1, required=True, type=click.Path(readable=False))
@click.option(
    "--examiner", required=True, help="The authorised examiner running this scan (required)."
)
@click.option("--case", required=True, help="The case reference that authorises it (required).")
@click.option("--authority", help="The legal authority (warrant, order) for the record.")
@db_option
@click.option(
    "--list",
    "lists",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Import this list into the store first (repeatable). It stays there for later "
    "runs: a scan matches against every list in the store (see `matcher lists`).",
)
@click.option(
    "--log",
    type=_NewFile(),
    help="Match log to write (default: matcher-CASE-TIME.jsonl here; -2, -3... added if taken).",
)
@click.option(
    "--algorithms",
    help="Digests computed in the one read pass (default: md5,sha1,sha256, and any other "
    "that a notable list in the store holds, so that none of its entries is left unmatched, "
    "or that a known list needs, whose entries do not all give one of those three; "
    f"a resume computes what its run did); available: {','.join(available_algorithms())}.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Hashing workers (default: the cores this process may use).",
)
@_candidates_only
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Skip entries matching GLOB (relative path or name; fnmatch: * also matches /); "
    "recorded and counted.",
)
@click.option(
    "--max-size",
    help="Skip files larger than this (e.g. 500M or 4G: K, M, G, T and KiB, MiB... are powers "
    "of 1024; KB, MB, GB, TB of 1000); "
    "recorded and counted as too-large.",
)
@click.option(
    "--one-file-system", is_flag=True, help="Do not descend into other filesystems (recorded)."
)
@click.option(
    "--deleted",
    is_flag=True,
    help="Disk images: also hash deleted entries whose content can still be read "
    "(kind deleted-file). Without it they are listed as skipped (deleted).",
)
@click.option(
    "--verify-image",
    is_flag=True,
    help="E01: first re-hash the whole media against the MD5/SHA-1 stored in the image. "
    "A mismatch is a warning and sets exit flag 16.",
)
@click.option(
    "--images-only",
    is_flag=True,
    help="Every file given as evidence must be a disk image: refuse one with no "
    "recognisable volume system or filesystem instead of hashing it as a single file.",
)
@click.option(
    "--archives",
    is_flag=True,
    help="Also hash the members of zip, tar, tar.gz/bz2/xz, gz/bz2/xz and 7z files "
    "(paths ARCHIVE!member), within bomb limits; 7z needs the archives extra (py7zr).",
)
@click.option(
    "--max-depth",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="With --archives: how deep archives inside archives are opened.",
)
@_max_members
@click.option("--resume", is_flag=True, help="Continue the interrupted or crashed run of --log.")
@click.option(
    "--sign-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 private key (matcher keygen) to sign the log.",
)
@click.option(
    "--inventory",
    type=_NewFile(),
    help="Inventory database (default: LOG.inventory.db beside the log).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as one JSON object on stdout; refused or stopped by an error, "
    'an object with "status": "error", "exit_code" and "error"; interrupted before its '
    'log opened, the same with "status": "interrupted".',
)
def scan_cmd(
    evidence: tuple[str, ...],
    examiner: str,
    case: str,
    authority: str | None,
    db: Path,
    lists: tuple[Path, ...],
    log: Path | None,
    algorithms: str | None,
    jobs: int | None,
    candidates_only: bool,
    excludes: tuple[str, ...],
    max_size: str | None,
    one_file_system: bool,
    deleted: bool,
    verify_image: bool,
    images_only: bool,
    archives: bool,
    max_depth: int,
    max_members: int,
    resume: bool,
    sign_key: Path | None,
    inventory: Path | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Hash every file of the evidence once and log notable matches.

    Walks folders and files without following symlinks; FIFOs, sockets and
    devices are skipped with a record. Every entry ends as hashed, skipped
    with a reason, or an error, and the end record's counts add up.

    A file given as EVIDENCE that is a disk image by its content (E01, split
    E01 given its first segment, raw/dd with an MBR or GPT partition table,
    or a bare NTFS, ext2/3/4, FAT or exFAT filesystem) is read straight from
    the image, every partition, never mounted (needs pip install
    'matcher[images]'). An image met inside an evidence folder is hashed as
    one file, its contents not walked: give it as EVIDENCE of its own (a note
    counts the files there named as images: .E01, .dd, .raw, .img, ...).

    Exit 0: complete, no notable match; 1: a notable match; 2: usage or
    fatal error (nothing scanned, or the run stopped: see the message); 4:
    an entry could not be read; 8: interrupted (--resume continues it); 16:
    --verify-image found an image's stored digests wrong. 1, 4, 8 and 16
    are flags and add up (5: a match and an unreadable entry).

    \b
    Example:
      matcher scan /mnt/evidence/item1 --examiner "J. Doe" --case 2026-0042 \\
          --list notable.csv --log item1.jsonl
      matcher scan disk.E01 --verify-image --archives --examiner "J. Doe" \\
          --case 2026-0042 --log disk.jsonl
      matcher scan /mnt/evidence/item1 --examiner "J. Doe" --case 2026-0042 \\
          --log item1.jsonl --resume
    """
    try:
        algos = None if algorithms is None else parse_algorithms(algorithms)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--algorithms") from exc
    if resume and log is None:
        raise click.UsageError("--resume needs the --log of the run to continue.")
    if any(not e for e in evidence):
        raise click.BadParameter(
            "an empty path (an unset variable?); name the folder, even the current one: .",
            param_hint="EVIDENCE",
        )
    options = ScanOptions(
        evidence=tuple(Path(e) for e in evidence),
        examiner=examiner,
        case=case,
        authority=authority,
        db=db,
        lists=lists,
        log=log or _default_log(case),
        algorithms=algos,
        jobs=jobs or 0,
        candidates_only=candidates_only,
        excludes=excludes,
        max_size=_size(max_size),
        one_file_system=one_file_system,
        resume=resume,
        sign_key=sign_key,
        inventory=inventory,
        argv=sys.argv[1:],
        deleted=deleted,
        verify_image=verify_image,
        images_only=images_only,
        archives=archives,
        archive_limits=_archive_limits(archives, max_depth, max_members),
    )
    show = not quiet and sys.stderr.isatty()
    progress = _Progress() if show else None
    try:
        with _translate_errors(integrity_is_fatal=True):
            for attempt in range(1, _DEFAULT_LOG_TRIES + 1):
                try:
                    with _default_log_taken(options.log if log is None else None):
                        summary = run_scan(
                            options,
                            progress=progress,
                            on_stage=progress.stage if progress else None,
                            on_note=functools.partial(_note_now, progress),
                        )
                    break
                except _LogNameTaken:
                    # Note: parallel jobs of one case started in one second lost
                    # all but one run; the refusal came before anything was
                    # written, so the next free name is taken instead (-2, -3).
                    if attempt == _DEFAULT_LOG_TRIES:
                        raise
                    options = dataclasses.replace(options, log=_default_log(case))
    except KeyboardInterrupt as exc:
        # Note: while it hashes, the scan handles Ctrl-C itself (an
        # `interrupted` end record). This one came before (the self-test, a
        # --list import, the filter build), or in the instants just after the
        # log was created or just after its end record.
        _no_more_signals()
        stopped = "Terminated" if isinstance(exc, _Terminated) else "Interrupted"
        log = options.log
        code = _complete_log_code(log)
        if code is not None:
            # Note: it landed after the end record: the log says complete, and
            # exit 8 would have sent a caller to resume a finished scan.
            said = f"{stopped} as the scan ended; its log {log} is complete."
            click.echo(said, err=True)
            if as_json:
                # Note: it printed nothing on stdout, exit 0 or 1 with no object.
                ended = {"status": "complete", "exit_code": code, "log": str(log), "error": said}
                click.echo(json.dumps(ended))
            raise click.exceptions.Exit(code) from None
        if resume or log.exists():
            message = (
                f"{stopped} as the scan began or ended; `matcher verify {log}` shows where "
                f"its log stops; if its run is not complete, continue it with --resume --log {log}"
            )
        else:
            message = (
                f"{stopped} before the scan began; no log was written, so there is nothing "
                "to resume: run the command again"
            )
        click.echo(f"{message}.", err=True)
        if as_json:
            _json_stopped("interrupted", int(ExitCode.INTERRUPTED), f"{message}.")
        raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None
    finally:
        # Note: also when the run fails or is interrupted: its message must
        # not be glued to the end of the status line.
        if progress is not None:
            progress.done()
    # Note: the log is closed: a signal now has nothing to stop, and must not
    # cut the summary (the log's head) short.
    _no_more_signals()
    _print_summary(summary, as_json, log_given=log is not None)
    sys.exit(summary.exit_code)


def _note_now(progress: _Progress | None, text: str) -> None:
    """A note of the run shown as it is known, before the first file (also in the summary)."""
    # Note: a courtesy: the summary and the end record hold it too, and a
    # terminal gone away must not stop the scan here, its run record written.
    with contextlib.suppress(OSError):
        if progress is not None:
            progress.done()  # not glued to the status line
        click.echo(f"note: {_terminal_safe(text)}", err=True)


def _print_summary(
    summary: ScanSummary,
    as_json: bool,
    resumable: bool = True,
    log_given: bool = True,
    rematched: bool = False,
) -> None:
    c = summary.counts
    # Note: a re-match reads no evidence: its files are the original's hashed ones.
    read = "files matched again by their recorded digests" if rematched else "files hashed"
    click.echo(
        f"{summary.status}: {c.entries:,} entries: {c.files:,} {read} ({c.bytes:,} bytes), "
        f"{c.skipped:,} skipped, {c.errors:,} errors\n"
        f"  notable {c.notable:,}   known {c.known:,}   unknown {c.unknown:,}"
        + (f" (of which {c.empty:,} empty)" if c.empty else "")
        + "   "
        f"in {summary.seconds:.2f} s\n"
        f"  log: {summary.log}\n  inventory: {summary.inventory}\n"
        f"  log head: {summary.head}  (note it in the case file; "
        "`matcher verify LOG --expect-head HEAD` then proves nothing was cut off)",
        err=True,
    )
    for note in summary.notes:
        # Note: a note can name evidence (a file's name may hold escape
        # sequences that clear the examiner's screen): controls shown as escapes.
        click.echo(f"  note: {_terminal_safe(note)}", err=True)
    if summary.status == "interrupted":
        # Note: a log named by default must be named on resume (the default
        # name carries the time, so the same command would start a new log).
        resume = "--resume" if log_given else f"--log {shlex.quote(str(summary.log))} --resume"
        hint = (
            f"run the same command with {resume} to continue {summary.log}"
            if resumable
            else "run it again with a new --log"
        )
        click.echo(f"  interrupted: {hint}.", err=True)
    if c.errors:
        click.echo(
            f"  {c.errors:,} entries could not be read: see the error records in the log.", err=True
        )
    if as_json:
        click.echo(json.dumps(summary.as_dict()))


@cli.command(name="rematch")
@click.argument("original_log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--examiner", required=True, help="The authorised examiner running this re-match (required)."
)
@click.option("--case", required=True, help="The case reference that authorises it (required).")
@click.option("--authority", help="The legal authority for the record.")
@db_option
@click.option(
    "--log",
    required=True,
    type=_NewFile(),
    help="The new log to write.",
)
@click.option(
    "--original-inventory",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The original run's inventory, if it moved (its SHA-256 must match the log's seal).",
)
@click.option(
    "--sign-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 private key to sign the new log.",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The original log's signer's public key (PEM): its signatures must then verify "
    "(without it, the new log notes that they were not checked).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout."
)
def rematch_cmd(
    original_log: Path,
    examiner: str,
    case: str,
    authority: str | None,
    db: Path,
    log: Path,
    original_inventory: Path | None,
    sign_key: Path | None,
    public_key: Path | None,
    as_json: bool,
) -> None:
    """Check a finished scan against the lists as they are now, without the evidence.

    Reads the original run's inventory (its SHA-256 must match the one the
    original log sealed) and writes a new verifiable log whose run record
    cites the original log's final chain hash. Exit codes as for scan.

    \b
    Example:
      matcher import caid-2026-12.json --db lab.db
      matcher rematch item1.jsonl --db lab.db --examiner "J. Doe" --case 2026-0042 \\
          --log item1-rematch.jsonl
    """
    from matcher.rematch import RematchOptions
    from matcher.rematch import run_rematch

    options = RematchOptions(
        original_log=original_log,
        examiner=examiner,
        case=case,
        authority=authority,
        db=db,
        log=log,
        original_inventory=original_inventory,
        sign_key=sign_key,
        argv=sys.argv[1:],
        public_key=public_key,
    )
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        with _translate_errors(integrity_is_fatal=True):
            summary = run_rematch(options, on_stage=progress.stage if progress else None)
    finally:
        if progress is not None:
            progress.done()
    _print_summary(summary, as_json, resumable=False, rematched=True)
    sys.exit(summary.exit_code)


@cli.command(name="batch")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option(
    "--list",
    "lists",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Import this list into the store first (repeatable). It stays there for later "
    "runs: a scan matches against every list in the store (see `matcher lists`).",
)
@click.option(
    "--algorithms",
    help="Digests computed (default: md5,sha1,sha256, and any other that a notable list in "
    "the store holds, or that a known list needs, whose entries do not all give one of those "
    "three).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Hashing workers (default: the cores this process may use).",
)
@click.option(
    "--exclude", "excludes", multiple=True, metavar="GLOB", help="Skip entries matching GLOB."
)
@click.option(
    "--max-size",
    help="Skip files larger than this (e.g. 4G or 4GiB, powers of 1024; 4GB, of 1000; counted "
    "as too-large).",
)
@click.option("--one-file-system", is_flag=True, help="Do not descend into other filesystems.")
@click.option(
    "--sign-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 private key to sign every log.",
)
@click.option("--deleted", is_flag=True, help="Disk images: also hash readable deleted entries.")
@click.option(
    "--verify-image", is_flag=True, help="E01: check the media against its stored hash first."
)
@click.option(
    "--images-only", is_flag=True, help="Refuse an evidence file that is not a disk image."
)
@click.option(
    "--archives",
    is_flag=True,
    help="Also hash the members of archives (zip, tar, gz/bz2/xz, 7z), as scan does.",
)
@click.option(
    "--max-depth",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="With --archives: how deep archives inside archives are opened.",
)
@_max_members
@_candidates_only
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON on stdout.")
def batch_cmd(
    manifest: Path,
    db: Path,
    lists: tuple[Path, ...],
    algorithms: str | None,
    jobs: int | None,
    excludes: tuple[str, ...],
    max_size: str | None,
    one_file_system: bool,
    sign_key: Path | None,
    deleted: bool,
    verify_image: bool,
    images_only: bool,
    archives: bool,
    max_depth: int,
    max_members: int,
    candidates_only: bool,
    as_json: bool,
) -> None:
    """Scan every evidence item of a CSV manifest, each with its own log and inventory.

    The manifest's header names evidence, case, examiner, and optionally
    authority and log. Items already finished are skipped on a rerun,
    interrupted ones resumed, and a failing item is recorded while the batch
    goes on. The exit code is 2 if an item failed, else every item's flags
    combined.

    \b
    Example:
      printf 'evidence,case,examiner,log\\nitem1,2026-0042,J. Doe,item1.jsonl\\n' > items.csv
      matcher batch items.csv --db lab.db
    """
    if not os.path.lexists(manifest):
        # Note: checked here, not by click, so that --json answers it too.
        raise click.BadParameter(f"File {str(manifest)!r} does not exist.", param_hint="MANIFEST")
    try:
        algos = None if algorithms is None else parse_algorithms(algorithms)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--algorithms") from exc
    template = ScanOptions(
        evidence=(),
        examiner="",
        case="",
        db=db,
        log=Path(),
        lists=lists,
        algorithms=algos,
        jobs=jobs or 0,
        excludes=excludes,
        max_size=_size(max_size),
        one_file_system=one_file_system,
        sign_key=sign_key,
        deleted=deleted,
        verify_image=verify_image,
        images_only=images_only,
        archives=archives,
        archive_limits=_archive_limits(archives, max_depth, max_members),
        candidates_only=candidates_only,
        argv=sys.argv[1:],
    )

    from matcher.batch import run_batch
    from matcher.batch import worst_exit_code

    def say(text: str) -> None:
        # Note: a terminal gone (a hangup: stderr fails with EIO) must not cost the
        # items their --json on stdout, nor the batch its code (a review).
        with contextlib.suppress(OSError):
            click.echo(text, err=True)

    def show(item: BatchItem) -> None:
        safe = _terminal_safe
        failed = item.message if item.message and item.status == "failed" else None
        say(
            f"[{item.row - 1}] {safe(str(item.evidence))}: {item.status} "
            f"(exit {'-' if item.exit_code is None else item.exit_code})"
            + (f": {safe(failed)}" if failed else "")
            + (f"\n      log {safe(str(item.log))} head: {item.head}" if item.head else "")
            + "".join(f"\n      note: {safe(note)}" for note in item.notes)
        )

    def note_now(item: BatchItem, text: str) -> None:
        say(f"[{item.row - 1}] note: {_terminal_safe(text)}")  # (its row says it too)

    # Note: while the batch runs, a burst of signals raises once: the first stops
    # the batch, the rest are dropped, as any signal is once the batch has ended
    # (each raised again, in an `except` or in the table's printing, lost the
    # table and --json: reviews). A scan puts its own handlers in place while
    # its log is open, and this one back after.
    heard: list[int] = []

    def once(signum: int, frame: object) -> None:
        if not heard:
            heard.append(signum)
            raise _Terminated if signum != signal.SIGINT else KeyboardInterrupt

    def deaf() -> None:
        heard.append(0)

    wanted = [s for s in (signal.SIGINT, *_TERMINATING) if s not in IGNORED_AT_START]
    previous = {s: signal.signal(s, once) for s in wanted}
    try:
        with _translate_errors(integrity_is_fatal=True):
            items = run_batch(manifest, template, on_item=show, on_note=note_now, on_stop=deaf)
        deaf()  # the batch has ended: its table and --json are said whatever comes now
        say(
            f"\n{'item':>4}  {'status':12} {'exit':>4} {'files':>9} {'notable':>7} "
            f"{'errors':>6}  evidence"
        )
        for item in items:
            c = item.counts
            # Note: an item with no counts (failed before its scan, or never run)
            # shows none, not the zeros of a clean item; its evidence is named
            # terminal-safe, as its own line names it (a review).
            files, notable, errors = (
                (c.get("files", 0), c.get("notable", 0), c.get("errors", 0)) if c else ("-",) * 3
            )
            say(
                f"{item.row - 1:>4}  {item.status:12} "
                f"{'-' if item.exit_code is None else item.exit_code:>4} {files:>9} "
                f"{notable:>7} {errors:>6}  {_terminal_safe(str(item.evidence))}"
            )
        if any(item.head for item in items):
            say(
                "  note each log's head in the case file: `matcher verify LOG --expect-head HEAD` "
                "then proves nothing was cut off"
            )
        unfinished = sum(item.status in ("interrupted", "pending") for item in items)
        if unfinished:
            # Note: scan says how to continue (--resume); a batch said nothing.
            say(
                f"  {unfinished} item(s) not finished: run the same batch command again to "
                "continue them (an interrupted item resumes its log; done items are not read "
                "again)"
            )
        if as_json:
            click.echo(json.dumps([i.as_dict() for i in items], indent=2))
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is once:
                signal.signal(sig, handler)
    sys.exit(worst_exit_code([i.exit_code for i in items]))


@cli.command(name="selftest")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout.")
def selftest_cmd(as_json: bool) -> None:
    """Run the known-answer self-test of this installation; exit 0 only if all pass.

    Digests on the FIPS 180 / RFC 1321 example messages, generated files
    across read-chunk boundaries through the real engine, every list parser
    on an embedded sample, and the log chain (write, verify, tamper, detect).

    \b
    Example:
      matcher selftest
    """
    from matcher.selftest import run_selftest

    result = run_selftest(fast=False)
    if as_json:
        click.echo(
            json.dumps(
                {"passed": result.passed, "checks": [dataclasses.asdict(c) for c in result.checks]}
            )
        )
    else:
        for check in result.checks:
            mark = "PASS" if check.passed else "FAIL"
            click.echo(
                f"{mark}  {check.area:7} {check.name}"
                + (f"  ({check.detail})" if check.detail else "")
            )
        total = len(result.checks)
        failed = sum(not c.passed for c in result.checks)
        click.echo(f"{total - failed} passed, {failed} failed")
    sys.exit(0 if result.passed else int(ExitCode.NOTABLE))


@cli.command(name="validate")
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new (or empty) folder for the validation record, corpus and scan.",
)
@click.option(
    "--seed",
    type=int,
    default=VALIDATION_SEED,
    show_default=True,
    help="Seed of the generated corpus; the same seed gives the same corpus.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Hashing workers (default: the cores this process may use).",
)
def validate_cmd(output: Path, seed: int, jobs: int | None) -> None:
    """Produce a validation record a lab can file; exit 0 only if every test passes.

    Generates a benign corpus from the seed (random bytes and text, awkward
    names, FIFOs, symlink loops, an unreadable file), runs the full self-test
    and a real scan of it, checks the scan against independent evidence
    (lstat enumeration, hashlib, coreutils *sum and hashdeep when installed,
    the log verifier, tampered copies, exit code, untouched timestamps), and
    writes validation.md and validation.json under FSR-G-201 headings
    (requirement, acceptance criteria, result) with the environment.

    \b
    Example:
      matcher validate --output validation-2026-11-29
    """
    with _translate_errors():
        try:
            from matcher.validate import run_validation

            result = run_validation(output, seed=seed, jobs=jobs)
        except KeyboardInterrupt:
            said = f"matcher: the validation was interrupted; what it had written in {output} "
            click.echo(_terminal_safe(said + "is removed: run the same command again."), err=True)
            raise
        except OSError as exc:
            raise MatcherError(f"Validation could not run: {exc}") from exc
    failed = [c for c in result.results if not c.passed]
    for case in result.results:
        click.echo(f"{case.status:18} {case.ident}  {case.title}")
    click.echo(f"Record: {result.report} and {result.record}")
    if result.passed:
        click.echo("Validation passed.")
    else:
        click.echo(f"Validation FAILED: {len(failed)} test(s) did not pass.", err=True)
    sys.exit(0 if result.passed else int(ExitCode.NOTABLE))


@cli.command(name="verify")
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 public key: every signature must verify with it.",
)
@click.option(
    "--expect-head",
    metavar="HEX",
    help="The chain head the scan printed (kept in the case file): proves no record "
    "was cut off the end. One log only.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per log on stdout.")
def verify_cmd(
    logs: tuple[Path, ...], public_key: Path | None, expect_head: str | None, as_json: bool
) -> None:
    """Check match logs' hash chains (and signatures) from the first line to the end.

    Exits 0 when every log is intact, 1 when one is tampered or incomplete
    (naming its first bad line), 2 when one cannot be read.

    A hash chain cannot by itself show that whole runs were cut off its end
    after an earlier end record; --expect-head with the head that `scan`
    printed (and the examiner noted) can.

    \b
    Example:
      matcher verify item1.jsonl
      matcher verify item1.jsonl --public-key examiner.pem.pub
      matcher verify item1.jsonl --expect-head 3f1c...e9 (all 64 hex digits)
    """
    if expect_head is not None and len(logs) != 1:
        raise click.UsageError("--expect-head applies to one log at a time.")
    if expect_head is not None:
        # Note: a head copied from a case file may be typed in capitals, or
        # carry the spaces around it: the same 64 digits.
        expect_head = expect_head.strip().lower()
        if not re.fullmatch("[0-9a-f]{64}", expect_head):
            raise click.BadParameter("must be 64 hex digits", param_hint="--expect-head")
    if public_key is not None:
        with _translate_errors():
            signing.load_verifier(public_key)  # a bad key is the key's fault, named once
    worst = 0
    for log in logs:
        try:
            report = auditlog.verify(log, public_key_path=public_key, expect_head=expect_head)
        except IntegrityError as exc:
            worst = max(worst, int(ExitCode.NOTABLE))
            _say_verify_failed(log, exc, as_json)
            continue
        except (OSError, MatcherError) as exc:
            worst = int(ExitCode.FATAL)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            click.echo(f"Error: cannot read log {log}: {reason}", err=True)
            if as_json:
                click.echo(json.dumps({"log": str(log), "intact": None, "error": reason}))
            continue
        # Note: the end record seals the inventory (reports and rematch read
        # it): one swapped or edited since verified OK, with no word of it.
        seal = check_seal(log, report.last_end)
        if seal.status == "differs":
            worst = max(worst, int(ExitCode.NOTABLE))
        if as_json:
            elsewhere = seal.sealed_elsewhere
            inventory = {"status": seal.status, "path": str(seal.path) if seal.path else None,
                         "sealed_sha256": seal.sealed, "sha256": seal.actual,
                         "sealed_elsewhere": str(elsewhere) if elsewhere else None}  # fmt: skip
            click.echo(
                json.dumps(
                    {
                        "log": str(log),
                        # Note: false for an inventory the log no longer seals, as
                        # the exit code says (it read true with exit 1).
                        "intact": seal.status != "differs",
                        # (as a failed log's JSON names them; `lines` is the same count)
                        "records": report.lines,
                        **_report_dict(report),
                        "inventory": inventory,
                    }  # fmt: skip
                )
            )
        else:
            if report.signatures_checked:
                signed = f", {report.signatures_checked} signature(s) verified"
            elif report.signed:
                # Note: without the key, anyone who rewrote the log could have
                # signed it again with a key of their own.
                keys = ", ".join(report.key_fingerprints) or "unnamed"
                signed = (
                    f", signed by key {keys}, signatures NOT checked (give --public-key, the "
                    "public key of that fingerprint, to check them)"
                )
            else:
                signed = ""
            if seal.status == "differs":
                click.echo(
                    f"FAILED: {log}: {report.lines} records, chain intact{signed}; head "
                    f"{report.head}; but its inventory {_terminal_safe(str(seal.problem()))}",
                    err=True,
                )
            else:
                click.echo(
                    f"OK: {log}: {report.lines} records, chain intact{signed}; head {report.head}"
                )
            if report.last_status == "interrupted":
                if isinstance(report.first_run, dict) and "rematch_of" in report.first_run:
                    click.echo(
                        "    its re-match was interrupted: it is not complete (a re-match has "
                        "no --resume: run it again with a new --log)"
                    )
                else:
                    click.echo(
                        "    its last run was interrupted: the scan is not complete "
                        "(continue it with `matcher scan ... --resume`)"
                    )
            if report.expected_head_line is not None:
                later = report.lines - report.expected_head_line
                click.echo(
                    f"    the expected head is line {report.expected_head_line}"
                    + (f"; {later} record(s) were appended after it" if later else " (the last)")
                )
            if report.first_time_back is not None:
                seq, when, latest = report.first_time_back
                click.echo(
                    f"    note: {report.times_back} record(s) carry a time earlier than a record "
                    f"before them (the first: record {seq}, {when}, after {latest}): the clock "
                    "of the host that wrote them went back (an NTP step, a resume on another "
                    "host); the chain holds"
                )
            _say_seal(seal)
    sys.exit(worst)


def _say_seal(seal: Any) -> None:
    """How the inventory the log sealed stands (verify's last lines)."""
    if seal.status == "matches":
        click.echo(f"    inventory {seal.path}: as sealed (SHA-256 {seal.actual})")
    elif seal.status not in ("unsealed", "differs"):
        click.echo(
            f"    inventory not checked: it {_terminal_safe(seal.problem())} (the log "
            "itself verified; `rematch` needs the inventory)"
        )


def _report_dict(report: Any) -> dict[str, object]:
    import dataclasses

    return {
        f.name: getattr(report, f.name)
        for f in dataclasses.fields(report)
        if f.metadata.get("json", True)
    }


@cli.command(name="keygen")
@click.argument("private_key", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("public_key", type=click.Path(dir_okay=False, path_type=Path), required=False)
def keygen_cmd(private_key: Path, public_key: Path | None) -> None:
    """Make an Ed25519 key pair for signing logs (private key mode 0600).

    The public key goes to PUBLIC_KEY, by default PRIVATE_KEY with .pub added.
    Exits 0; 2 when either file exists already (a key is never overwritten)
    or cannot be written.

    \b
    Example:
      matcher keygen examiner.pem
      matcher scan /ev --examiner "J. Doe" --case 42 --sign-key examiner.pem --log ev.jsonl
      matcher verify ev.jsonl --public-key examiner.pem.pub
    """
    if not str(private_key).strip() or not private_key.name:
        raise click.BadParameter("give the key file's name.", param_hint="'PRIVATE_KEY'")
    public_key = public_key or private_key.with_name(private_key.name + ".pub")
    with _translate_errors():
        fingerprint = signing.generate_keypair(private_key, public_key)
    click.echo(
        f"Private key: {private_key} (keep it secret)\nPublic key:  {public_key}\n"
        f"Fingerprint: {fingerprint}",
        err=True,
    )


def main() -> None:
    """The command line, as `matcher` and `python -m matcher` start it (via __main__.run)."""
    cli()


__all__ = ["cli", "main"]


# --- report and hash (reports and interoperability) -------------------------------------


@cli.command(name="report")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "format_name",
    required=True,
    type=_LazyChoice(_report_names),
    help="csv, json, dfxml, case (CASE/UCO JSON-LD) or html.",
)
@click.option(
    "-o",
    "--output",
    type=_NewFile(),
    help="Write here (atomically, mode 0600) instead of stdout; - is stdout.",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 public key: every signature in the log must verify with it.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace the output file if it exists (without it, an existing file is refused).",
)
def report_cmd(
    log: Path, format_name: str, output: Path | None, public_key: Path | None, force: bool
) -> None:
    """Write a report of a match log: csv, json, dfxml, case or html.

    Verifies the log first. A log that fails (tampered, truncated, no end
    record) still gets a report, which says so on its first line or in its
    header, and the command exits 1. Exit 0: log intact, report written;
    2: the log cannot be read, or changed while the report was written, or
    the output is refused (inside an evidence root, over the log, an
    existing file without --force) or cannot be written. The report shows
    the bytes verified (lines appended since are left out), and appears
    (file or stdout) only when complete.

    \b
    Example:
      matcher report item1.jsonl --format csv -o item1-matches.csv
      matcher report item1.jsonl --format case -o item1.jsonld
      matcher report item1.jsonl --format html -o item1.html
    """
    with _translate_errors():
        from matcher.reporting import write_report

        data = write_report(log, format_name, output, public_key, overwrite=force)
    v = data.verification
    from matcher.reports.output import is_stdout

    where = "stdout" if is_stdout(output) else output
    if not v.intact:
        click.echo(f"FAILED: {log}: {v.message}", err=True)
        click.echo(f"Report written to {where}, marked as from a log that failed.", err=True)
        sys.exit(int(ExitCode.NOTABLE))
    errors = f"{len(data.errors):,} error(s)"
    if format_name == "csv" and data.errors:
        errors += " (counted in its first lines; its rows are the matches)"
    click.echo(
        f"{format_name} report of {len(data.matches):,} match(es) and {errors} "
        f"written to {where}; log chain intact.",
        err=True,
    )
    if (note := v.signature_note()) is not None:
        click.echo(f"Note: {note}.", err=True)
    if data.status == "interrupted":
        click.echo("Note: the log's last run was interrupted: the scan is not complete.", err=True)


@cli.command(name="hash")
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
@click.option(
    "--algorithms",
    default="md5,sha256",
    show_default=True,
    help="Digests computed in the one read pass (hashdeep: md5,sha1,sha256); available: "
    f"{','.join(available_algorithms())}.",
)
@click.option(
    "--format",
    "format_name",
    type=_LazyChoice(_inventory_report_names),
    default="hashdeep",
    show_default=True,
    help="Inventory format.",
)
@click.option(
    "-o",
    "--output",
    type=_NewFile(),
    help="Write here (atomically, mode 0600) instead of stdout; - is stdout.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Hashing workers (default: the cores this process may use).",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Skip entries matching GLOB (relative path or name).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace the output file if it exists (without it, an existing file is refused).",
)
def hash_cmd(
    paths: tuple[str, ...],
    algorithms: str,
    format_name: str,
    output: Path | None,
    jobs: int | None,
    excludes: tuple[str, ...],
    force: bool,
) -> None:
    """Write an inventory of every file under PATHS: hashdeep, md5sum, sha256sum or dfxml.

    Recursive, without following symlinks; paths are relative when the
    arguments are. Same engine as scan. Skipped entries (symlinks, devices),
    unreadable files and names the format cannot carry (a line break in
    hashdeep) are reported on stderr and left out. A path given twice, or
    inside another path given, is walked once (noted on stderr). Exit 0:
    every entry is in the inventory, bar those --exclude left out as asked;
    4: some are missing (see stderr); 2: usage or fatal error.

    \b
    Example:
      cd /mnt/evidence/item1 && matcher hash . -o /cases/item1.hashdeep
      hashdeep -r -l -a -k /cases/item1.hashdeep .
      matcher hash docs --format sha256sum -o docs.sha256 && sha256sum -c docs.sha256
    """
    try:
        algos = parse_algorithms(algorithms)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--algorithms") from exc

    from matcher.evidence.roots import unusable_root
    from matcher.reports.output import is_stdout
    from matcher.reports.text import display_text

    for path in paths:
        if (why := unusable_root(path)) is not None:
            raise click.BadParameter(f"{_terminal_safe(repr(path))} {why}.", param_hint="PATHS")

    def problem(outcome: Any, reason: str) -> None:
        # Note: a byte that is not UTF-8 shows as \xFF, as in the reports; a
        # backslash (and the quote) of the name itself is escaped, so that
        # the name `a\xffb` never reads as one holding the byte 0xFF.
        name = outcome.path.decode("utf-8", "surrogateescape")
        name = display_text(name.replace("\\", "\\\\").replace("'", "\\'"))
        click.echo(f"'{name}': {reason}", err=True)

    with _translate_errors():
        from matcher.hashjob import write_inventory

        try:
            totals = write_inventory(
                paths,
                algos,
                format_name,
                output,
                jobs=jobs or 0,
                excludes=excludes,
                command=["matcher", *sys.argv[1:]],
                on_problem=problem,
                overwrite=force,
            )
        except KeyboardInterrupt:
            # Note: "Interrupted." alone; an inventory to stdout is written as it
            # goes, and cut there it still reads as whole (`> inventory.txt`).
            where = (
                "what it wrote to stdout is incomplete: do not use it"
                if is_stdout(output)
                else f"nothing was written to {output}"
            )
            said = f"matcher: the inventory was interrupted; {where}. Run the command again."
            click.echo(_terminal_safe(said), err=True)
            raise
    left_out = [
        (totals.skipped - totals.excluded, "skipped (symlinks, FIFOs, devices, sockets)"),
        (totals.errors, "unreadable"),
        (totals.not_written, "with a name the format cannot carry"),
    ]
    missing = "; ".join(f"{n:,} {why}" for n, why in left_out if n)
    for note in totals.notes:
        click.echo(f"note: {_terminal_safe(note)}", err=True)
    files, nbytes = totals.written
    click.echo(
        f"{files:,} files ({nbytes:,} bytes) written to "
        f"{'stdout' if is_stdout(output) else output}; {totals.excluded:,} excluded "
        "(--exclude); "
        + (f"left out, each named above: {missing}." if missing else "nothing else left out."),
        err=True,
    )
    sys.exit(0 if totals.complete else int(ExitCode.INCOMPLETE))
