"""The dev controller image is rebuilt exactly when what goes into it changes."""

from __future__ import annotations

from pathlib import Path

from leoflow.install import controller_image


def fake_checkout(root: Path) -> Path:
    (root / "leoflow" / "cli").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'leoflow'\n")
    (root / "leoflow" / "__init__.py").write_text("")
    (root / "leoflow" / "cli" / "main.py").write_text("print('hi')\n")
    return root


def test_source_change_changes_the_image_key(tmp_path: Path) -> None:
    repo = fake_checkout(tmp_path)
    before = controller_image.source_digest(repo)
    (repo / "leoflow" / "cli" / "main.py").write_text("print('changed')\n")
    assert controller_image.source_digest(repo) != before


def test_dependency_change_changes_the_image_key(tmp_path: Path) -> None:
    repo = fake_checkout(tmp_path)
    before = controller_image.source_digest(repo)
    (repo / "pyproject.toml").write_text("[project]\nname = 'leoflow'\ndependencies = ['x']\n")
    assert controller_image.source_digest(repo) != before


def test_bytecode_and_stray_files_do_not_change_the_image_key(tmp_path: Path) -> None:
    repo = fake_checkout(tmp_path)
    before = controller_image.source_digest(repo)
    (repo / "leoflow" / "cli" / "__pycache__").mkdir()
    (repo / "leoflow" / "cli" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (repo / "leoflow" / "notes.txt").write_text("scratch")
    assert controller_image.source_digest(repo) == before


def test_moving_a_module_changes_the_image_key(tmp_path: Path) -> None:
    repo = fake_checkout(tmp_path)
    before = controller_image.source_digest(repo)
    (repo / "leoflow" / "cli" / "main.py").rename(repo / "leoflow" / "main.py")
    assert controller_image.source_digest(repo) != before


def test_debian_root_is_keyed_by_suite_mirror_and_package_set() -> None:
    default = controller_image.RootfsInputs()
    assert default.key() == controller_image.RootfsInputs(packages=("ca-certificates", "python3")).key()
    assert default.key() != controller_image.RootfsInputs(suite="trixie").key()
    assert default.key() != controller_image.RootfsInputs(packages=("python3",)).key()
    assert default.key() != controller_image.RootfsInputs(mirror="http://mirror.example/debian").key()


def test_image_runs_the_leoflow_command_from_its_site_packages(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "python3").write_bytes(b"\x7fELF")
    spec = controller_image.controller_spec(tmp_path)
    assert tuple(spec.entrypoint) == ("/usr/bin/python3", "-m", "leoflow")
    assert f"PYTHONPATH={controller_image.SITE_PACKAGES}" in spec.env
    assert "usr/bin/python3" in spec.files
