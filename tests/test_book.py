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


# --- Numbers in the prose are printed by the notebook ---------------------------------------------------------
#
# A decimal number in a markdown cell's prose must occur, as the same literal token, in the text of some output or
# the source of some code cell of the same notebook: the prose carries no number that no cell computes or sets.
# Left out of the prose before the search: math ($...$, $$...$$, \(...\), \[...\], ```{math} blocks), inline code
# and roles (`...`, {eq}`...`, {cite}`...`), code fences, HTML comments and tags, link targets and URLs, and the
# option lines of directives (:width: 80%). A decimal number is digits, a point and digits, with an optional
# exponent (0.98, 1.2e-3, 3.5 in "3.5 %"), or digits with an exponent (1e-3); its sign is not part of the token
# (prose writes "a drop of 0.4" for a printed -0.4). Not decimal numbers: integers and years; numbered
# references (eq. (2.1), Section 9.2, Figure 3.1, arXiv:2207.12598, a heading's 8.1); version strings (2.1.0,
# v3.11, Python 3.11, PyTorch 2.4). A prose number is found when it occurs in an output or code with no digit,
# point-and-digit or exponent next to it: 0.98 is found in "0.98 ± 0.01" and "gamma=0.98", not in "0.980" or
# "10.98".

_MATH_AND_CODE = re.compile(
    r"\$\$.*?\$\$|\$[^$\n]+?\$"           # display and inline math
    r"|\\\(.*?\\\)|\\\[.*?\\\]"            # \( \) and \[ \] math
    r"|``.*?``|`[^`\n]*`"                 # inline code and MyST roles' content
    r"|<!--.*?-->|</?[A-Za-z][^<>\n]*>"  # HTML comments and tags (not "a < 0.5, b > 0.3")
    r"|\]\([^)\s]*\)|https?://\S+",       # link targets and bare URLs
    re.S | re.M,
)
_FENCE = re.compile(r"^\s*(?P<marker>`{3,}|:{3,})\s*(?P<info>.*?)\s*$")
_PROSE_DIRECTIVES = re.compile(r"\{(admonition|note|tip|warning|important|caution|attention|danger|error|hint|"
                               r"seealso|dropdown|margin|sidebar|topic|epigraph|figure|table|list-table)\}")
_DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?![\w.]*\d|\.\d)")
_REFERENCE = re.compile(
    r"(?:\b(?:eqs?|equations?|sections?|sec|chapters?|ch|figures?|fig|tables?|tab|algorithms?|alg|theorems?|"
    r"lemmas?|propositions?|corollary|definitions?|appendix|exercises?|arxiv|python|pytorch|torch|"
    r"numpy|version|v)\b\.?|§|arXiv:)[\s~(]*$|\bv$",
    re.I,
)


def _unfenced(markdown: str) -> str:
    """The lines of a markdown cell outside code fences (code, {math}, any other directive); the body of a prose
    directive (```{admonition} Title ... ```, :::{note}) is kept, without its fences and option lines."""
    kept, open_fences = [], []                     # open_fences: (marker, is_prose), innermost last
    for line in markdown.splitlines():
        fence = _FENCE.match(line)
        inside_code = any(not prose for _, prose in open_fences)
        if fence:
            marker, info = fence["marker"], fence["info"]
            top = open_fences[-1][0] if open_fences else None
            if not info and top and marker[0] == top[0] and len(marker) >= len(top):
                open_fences.pop()                  # a closing fence
                continue
            if not inside_code:
                open_fences.append((marker, bool(_PROSE_DIRECTIVES.match(info))))
                continue
        if not inside_code and not re.match(r"\s*:[\w-]+:", line):   # directive options (:class: dropdown)
            kept.append(line)
    return "\n".join(kept)


def _prose(markdown: str) -> str:
    """A markdown cell's text without code, math, markup and link targets; prose directives kept."""
    text = _MATH_AND_CODE.sub(" ", _unfenced(markdown))
    return re.sub(r"^#+[ \t]+[\d.]+", "", text, flags=re.M)                    # a heading's number


