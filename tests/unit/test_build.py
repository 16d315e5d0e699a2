"""Parsing builder output into steps, and the report built from it (recorded real output, no daemon)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import buildlog, builds
from labkit.core.errors import LabkitError

FIXTURES = Path(__file__).with_name("fixtures")


def timed_lines(name: str) -> list[tuple[float, str]]:
    rows = []
    for line in (FIXTURES / name).read_text().splitlines():
        t, _, text = line.partition("\t")
        rows.append((float(t), text))
    return rows


def report(steps, duration=3.0) -> buildlog.BuildReport:
    return buildlog.BuildReport("lab-x-abcdef-app", "BuildKit", "sha256:" + "0" * 64, 1000, 2, duration, steps, "")


def test_plain_output_gives_stages_cache_hits_and_parallel_timing():
    steps, context = buildlog.parse_plain(timed_lines("buildkit-parallel.tsv"))
    r = report(steps)
    a, b = r.step("echo a > /a"), r.step("echo b > /b")
    assert (a.stage, a.index, b.stage, b.index) == ("a", "2/2", "b", "2/2")
    assert a.duration == pytest.approx(1.1, abs=0.35) and b.duration == pytest.approx(1.1, abs=0.35)
    assert r.overlap("echo a >", "echo b >") > 0.8  # the two stages ran at the same time
    final = r.step("echo building")
    assert final.output == ["building"] and final.start >= max(a.end, b.end) - 0.2
    assert r.step("FROM").status == "base" and context == ""  # no COPY: no build context was loaded
    assert [s.status for s in r.ran] == ["ran"] * 5
    assert {s.stage for s in steps} == {"internal", "a", "b", "stage-2"}


def test_same_build_on_a_brand_new_engine_and_on_a_warm_one():
    # Recorded with Docker 20.10's BuildKit: first on a private engine that had never built
    # anything, then the same build again (every step a cache hit).
    fresh, fresh_context = buildlog.parse_plain(timed_lines("buildkit-fresh-engine.tsv"))
    warm, warm_context = buildlog.parse_plain(timed_lines("buildkit-warm-engine.tsv"))
    assert (fresh_context, warm_context) == ("40B", "26B")  # the warm engine had the files: less to send
    cold_report, warm_report = report(fresh), report(warm)
    assert sorted(s.index for s in cold_report.ran) == ["2/2", "2/5", "3/5", "4/5", "5/5"] and not cold_report.cached
    assert not warm_report.ran and len(warm_report.cached) == 5
    assert cold_report.step("cat a.txt").output == ["hello", "x"]
    assert [(s.stage, s.index, s.instruction) for s in fresh] == [(s.stage, s.index, s.instruction) for s in warm]


@pytest.mark.parametrize("line, size", [
    ("#6 transferring context:", ""),  # a brand-new engine, before any byte arrived (crashed the parser once)
    ("#6 transferring context: done", ""),  # a cancelled build on a new engine
    ("#6 transferring context: 40B done", "40B"),
    ("#6 transferring context: 30.01MB 0.2s done", "30.01MB"),
    ("#6 transferring context: 2.05kB 0.0s", "2.05kB"),
])
def test_every_context_line_shape(line, size):
    lines = [(0.0, "#6 [internal] load build context"), (0.1, line), (0.2, "#6 DONE 0.1s")]
    steps, context = buildlog.parse_plain(lines)
    assert context == size and steps[0].instruction == "load build context"


def test_failing_step_is_named_with_its_last_output_lines():
    steps, _ = buildlog.parse_plain(timed_lines("buildkit-error.tsv"))
    failed = [s for s in steps if s.error]
    assert len(failed) == 1 and failed[0].index == "3/3"
    log = "\n".join(line for _, line in timed_lines("buildkit-error.tsv"))
    err = buildlog.BuildFailed(["docker", "build"], 1, log, failed[0])
    text = str(err)
    assert "[stage-0 3/3] RUN echo \"about to fail\" && ls /nope" in text
    assert "ls: /nope: No such file or directory" in text and text.splitlines()[-1].startswith("Hint: ")


def test_unparsable_dockerfile_says_so():
    log = "failed to solve with frontend dockerfile.v0: failed to create LLB definition: " \
          "dockerfile parse error line 2: unknown instruction: RUNN"
    err = buildlog.BuildFailed(["docker", "build"], 1, log, None)
    assert "before any step ran" in err.message and "unknown instruction: RUNN" in err.details


def test_classic_stream_marks_cache_hits():
    chunks = json.loads((FIXTURES / "classic-stream.json").read_text())
    lines = [(i * 0.1, line) for i, c in enumerate(chunks) for line in c.get("stream", "").splitlines()]
    steps = buildlog.parse_classic(lines)
    assert len(steps) == 10  # two builds of five steps
    first, second = steps[:5], steps[5:]
    assert [s.stage for s in first] == ["stage-0", "stage-0", "stage-1", "stage-1", "stage-1"]
    assert not first[1].cached and first[4].output == ["built"]
    assert all(s.cached for s in second if not s.instruction.startswith("FROM"))


def test_report_renders_table_and_timeline(monkeypatch):
    steps, _ = buildlog.parse_plain(timed_lines("buildkit-parallel.tsv"))
    r = report(steps)
    monkeypatch.setenv("LABKIT_STABLE", "1")
    text = r.text()
    assert "5 ran, 0 cached" in text and "seconds since" not in text and "timeline" not in text.lower()
    monkeypatch.delenv("LABKIT_STABLE")
    chart = r.timeline()
    assert len(chart.bars) == len([s for s in steps if s.stage != "internal"])
    assert chart.png()[:4] == b"\x89PNG"
    with pytest.raises(LabkitError, match="No step"):
        r.step("not in this build")


def test_context_files_stay_inside_and_programs_stay_runnable(tmp_path):
    ctx, df = builds.prepare_context(tmp_path, "FROM scratch\n", None, {"bin/tool": b"\x7fELF...", "a.txt": "x"})
    assert (ctx / "bin/tool").stat().st_mode & 0o111 and not (ctx / "a.txt").stat().st_mode & 0o111
    assert df is not None and df.parent == tmp_path and not (ctx / "Dockerfile").exists()
    with pytest.raises(LabkitError, match="outside the build context"):
        builds.prepare_context(tmp_path, "FROM scratch\n", None, {"../escape": "x"})
    with pytest.raises(LabkitError, match="either a context directory or files"):
        builds.prepare_context(tmp_path, None, tmp_path, {"a": "b"})


def test_secret_values_are_written_outside_the_context(tmp_path):
    args = builds._write_secrets(tmp_path, {"token": "s3cr3t"}, {})
    src = Path(args[1].split("src=")[1])
    assert src.read_text() == "s3cr3t" and oct(src.stat().st_mode)[-3:] == "600"
    with pytest.raises(LabkitError, match="does not exist"):
        builds._write_secrets(tmp_path, {}, {"token": tmp_path / "missing"})
