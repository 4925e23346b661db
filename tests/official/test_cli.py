"""`uio2-robot official import|check` through the console entry point."""

from __future__ import annotations

from tests.official.conftest import DATA
from uio2_robot.cli import main


def test_official_import_then_check_the_imported_checkpoint(release_dir, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert main(["official", "import", f"src={release_dir}", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "dropped: image_token_embedder.weight" in printed
    fixture = DATA / "fixture.safetensors"
    assert main(["official", "check", f"src={out}", f"fixture={fixture}"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_official_usage_errors_exit_2(tmp_path, capsys):
    assert main(["official"]) == 2
    assert main(["official", "import", f"src={tmp_path}", f"out={tmp_path / 'o'}"]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["official", "check", f"src={tmp_path}"]) == 2
    assert "fixture=FILE" in capsys.readouterr().err