def prose_decimals(markdown: str) -> list[str]:
    """The decimal numbers of a markdown cell's prose, in order (see the rules above)."""
    text = _prose(markdown)
    found = []
    for match in _DECIMAL.finditer(text):
        before = text[max(0, match.start() - 40):match.start()]
        if _REFERENCE.search(before):
            continue
        if re.match(r"\.\d", text[match.end():]) or re.search(r"\d\.$", before):   # 2.1.0
            continue
        found.append(match.group(1))
    return found


def _cell_text(cell) -> str:
    source = "".join(cell["source"])
    parts = [source]
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        for kind, value in out.get("data", {}).items():
            if kind.startswith("text/") or kind == "application/json":
                parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def unprinted_decimals(path) -> list[tuple[int, str]]:
    """(cell index, number) for each decimal number of the prose that no code cell or output holds."""
    cells = json.loads(pathlib.Path(path).read_text())["cells"]
    printed = "\n".join(_cell_text(c) for c in cells if c["cell_type"] == "code")
    missing = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        for number in prose_decimals("".join(cell["source"])):
            token = re.compile(r"(?<![\d.])" + re.escape(number) + r"(?!\d|\.\d|[eE][-+]?\d)")
            if not token.search(printed):
                missing.append((index, number))
    return missing


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_decimal_number_of_the_prose_is_printed_by_the_notebook(path):
    """A number in the text is one a cell computes: it occurs in some output or code of the notebook."""
    missing = unprinted_decimals(path)
    assert not missing, (
        f"{path.relative_to(ROOT)}: {len(missing)} decimal number(s) of the prose occur in no output or code cell "
        "(print each beside the computation it comes from, or write what the cells print):\n"
        + "\n".join(f"  markdown cell {index}: {number}" for index, number in missing)
    )


@pytest.mark.parametrize("text, numbers", [
    ("a drop of 0.98 and -1.35, a rate of 1.2e-3 or 1e-4, 3.5 % off", ["0.98", "1.35", "1.2e-3", "1e-4", "3.5"]),
    ("in 2024, 3 seeds, eq. (2.1), Section 9.2, Figure 3.1, arXiv:2207.12598", []),
    ("PyTorch 2.4, version 1.10, v3.11, torch 2.1.0", []),
    ("$\\gamma = 1.5$, $$x = 0.25$$, \\(y = 0.5\\), `lr=0.001`, {math}`0.7`", []),
    ("```python\nx = 0.3\n```\nafter 0.4", ["0.4"]),
    ("```{math}\n0.3\n```\n```{admonition} Note\n:class: dropdown\nwe get 0.8\n```", ["0.8"]),
    ("## 8.1 Title\n[link](https://x.org/0.5.html) at that step (0.74 to 1.78)", ["0.74", "1.78"]),
    ("<!-- 0.2 -->a < 0.5 and b > 0.3<br>, <img width=0.9>", ["0.5", "0.3"]),
    ("```{admonition} Solution\n:class: dropdown\n0.1\n```\nkept 0.2\n```python\nx = 0.3\n```\n0.4", ["0.1", "0.2", "0.4"]),
    ("````{note}\n```python\nx = 0.3\n```\n0.5\n````\n:::{tip}\n0.6\n:::", ["0.5", "0.6"]),
])
def test_prose_decimals_finds_the_decimal_numbers_of_the_prose(text, numbers):
    assert prose_decimals(text) == numbers


def test_a_prose_number_is_found_only_as_the_same_token(tmp_path):
    def notebook(markdown, output):
        cells = [{"cell_type": "markdown", "metadata": {}, "source": markdown},
                 {"cell_type": "code", "metadata": {}, "source": "print(x)", "execution_count": 1,
                  "outputs": [{"output_type": "stream", "name": "stdout", "text": output}]}]
        path = tmp_path / "n.ipynb"
        path.write_text(json.dumps({"cells": cells}))
        return unprinted_decimals(path)

    assert notebook("we find 0.98", "0.98 ± 0.01\n") == []
    assert notebook("we find 0.98", "gamma=0.98,") == []
    assert notebook("a drop of 0.4", "difference -0.4") == []
    assert notebook("we find 0.98", "0.980\n") == [(0, "0.98")]
    assert notebook("we find 0.98", "10.98\n") == [(0, "0.98")]
    assert notebook("we find 0.98", "0.98e-3\n") == [(0, "0.98")]
