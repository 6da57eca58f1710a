"""The pages that the book's ``_toc.yml`` lists, for the tests that walk the book."""

from __future__ import annotations

import pathlib

import yaml


def toc_pages(root: pathlib.Path) -> list[str]:
    """Every page of ``root/_toc.yml`` (root, chapters, sections), in order, once, without suffix."""

    def walk(node):
        if isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("root", "file"):
                    yield str(pathlib.PurePosixPath(value).with_suffix(""))
                else:
                    yield from walk(value)

    return list(dict.fromkeys(walk(yaml.safe_load((root / "_toc.yml").read_text()))))
