"""The package itself: what it exports, its typing files, its build."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import secrets_manager
from secrets_manager import utils


def test_exports() -> None:
    from secrets_manager import KeyConfiguration, SecretsConfig, SecretsManager, SecretsManagerError

    assert issubclass(SecretsManagerError, Exception)
    assert {"SecretsConfig", "SecretsManager", "SecretsManagerError", "KeyConfiguration"} <= set(
        secrets_manager.__all__
    )
    assert SecretsManagerError.__module__ == "secrets_manager"
    assert all(c.__module__.startswith("secrets_manager") for c in (KeyConfiguration, SecretsConfig, SecretsManager))
    assert utils.ENV_CHECKSUM_KEY == "ENCRYPTION_ENV_CHECKSUM"


def test_typing_files_ship_with_the_package() -> None:
    package = Path(secrets_manager.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_native.pyi").is_file()


def test_the_native_module_is_the_stable_abi_build() -> None:
    native = Path(secrets_manager._native.__file__).name
    assert native.startswith("_native") and ".abi3." in native


def test_version_is_the_distributions() -> None:
    assert secrets_manager.__version__ == importlib.metadata.version("secrets-manager")


def test_the_module_docstring_example() -> None:
    import doctest

    assert doctest.testmod(secrets_manager, raise_on_error=True).attempted > 0


def python_blocks(markdown: Path, heading: str = "") -> list:
    text = markdown.read_text(encoding="utf-8")
    if heading:
        text = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]


def test_the_readme_examples_run(tmp_path: Path, monkeypatch) -> None:
    """The examples of the workspace README's "From Python" section and the
    package README's quick start run as written (in a scratch directory, as
    they write files)."""
    root = Path(__file__).resolve().parents[2]
    blocks = python_blocks(root / "README.md", "## From Python") + python_blocks(root / "python" / "README.md")[:1]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README", "exec"), {})
    assert (tmp_path / ".env.secrets").is_file()
