"""envfile_quote: every value reads back unchanged through systemd's EnvironmentFile= rules and /bin/sh.

systemd is not running here, so its parser is modelled on the rules of systemd.exec(5),
EnvironmentFile= (the state machine of systemd's src/basic/env-file.c); the shell is the real
/bin/sh, reading the file the way the role's start script and container entry point do
(`set -a; . file`).
"""

from __future__ import annotations

import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.envfile import FilterModule, envfile_quote

WHITESPACE = " \t\n\r"
NEWLINE = "\n\r"
DOUBLE_QUOTE_ESCAPES = '"\\`$'


def systemd_env_file(text: str) -> dict[str, str]:
    """Parse an environment file by the rules of systemd.exec(5), EnvironmentFile=."""
    result: dict[str, str] = {}
    state, key, value = "pre_key", "", ""
    trailing = 0  # white space at the end of an unquoted value, dropped when the line ends

    def push():
        result[key.strip()] = value[: len(value) - trailing] if trailing else value

    for char in text:
        if state == "pre_key":
            if char in "#;":
                state = "comment"
            elif char not in WHITESPACE:
                state, key = "key", char
        elif state == "key":
            if char in NEWLINE:
                state, key = "pre_key", ""
            elif char == "=":
                state, value, trailing = "pre_value", "", 0
            else:
                key += char
        elif state == "pre_value":
            if char in NEWLINE:
                push()
                state, key = "pre_key", ""
            elif char == "'":
                state = "single"
            elif char == '"':
                state = "double"
            elif char == "\\":
                state = "value_escape"
            elif char not in WHITESPACE:
                state, value, trailing = "value", value + char, 0
        elif state == "value":
            if char in NEWLINE:
                push()
                state, key = "pre_key", ""
            elif char == "\\":
                state, trailing = "value_escape", 0
            else:
                value += char
                trailing = trailing + 1 if char in WHITESPACE else 0
        elif state == "value_escape":
            state = "value"
            if char not in NEWLINE:
                value += char
        elif state == "single":
            if char == "'":
                state = "pre_value"
            else:
                value += char
        elif state == "double":
            if char == '"':
                state = "pre_value"
            elif char == "\\":
                state = "double_escape"
            else:
                value += char
        elif state == "double_escape":
            state = "double"
            if char in DOUBLE_QUOTE_ESCAPES:
                value += char
            elif char != "\n":
                value += "\\" + char
        elif state == "comment" and char in NEWLINE:
            state = "pre_key"
    if state not in ("pre_key", "key", "comment"):
        push()
    return result


def shell_env_file(path, names) -> dict[str, str]:
    """What /bin/sh exports after `set -a; . file` (as the start script and entry point do)."""
    script = 'set -eu; set -a; . "$1"; set +a; shift; for n in "$@"; do printenv "$n"; printf "\\0"; done'
    out = subprocess.run(["/bin/sh", "-c", script, "sh", str(path), *names], capture_output=True, check=True)
    # printenv adds a new line after each value.
    return {name: part.decode()[:-1] for name, part in zip(names, out.stdout.split(b"\0"))}


VALUES = [
    "plain-value",
    "",
    "it's",
    "'",
    "''",
    'say "hi"',
    "$HOME",
    "${HOME}",
    "it's $HOME",
    "back\\slash",
    "\\",
    "ends with backslash\\",
    "it's a \\ and \\\\",
    "100% %h %n",
    "`id`",
    "$(id)",
    "first\nsecond",
    "it's\nmulti\nline\n",
    "tab\there",
    "  padded  ",
    " it's padded ",
    "#not a comment",
    "a=b=c",
    "it's ü and ✓",
    "mixed 'single' \"double\" $VAR `cmd` \\ % \n end",
]


@pytest.mark.parametrize("value", VALUES)
def test_systemd_reads_the_value_back(value):
    parsed = systemd_env_file(f"# comment\nNAME={envfile_quote(value)}\nOTHER='x'\n")
    assert parsed == {"NAME": value, "OTHER": "x"}


@pytest.mark.parametrize("value", VALUES)
def test_shell_reads_the_value_back(value, tmp_path):
    path = tmp_path / "env"
    path.write_text(f"# comment\nNAME={envfile_quote(value)}\nOTHER='x'\n")
    assert shell_env_file(path, ["NAME", "OTHER"]) == {"NAME": value, "OTHER": "x"}


def test_what_the_role_wrote_before_breaks_on_a_quote():
    """The old template's '{{ value }}': the model of systemd's parser sees the break too."""
    assert systemd_env_file("NAME='it's $HOME'\n")["NAME"] != "it's $HOME"


@pytest.mark.parametrize(
    "value, quoted",
    [
        ("plain", "'plain'"),
        ("$HOME \\ %h\n", "'$HOME \\ %h\n'"),
        ("it's", '"it\'s"'),
        ('it\'s "$x" `y` \\', '"it\'s \\"\\$x\\" \\`y\\` \\\\"'),
        (5000, "'5000'"),
        (True, "'True'"),
        (None, "''"),
    ],
)
def test_quoting_is_single_unless_the_value_holds_a_single_quote(value, quoted):
    assert envfile_quote(value) == quoted


def test_nul_is_refused():
    with pytest.raises(AnsibleFilterError, match="NUL"):
        envfile_quote("a\0b")


def test_filter_is_registered():
    assert FilterModule().filters()["envfile_quote"] is envfile_quote
