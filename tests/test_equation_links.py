"""Every equation label the package names exists in the book.

Docstrings and comments cite the book's equations as "eq. (label)", "eq. ``label``" or
"equations ``a`` and ``b``"; the book defines them as ``$$ ... $$ (label)`` (or ``:label:`` in a
``{math}`` directive) in the notebooks and pages that _toc.yml lists. Paper equations such as
"eq. (12)" are numbers, not labels, and are not checked.
"""

import io
import json
import pathlib
import sys
import re
import tokenize

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from toc import toc_pages  # noqa: E402  (tools/toc.py: the pages of _toc.yml)
LABEL = r"[A-Za-z][\w-]*"
REF = re.compile(rf"``({LABEL})``|\(({LABEL})\)")
CITE = re.compile(r"\b(?:eqs?\.|equations?)[\s#]*", re.IGNORECASE)
SEPARATOR = re.compile(r"[\s#]*(?:,[\s#]*(?:and[\s#]+)?|and[\s#]+)")
DEFINED = re.compile(rf"\$\$[ \t]*\(({LABEL})\)[ \t]*$|^:label:[ \t]*({LABEL})[ \t]*$", re.MULTILINE)


def _docstrings_and_comments(path):
    """(line, text) of every string literal and comment in a Python file."""
    with path.open("rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT):
                yield tok.start[0], tok.string


def _cited_labels(root=ROOT):
    """label -> the places ("tutorial_pkg/x.py:line") that cite it."""
    cited = {}
    for path in sorted((root / "tutorial_pkg").rglob("*.py")):
        chunks = list(_docstrings_and_comments(path))
        # consecutive comment lines read as one text, so a citation may wrap onto the next line
        for first_line, text in _merge_comment_lines(chunks):
            for m in CITE.finditer(text):
                pos = m.end()
                while ref := REF.match(text, pos):
                    line = first_line + text.count("\n", 0, ref.start())
                    cited.setdefault(ref.group(1) or ref.group(2), []).append(
                        f"{path.relative_to(root).as_posix()}:{line}")
                    sep = SEPARATOR.match(text, ref.end())
                    pos = sep.end() if sep else ref.end()
    return cited


def _merge_comment_lines(chunks):
    merged = []
    for line, text in chunks:
        if merged and text.startswith("#") and merged[-1][1].startswith("#") and \
                line == merged[-1][0] + merged[-1][1].count("\n") + 1:
            merged[-1] = (merged[-1][0], merged[-1][1] + "\n" + text)
        else:
            merged.append((line, text))
    return merged


def _book_files():
    for page in toc_pages(ROOT):
        entry = ROOT / page
        for suffix in (".ipynb", ".md"):
            if entry.with_suffix(suffix).exists():
                yield entry.with_suffix(suffix)


def _defined_labels(path):
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    return {a or b for a, b in DEFINED.findall(text)}


CITED = _cited_labels()
IN_BOOK = set().union(*map(_defined_labels, _book_files()))


def test_the_package_cites_equations():
    assert len(CITED) >= 10, f"found only {sorted(CITED)}: has the citation style changed?"


def test_the_book_defines_equations():
    assert len(IN_BOOK) >= 10, f"found only {sorted(IN_BOOK)}"


@pytest.mark.parametrize("label", sorted(CITED))
def test_cited_equation_exists_in_the_book(label):
    if label not in IN_BOOK:
        elsewhere = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "book").rglob("*"))
                     if p.suffix in (".ipynb", ".md") and ".ipynb_checkpoints" not in p.parts
                     and label in _defined_labels(p)]
        hint = f"; {', '.join(elsewhere)} defines it but _toc.yml does not list it" if elsewhere else ""
        pytest.fail(f"eq. ({label}), cited at {', '.join(CITED[label])}, is not in the book{hint}", pytrace=False)


@pytest.mark.parametrize("text, labels", [
    ("eq. (ddpm-step) and Song et al., eq. (12)", ["ddpm-step"]),
    ("chapter 3, eq. ``bayes-score``, ``guided-eps``), chapter 4", ["bayes-score", "guided-eps"]),
    ("equations ``forward-marginal``,\n``eps-score`` and ``posterior``.", ["forward-marginal", "eps-score", "posterior"]),
    ("Eq. (ddim-step).", ["ddim-step"]),
    ("# predicted x0, eq.\n# (x0-from-eps)", ["x0-from-eps"]),
])
def test_citation_pattern(text, labels, tmp_path):
    pkg = tmp_path / "tutorial_pkg"
    pkg.mkdir()
    body = "\n".join(text.splitlines()) if text.startswith("#") else f'"""{text}"""'
    (pkg / "m.py").write_text(body + "\n")
    assert sorted(_cited_labels(tmp_path)) == sorted(labels)
