"""Every command's flags are generated from its config: one default, one help, one set of choices."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from hvm1.cli import COMMAND_GROUPS, build_parser
from hvm1.cli.command import Command, config_from_args
from hvm1.settings import setting_info

COMMANDS = {
    name: entry for group in COMMAND_GROUPS for name, entry in group.COMMANDS.items() if isinstance(entry, Command)
}


def _required_argv(name: str, config_class) -> list[str]:
    argv = [name]
    for field in dataclasses.fields(config_class):
        if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
            continue
        info = setting_info(config_class, field.name)
        values = ["x.safetensors" if field.name == "output" else "x"]
        argv += values if info["positional"] else [info["option"] or f"--{field.name.replace('_', '-')}", *values]
    return argv


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_flag_not_given_keeps_the_librarys_default(name):
    config_class = COMMANDS[name].config_class()
    argv = _required_argv(name, config_class)
    args = build_parser(name, lazy=True).parse_args(argv)
    config = config_from_args(config_class, args)
    for field in dataclasses.fields(config_class):
        if field.default is not dataclasses.MISSING:
            assert getattr(config, field.name) == field.default, (name, field.name)
        elif field.default_factory is not dataclasses.MISSING:
            assert getattr(config, field.name) == field.default_factory(), (name, field.name)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_flag_shows_the_librarys_default_and_choices(name):
    config_class = COMMANDS[name].config_class()
    parser = build_parser(name, lazy=True)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    actions = {action.dest: action for action in sub._actions}
    for field in dataclasses.fields(config_class):
        info = setting_info(config_class, field.name)
        if not info["flag"]:
            assert field.name not in actions, (name, field.name)
            continue
        action = actions[field.name]
        assert action.default is argparse.SUPPRESS  # the config, not argparse, supplies what is not given
        assert info["help"] in action.help.removeprefix("do not "), (name, field.name)
        if info["choices"] is not None:
            assert tuple(action.choices) == tuple(info["choices"]), (name, field.name)
        shown = field.default
        if shown not in (dataclasses.MISSING, None, (), True, False) and not info["positional"]:
            text = " ".join(map(str, shown)) if isinstance(shown, tuple) else str(shown)
            assert action.help.endswith(f"(default {text})"), (name, field.name, action.help)
