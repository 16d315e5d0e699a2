from __future__ import annotations

from labkit.core.render import Chart, Table, callout, human_bytes, seconds, table, volatile
from labkit.core.errors import CommandFailed, ImageMissing, LabkitError


def test_table_text_and_escaped_html():
    t = table(["name", "status"], [("<script>x</script>", "ok"), ("b", "missing")], title="T", status_column="status")
    bundle = t._repr_mimebundle_()
    assert "<script>x</script>" in bundle["text/plain"]
    assert "<script>" not in bundle["text/html"]
    assert "&lt;script&gt;" in bundle["text/html"]
    assert "#1a7f37" in bundle["text/html"] and "#cf222e" in bundle["text/html"]
    lines = bundle["text/plain"].splitlines()
    assert lines[0] == "T" and lines[1].split() == ["name", "status"]


def test_callout_has_hint_in_both_forms():
    c = callout("error", "Oops", "it broke", details="line 1", hint="do this")
    assert c.text().endswith("Hint: do this")
    assert "do this" in c.html() and "it broke" in c.html()


def test_stable_mode_marks_volatile_values_and_the_comparison_masks_them(monkeypatch):
    from labkit.core import render
    from labkit.verify import text_of
    monkeypatch.setenv("LABKIT_STABLE", "1")
    assert volatile("abc123") == render.MARK + "abc123" + render.MARK  # the reader sees the real value
    assert volatile("unix:///x.sock", "found") == "found"  # meaningless elsewhere: a placeholder
    assert seconds(1.234) == render.MARK + "1.23 s" + render.MARK
    assert volatile(volatile(3)) == volatile(3)
    assert render.hide_ids("id " + volatile("sha256:" + "a" * 64)) == "id " + volatile("sha256:" + "a" * 64)

    def shown(*rows):
        table = render.table(["image", "build time", "digest"], rows)
        assert all(len(line.replace(render.MARK, "")) == len(line.replace(render.MARK, "").rstrip())
                   for line in table.text().splitlines())
        return text_of({"outputs": [{"output_type": "display_data", "data": {"text/plain": table.text()}}]})
    one = shown(("app", seconds(2.3), render.hide_ids("sha256:" + "a" * 64)), ("db", seconds(12.25), "-"))
    two = shown(("app", seconds(0.4), render.hide_ids("sha256:" + "b" * 64)), ("db", seconds(1.5), "-"))
    assert one == two and "…" in one
    assert one != shown(("app", seconds(0.4), "-"), ("web", seconds(1.5), "-"))  # a real change still shows
    monkeypatch.setenv("LABKIT_STABLE", "0")
    assert volatile("abc123") == "abc123"
    assert seconds(1.234) == "1.23 s"


def test_human_bytes():
    assert human_bytes(999) == "999 B"
    assert human_bytes(2_000_000) == "2.0 MB"
    assert human_bytes(None) == "?"


def test_chart_has_png_and_ascii():
    chart = Chart("sizes", [("a", 3), ("b", 1, 4)], unit="s")
    bundle = chart._repr_mimebundle_()
    assert bundle["image/png"].startswith("iVBOR")  # base64 of the PNG magic
    text = bundle["text/plain"].splitlines()
    assert text[0] == "sizes" and "#" in text[1]


def test_errors_end_with_hint_and_render_as_callout():
    for err in (LabkitError("x"), ImageMissing("no image"), CommandFailed(["false"], 1, "", "boom")):
        assert str(err).splitlines()[-1].startswith("Hint: ")
        assert "labkit-callout" in err._repr_mimebundle_()["text/html"]
    failed = CommandFailed(["sh", "-c", "exit 3"], 3, "out", "err line")
    assert failed.exit_code == 3 and failed.stderr == "err line" and "err line" in str(failed)


def test_table_of_200_rows_is_plain_python():
    t = Table(["a", "b", "c"], [(i, f"row {i}", "ok") for i in range(200)])
    assert t.html().count("<tr>") == 201


def test_charts_meant_to_be_compared_share_their_axis():
    from labkit.core.render import Chart, same_axis
    short = Chart("classic", [("a", 0, 2), ("b", 2, 4)], unit="s")
    long = Chart("BuildKit", [("a", 0, 1), ("b", 0, 8)], unit="s")
    same_axis([short, long])
    assert short.xmax == long.xmax == 8
    assert short.text().splitlines()[2].count("#") == 10  # 2 s of 8 s in 40 columns, not 2 of 4
    assert short.png()[:4] == b"\x89PNG"
