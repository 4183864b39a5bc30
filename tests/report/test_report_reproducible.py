"""The same run gives a byte-identical report/ folder (figures, maps, index.html)."""

import hashlib


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_builds_are_byte_identical(tmp_path, make_run, monkeypatch):
    import shutil

    from vlmbrain.report import build_report

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    run = make_run(tmp_path)
    build_report(run, figures="fast")
    first = _digest(run / "report")
    shutil.rmtree(run / "report")
    build_report(run, figures="fast")
    second = _digest(run / "report")
    assert len(first) > 5 and any(k.endswith(".svg") for k in first) and any(k.endswith(".png") for k in first)
    assert first == second
    assert "2026-01-01 00:00 UTC" in (run / "report" / "index.html").read_text()
