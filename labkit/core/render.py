"""The one rendering mixin: every result object shows itself as text and as escaped HTML.

Charts use matplotlib, rendered to PNG here (no JavaScript, no network), so they show in
JupyterLab, in `jupyter nbconvert` output and on a code host's notebook viewer alike.
"""
from __future__ import annotations

import base64
import html
import io
import os
import re
import shlex
import tempfile
import textwrap
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

STABLE_ENV = "LABKIT_STABLE"

_STATUS_COLOURS = {
    "ok": "#1a7f37", "pass": "#1a7f37", "passed": "#1a7f37", "yes": "#1a7f37", "done": "#1a7f37",
    "present": "#1a7f37", "cached": "#1a7f37",
    "missing": "#cf222e", "fail": "#cf222e", "failed": "#cf222e", "no": "#cf222e", "error": "#cf222e",
    "optional": "#9a6700", "skipped": "#9a6700", "warning": "#9a6700", "stale": "#9a6700",
    "not tried": "#57606a", "absent": "#57606a",
}
_CALLOUT_COLOURS = {"info": "#0969da", "success": "#1a7f37", "warning": "#9a6700", "error": "#cf222e"}
_CALLOUT_ICONS = {"info": "i", "success": "✔", "warning": "!", "error": "✘"}


def stable() -> bool:
    """True in CI's stable-output mode: no ids, digests, timings, ports or progress bars."""
    return os.environ.get(STABLE_ENV, "") not in ("", "0", "false", "no")


# In stable mode a value that changes from run to run is kept (a reader of the committed notebook
# sees the reference run's real figures) between two invisible WORD JOINERs; the output comparison
# (labkit/data/sanitize.cfg) masks what is between them.
MARK = "\u2060"


def volatile(value: Any, placeholder: str = "…") -> str:
    """A value that changes from run to run (timing, size, id): marked in stable mode. A value
    that means nothing to a reader (an engine address, a session id) gets its `placeholder`."""
    if not stable():
        return str(value)
    if placeholder != "…":
        return placeholder
    return f"{MARK}{str(value).replace(MARK, '')}{MARK}"


_HEX_ID = re.compile(f"({MARK}[^{MARK}]*{MARK})|((sha256:)?[0-9a-f]{{12,64}})")


def masked(text: str) -> str:
    """The text with every marked value as "…": what stays the same between runs (a sort key)."""
    return re.sub(f"{MARK}[^{MARK}]*{MARK}", "…", text)


def hide_ids(text: str) -> str:
    """Mark content ids and digests inside a text in stable mode (see volatile)."""
    if not stable():
        return text
    return _HEX_ID.sub(lambda m: m.group(1) or f"{MARK}{m.group(2)}{MARK}", text)


_SESSION_PREFIX = re.compile(r"^lab-[a-z0-9-]+?-[0-9a-f]{6}-")


def short_name(name: str) -> str:
    """A session-derived name (lab-<topic>-<id>-web) as the learner wrote it (web)."""
    return _SESSION_PREFIX.sub("", name)


def command_line(args: Sequence[Any]) -> str:
    """The shell command line of an argv, quoted so that it can be pasted into a terminal."""
    return shlex.join(str(a) for a in args)


_SESSION_NAME = re.compile(r"\blab-[a-z0-9-]+?-[0-9a-f]{6}(?=-)")
_LOOPBACK_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):\d+")


def stable_command(text: str) -> str:
    """A command line as shown: in stable mode, session names become lab-<session>-SUFFIX, temporary
    paths /tmp/…/FILE, loopback ports 127.0.0.1:<port> and digests "…", so outputs match between runs."""
    if not stable():
        return text
    text = _SESSION_NAME.sub("lab-<session>", text)
    # the engine's socket where this run found it (a private CI engine, a rootless one): shown where
    # a default install has it
    engine = os.environ.get("LABKIT_DOCKER_HOST") or os.environ.get("DOCKER_HOST") or ""
    if engine.startswith("unix://") and engine != "unix:///var/run/docker.sock":
        text = text.replace(engine[len("unix://"):], "/var/run/docker.sock")
    # a session's endpoint socket is the engine's; its labels (for cleanup) nobody types at work
    text = re.sub(r"(?<![\w.-])/[^\s:,]*/[a-z0-9-]+-[0-9a-f]{6}\.sock\b", "/var/run/docker.sock", text)
    text = re.sub(r" --label labkit\.[a-z]+=\S+| -e 'LABKIT_LABELS=[^']*'", "", text)
    text = re.sub(re.escape(tempfile.gettempdir().rstrip("/")) + r"/[^/\s'\"=,:]+", "/tmp/…", text)
    text = _LOOPBACK_PORT.sub(r"\1:<port>", text)
    # per run or per host: a CNAB revision, a session's port, the engine address, devices, pids (not 1)
    text = re.sub(r"\b(CNAB_REVISION=|PORT=)(\w+)", rf"\1{MARK}\2{MARK}", text)
    text = re.sub(r"DOCKER_HOST=\S+ ", "", text)
    text = re.sub(r"--device \S+( --device \S+)*", "--device …", text)
    text = re.sub(r"(nsenter -t |/proc/)\d{2,}", r"\1<pid>", text)
    return hide_ids(text)


