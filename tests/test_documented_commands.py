"""Every command the README, experiments/ and conf/ comments show runs as written, at least as far as its
arguments: Hydra commands compose their config with the shown overrides (as `--cfg job` would), argparse
commands accept the shown flags. Sweeps (`-m`, `a,b,c`) compose with their first value."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.helpers import REPO, compose_config

HYDRA_COMMANDS = {"train", "eval", "predict", "export", "teacher", "stats", "bench", "tune_reduction"}
COMMAND = re.compile(r"python -m (fast_ast(?:\.\w+)+)((?:[^#\n])*)")
PLACEHOLDER = re.compile(r"<[^<>\n]*>")  # <ckpt>, <sweep dir>: what the reader fills in
MAKE = re.compile(r"make (train|bench) ARGS=(\"[^\"]*\"|'[^']*')")


def code_blocks(text: str) -> list[str]:
    """The lines of fenced code blocks, backslash continuations joined and the block's shell variables
    (NAME="...") expanded."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        variables: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            for name, value in variables.items():
                line = line.replace(f"${name}", value)
            assignment = re.fullmatch(r'([A-Z_]+)="([^"]*)"', line.strip())
            if assignment:
                variables[assignment.group(1)] = assignment.group(2)
            lines.append(line)
    return lines


def conf_comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


def documented() -> list[tuple[str, str, list[str]]]:
    """(where, module, argv) of every documented command line."""
    sources = [(p, code_blocks) for p in [REPO / "README.md", *sorted((REPO / "experiments").rglob("*.md"))]]
    sources += [(p, conf_comments) for p in sorted((REPO / "conf").rglob("*.yaml"))]
    found = []
    for path, lines_of in sources:
        for number, line in enumerate(lines_of(path.read_text()), 1):
            where = f"{path.relative_to(REPO)}: {line.strip()}"
            for match in COMMAND.finditer(line):
                if match.group(1) == "fast_ast.<name>":
                    continue
                found.append((where, match.group(1), shlex.split(PLACEHOLDER.sub("X", match.group(2)))))
            for match in MAKE.finditer(line):
                found.append((where, f"fast_ast.{match.group(1)}", shlex.split(shlex.split(match.group(2))[0])))
    return found


def first_of_sweeps(arguments: list[str]) -> list[str]:
    """Hydra overrides with each sweep replaced by its first value; flags and hydra.* keys left out."""
    overrides = [a for a in arguments if not a.startswith("-") and a != "job" and not a.startswith(("hydra.", "hydra/"))]
    out = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={first}")
        else:
            out.append(override.input_line)
    return out


class ParsedArguments(Exception):
    pass


def parse_only(parser: argparse.ArgumentParser, args=None, namespace=None):
    namespace = ORIGINAL_PARSE(parser, args, namespace)
    raise ParsedArguments(namespace)


ORIGINAL_PARSE = argparse.ArgumentParser.parse_args
COMMANDS = documented()


def test_the_documentation_shows_commands():
    modules = {module for _, module, _ in COMMANDS}
    assert {"fast_ast.train", "fast_ast.eval", "fast_ast.predict", "fast_ast.bench", "fast_ast.report"} <= modules


@pytest.mark.parametrize("where,module,arguments", COMMANDS, ids=[f"{i}-{m}" for i, (_, m, _) in enumerate(COMMANDS)])
def test_documented_command_runs_as_written(where, module, arguments):
    name = module.removeprefix("fast_ast.")
    if name in HYDRA_COMMANDS:
        try:
            compose_config(name, first_of_sweeps(arguments))
        except Exception as error:  # noqa: BLE001 (reported with the documented line)
            pytest.fail(f"{where}\n  does not compose: {type(error).__name__}: {error}")
        return
    main = importlib.import_module(module).main
    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_only):
        try:
            main(arguments)
        except ParsedArguments:
            return
        except SystemExit as error:
            pytest.fail(f"{where}\n  is refused by its argument parser (exit {error.code})")
    pytest.fail(f"{where}\n  ran without parsing arguments")
