"""Editing ml-ci.yaml in place: only the changed values move, comments and layout stay byte for byte."""

from __future__ import annotations

import difflib

import pytest
import yaml

from mlci.config.yamledit import scalar, set_values
from mlci.errors import UserError

from ..conftest import EXAMPLE

SHA = "ab" * 32
NEW = {"uri": "s3://b/p/sha256/ab/" + "c" * 62, "sha256": SHA, "format": "npz"}


def changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(old.splitlines(), new.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def test_new_entry_goes_after_the_last_dataset_and_nothing_else_moves():
    old = (EXAMPLE / "ml-ci.yaml").read_text()
    new = set_values(old, ["artifacts", "data", "speech"], NEW, "ml-ci.yaml")
    removed, added = changed_lines(old, new)
    assert removed == []
    assert added == ["    speech:", f"      uri: {NEW['uri']}", f"      sha256: {SHA}", "      format: npz"]
    lines = new.splitlines()
    assert lines.index("    speech:") == lines.index("      label: y", lines.index("    digits-train:  # what `mlci "
                                                        "train` learns from: scikit-learn's digits in the serving "
                                                        "schema (x, y)")) + 1
    assert yaml.safe_load(new)["artifacts"]["data"]["speech"] == NEW


def test_existing_entry_keeps_its_comments_and_other_keys():
    old = ("service: x\nartifacts:\n  data:\n    t:\n      uri: old.npz   # the old copy\n      label: lab\n"
           "      sha256: 'ffff'\n    u: {uri: u.csv}\n# trailing comment\n")
    new = set_values(old, ["artifacts", "data", "t"], NEW, "f")
    assert new == ("service: x\nartifacts:\n  data:\n    t:\n      uri: " + NEW["uri"] + "   # the old copy\n"
                   "      label: lab\n      sha256: " + SHA + "\n      format: npz\n    u: {uri: u.csv}\n"
                   "# trailing comment\n")


@pytest.mark.parametrize(("old", "expected"), [
    ("service: x  # the service\n", "service: x  # the service\nartifacts:\n  data:\n    t:\n      uri: U\n"),
    ("service: x", "service: x\nartifacts:\n  data:\n    t:\n      uri: U\n"),
    ("service: x\nartifacts:\n    data: {}\n# end\n", "service: x\nartifacts:\n    data:\n        t:\n"
     "            uri: U\n# end\n"),
    ("service: x\nartifacts:\n  data:\naccuracy: {}\n", "service: x\nartifacts:\n  data:\n    t:\n      uri: U\n"
     "accuracy: {}\n"),
    ("service: x\nartifacts:\n  remote: s3://b\n  models: {lock: m.lock}\n\ntests: {}\n",
     "service: x\nartifacts:\n  remote: s3://b\n  models: {lock: m.lock}\n  data:\n    t:\n      uri: U\n\ntests: {}\n"),
    ("service: x\nartifacts:\n  data:\n    t: {uri: old, label: y}\n",
     "service: x\nartifacts:\n  data:\n    t: {uri: U, label: y}\n"),
    ("service: x\nartifacts:\n  data:\n    z:\n      uri: |\n        multi\n\n# c\n",
     "service: x\nartifacts:\n  data:\n    z:\n      uri: |\n        multi\n    t:\n      uri: U\n\n# c\n"),
])
def test_missing_levels_flow_and_null_mappings(old: str, expected: str):
    assert set_values(old, ["artifacts", "data", "t"], {"uri": "U"}, "f") == expected


def test_refuses_what_it_cannot_edit_safely():
    with pytest.raises(UserError, match="artifacts.data is not a mapping"):
        set_values("service: x\nartifacts:\n  data: [a]\n", ["artifacts", "data", "t"], {"uri": "U"}, "f")
    with pytest.raises(UserError, match="artifacts.data.t.uri is not a plain value"):
        set_values("service: x\nartifacts:\n  data:\n    t:\n      uri: {a: 1}\n", ["artifacts", "data", "t"],
                   {"uri": "U"}, "f")
    with pytest.raises(UserError, match="not valid YAML"):
        set_values("service: [x\n", ["artifacts"], {"a": 1}, "f")


def test_scalars_read_back_as_written():
    for value in ["plain", "s3://b/k", "a: b", "x #y", " lead", "yes", "123", "null", "", "multi\nline", 7, 1.5, True]:
        assert yaml.safe_load(f"k: {scalar(value)}")["k"] == value