def seconds(value: float) -> str:
    return volatile(f"{value:.2f} s")


def human_bytes(n: float | int | None) -> str:
    if n is None:
        return "?"
    units = ["B", "kB", "MB", "GB", "TB"]
    size = float(n)
    for unit in units:
        if abs(size) < 1000 or unit == units[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class Block:
    """Something that has a plain-text and an HTML form."""

    def text(self) -> str:
        raise NotImplementedError

    def html(self) -> str:
        raise NotImplementedError

    def bundle(self) -> dict[str, Any]:
        return {"text/plain": self.text(), "text/html": self.html()}


COMMANDS: list[str] = []  # every equivalent command line made in this process, in order (lab.commands())


class Renderable:
    """Mixin: implement `_render()` returning a Block; Jupyter and print() then use it.
    An object standing for a CLI command has an `equivalent` attribute (its command line): it is
    shown under the result as an "equivalent: ..." line, and noted in COMMANDS when set, so a
    result nobody displays still counts for the lab's list of commands."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "equivalent" and value and isinstance(value, str):
            COMMANDS.append(value)
        object.__setattr__(self, name, value)

    def _render(self) -> Block:
        raise NotImplementedError

    def _shown(self) -> Block:
        block = self._render()
        command = getattr(self, "equivalent", "")
        return Stack([block, Equivalent(command)]) if command and isinstance(command, str) else block

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The MIME bundle Jupyter shows (text and HTML, a PNG for charts), filtered as asked.
        Rendering reads only the object's own state: showing a result twice does no I/O."""
        bundle = self._shown().bundle()
        return {k: v for k, v in bundle.items() if (not include or k in include) and not (exclude and k in exclude)}

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self._shown().text())

    def text(self) -> str:
        return self._shown().text()

    def html(self) -> str:
        return self._shown().html()


@dataclass
class Table(Block, Renderable):
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    title: str = ""
    status_column: str | None = None

    def _render(self) -> Block:
        return self

    def _cells(self) -> list[list[str]]:
        return [["" if c is None else str(c) for c in row] for row in self.rows]

    def text(self) -> str:
        cells = self._cells()
        def shown(text: str) -> int:  # the invisible marks of volatile values take no column
            return len(text) - text.count(MARK)

        widths = [shown(c) for c in self.columns]
        for row in cells:
            for i, c in enumerate(row):
                widths[i] = max(widths[i], max((shown(line) for line in c.splitlines()), default=0))

        def line(values: Sequence[str]) -> str:
            return "  ".join(v + " " * (w - shown(v)) for v, w in zip(values, widths)).rstrip()
        lines = [self.title] if self.title else []
        lines.append(line(self.columns))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(line([c.replace("\n", " ") for c in row]) for row in cells)
        return "\n".join(lines)

    def html(self) -> str:
        status_idx = list(self.columns).index(self.status_column) if self.status_column else -1
        out = ['<table class="labkit-table" style="border-collapse:collapse">']
        if self.title:
            out.append(f'<caption style="text-align:left;font-weight:bold">{html.escape(self.title)}</caption>')
        out.append("<thead><tr>" + "".join(
            f'<th style="text-align:left;padding:2px 8px">{html.escape(c)}</th>' for c in self.columns) + "</tr></thead><tbody>")
        for row in self._cells():
            tds = []
            for i, c in enumerate(row):
                style = "text-align:left;padding:2px 8px"
                if i == status_idx and c.lower() in _STATUS_COLOURS:
                    style += f";color:{_STATUS_COLOURS[c.lower()]};font-weight:bold"
                tds.append(f'<td style="{style}">{html.escape(c).replace(chr(10), "<br>")}</td>')
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</tbody></table>")
        return "".join(out)


@dataclass
class Callout(Block, Renderable):
    kind: str
    title: str
    message: str
    details: str = ""
    hint: str = ""

    def _render(self) -> Block:
        return self

    def text(self) -> str:
        lines = [f"[{self.kind.upper()}] {self.title}: {self.message}"]
        if self.details:
            lines.append(self.details)
        if self.hint:
            lines.append(f"Hint: {self.hint}")
        return "\n".join(lines)

    def html(self) -> str:
        colour = _CALLOUT_COLOURS.get(self.kind, "#57606a")
        icon = _CALLOUT_ICONS.get(self.kind, "")
        parts = [f'<div class="labkit-callout labkit-{html.escape(self.kind)}" '
                 f'style="border-left:4px solid {colour};padding:4px 10px;margin:4px 0">',
                 f'<strong style="color:{colour}">{icon} {html.escape(self.title)}</strong> '
                 f'{html.escape(self.message)}']
        if self.details:
            parts.append(f'<pre style="margin:4px 0;white-space:pre-wrap">{html.escape(self.details)}</pre>')
        if self.hint:
            parts.append(f'<div><em>Hint:</em> {html.escape(self.hint)}</div>')
        parts.append("</div>")
        return "".join(parts)


