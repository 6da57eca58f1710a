"""The book's house rules, checked on the committed files: install cells, outputs, the TOC."""

import json
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _code_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_the_package_from_the_configured_repository(path):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    first = "".join(_code_cells(path)[0]["source"])
    assert 'importlib.util.find_spec("tutorial_pkg") is None' in first
    assert f"git+{url}" in first, f"{path.name}: the install cell must use {url} from _config.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_outputs_and_no_errors(path):
    cells = _code_cells(path)
    assert all(c.get("execution_count") is not None for c in cells), f"{path.name} has unexecuted cells"
    for c in cells:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name} stores an error output"
            text = "".join(out.get("text", ""))
            assert not re.search(r"/(work|tmp|root|home)/[\w.-]+/", text), f"{path.name} stores an absolute path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_the_table_of_contents(path):
    toc = (ROOT / "_toc.yml").read_text()
    assert str(path.relative_to(ROOT).with_suffix("")) in toc


ALL_NOTEBOOKS = NOTEBOOKS + sorted((ROOT / "instructor").rglob("*.ipynb"))
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_hold_no_memory_address(path):
    """An address such as <torch._C.Generator at 0x7f...> differs from run to run and machine to machine."""
    for c in _code_cells(path):
        for out in c.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            match = ADDRESS.search(text)
            assert match is None, f"{path.name} stores the memory address {match.group()} in an output"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_checked_outputs_print_no_negative_zero(path):
    """-0.0 and 0.0 are the same number, printed with either sign depending on rounding on the machine."""
    for c in _code_cells(path):
        if "NBVAL_CHECK_OUTPUT" not in "".join(c["source"]):
            continue
        for out in c.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            assert not re.search(r"(?<![\w.])-0(\.0*)?(?![\d.]*[1-9])(?=[\s,\]\)]|$)", text), \
                f"{path.name} prints a negative zero in a checked cell: {text[:200]!r}"


def test_the_readme_example_runs():
    """The README's example (a stack of two wrappers) is code a newcomer copies: it must run as printed."""
    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["x"].shape == (1000, 2)