def callout(kind: str, title: str, message: str, details: str = "", hint: str = "") -> Callout:
    return Callout(kind, title, message, details, hint)


@dataclass
class Stack(Block, Renderable):
    """Several blocks shown one after another."""

    blocks: list[Block] = field(default_factory=list)

    def _render(self) -> Block:
        return self

    def text(self) -> str:
        return "\n\n".join(b.text() for b in self.blocks)

    def html(self) -> str:
        return "".join(b.html() for b in self.blocks)


@dataclass
class Equivalent(Block):
    """The command line a result stands for, as one muted line under it."""

    command: str

    def text(self) -> str:
        return f"equivalent: {stable_command(self.command)}"

    def html(self) -> str:
        return (f'<div class="labkit-equivalent" style="color:#57606a;margin:2px 0">equivalent: '
                f'<code>{html.escape(stable_command(self.command))}</code></div>')


@dataclass
class Commands(Block, Renderable):
    """The command lines a lab's labkit calls stood for, in order, each once."""

    commands: list[str]
    title: str = "The commands behind this lab"

    def _render(self) -> Block:
        return self

    def _unique(self) -> list[str]:
        return list(dict.fromkeys(stable_command(c) for c in self.commands))

    def text(self) -> str:
        return "\n".join([self.title, *(f"equivalent: {c}" for c in self._unique())])

    def html(self) -> str:
        items = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in self._unique())
        return f"<div><strong>{html.escape(self.title)}</strong><ol>{items}</ol></div>"


@dataclass
class Chart(Block, Renderable):
    """A horizontal bar chart (optionally stacked/offset, which makes it a timeline).

    bars: (label, value) or (label, start, end) tuples. The text form is an ASCII chart, so
    the chart reads in a terminal and in CI logs too.
    """

    title: str
    bars: Sequence[tuple]
    unit: str = ""
    colours: Sequence[str] | None = None
    legend: dict[str, str] | None = None
    log: bool = False  # log scale, for sizes that span orders of magnitude
    xmax: float | None = None  # the end of the x axis: charts meant to be compared share it

    def _render(self) -> Block:
        return self

    def _spans(self) -> list[tuple[str, float, float]]:
        spans = []
        for bar in self.bars:
            if len(bar) == 2:
                spans.append((str(bar[0]), 0.0, float(bar[1])))
            else:
                spans.append((str(bar[0]), float(bar[1]), float(bar[2])))
        return spans

    def text(self, width: int = 40) -> str:
        spans = self._spans()
        top = self.xmax or max((e for _, _, e in spans), default=0) or 1
        lw = max((len(lbl) for lbl, _, _ in spans), default=0)
        lines = [self.title]
        for lbl, s, e in spans:
            a, b = int(round(s / top * width)), max(int(round(e / top * width)), int(round(s / top * width)) + 1)
            value = "" if stable() else f" {e - s:.3g}{(' ' + self.unit) if self.unit else ''}"
            lines.append(f"{lbl:<{lw}} |{' ' * a}{'#' * (b - a)}{value}")
        return "\n".join(lines)

    def png(self) -> bytes:
        # Figure without pyplot: no global state, no GUI backend, works in any kernel.
        from matplotlib.figure import Figure

        spans = self._spans()
        fig = Figure(figsize=(7, 0.45 * len(spans) + 1.2), dpi=90)
        ax = fig.subplots()
        labels = [lbl for lbl, _, _ in spans]
        ys = list(range(len(spans)))[::-1]
        colours = list(self.colours) if self.colours else ["#0969da"] * len(spans)
        ax.barh(ys, [e - s for _, s, e in spans], left=[s for _, s, _ in spans], color=colours)
        ax.set_yticks(ys, labels)
        # over the whole figure, from its left edge, wrapped: long labels squeeze the axes, never the title
        fig.suptitle("\n".join(textwrap.wrap(self.title, 90)), x=0.01, ha="left", fontsize="medium")
        if self.log:
            ax.set_xscale("log")
        if self.xmax:
            ax.set_xlim(0, self.xmax)
        if self.unit:
            ax.set_xlabel(self.unit + (" (log scale)" if self.log else ""))
        if self.legend:
            from matplotlib.patches import Patch
            ax.legend(handles=[Patch(color=c, label=k) for k, c in self.legend.items()], loc="lower right")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def html(self) -> str:
        data = base64.b64encode(self.png()).decode()
        return f'<img alt="{html.escape(self.title)}" src="data:image/png;base64,{data}"/>'

    def bundle(self) -> dict[str, Any]:
        return {"text/plain": self.text(), "image/png": base64.b64encode(self.png()).decode()}


def same_axis(charts: Sequence[Chart]) -> Stack:
    """Charts one above the other on one x axis, so that their lengths compare."""
    top = max((e for c in charts for _, _, e in c._spans()), default=0) or None
    for chart in charts:
        chart.xmax = top
    return Stack(list(charts))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "",
          status_column: str | None = None) -> Table:
    return Table(list(columns), [list(r) for r in rows], title, status_column)
