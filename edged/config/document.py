"""The config file as a YAML document: read and parsed within limits no real config comes near.

A config is a few kilobytes (configs/gateway.yaml, every setting with comments, is 5 KiB), but
`edged check` is also what someone runs on a file they were sent, so a file that is huge, nested
thousands of levels deep or made of aliases that repeat one list a million times must end in an
error naming the limit and the place, quickly, instead of a traceback, a hang or 18 MB of output.

PyYAML's C parser (libyaml, in the PyPI wheels) reads a document about seven times faster than
the pure-Python one; the nodes are composed and built in Python either way, by the same code, so
the limits below and every value come out the same. When the C parser refuses a document, the
pure-Python one reads it again: its messages are the ones edged has always shown, and a document
only the C parser refuses is then read as before. Without libyaml the pure-Python parser does all.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.error import MarkedYAMLError
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import Node
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from edged.errors import ConfigError
from edged.sizes import MiB, format_bytes, format_size

if TYPE_CHECKING:
    from yaml.events import NodeEvent

#: 1 MiB is 200 times the commented example of every setting; a gateway with a thousand
#: pipelines stays below it. The C parser reads 1 MiB in about 0.5 s (10 MB took 6 s, and 35 s
#: with the pure-Python parser alone), so a file past this is refused before it is parsed.
MAX_BYTES = 1 * MiB
#: A config is at most six levels deep (pipelines, a pipeline, its filters, a filter, its params).
#: 64 leaves room for any layout and keeps composing, one recursion per level, far from Python's
#: recursion limit: a few thousand levels used to end in RecursionError.
MAX_DEPTH = 64
#: Keys, values and list items, an alias counting as everything it repeats: configs/gateway.yaml
#: holds about 200, so a thousand pipelines written alike about 50,000. Checking 100,000 takes
#: 1 to 2 s, where a list of 20,000 topics repeated by 5,000 aliases ran for over ten minutes.
MAX_VALUES = 100_000
#: Digits (with sign, prefix and '_') of one integer. No setting needs more than 20; past 4300
#: Python refuses to convert one at all, and a long base-60 integer ("1:59:59:...") costs time
#: quadratic in its length.
MAX_INT_CHARS = 1000

_INT_TAG = "tag:yaml.org,2002:int"
_KINDS = {"int": "an integer", "float": "a number", "timestamp": "a date", "binary": "base64 data"}


class LimitError(MarkedYAMLError):
    """The document is valid YAML but past one of the limits above; `problem` says which."""


class _Checked(Composer, SafeConstructor, Resolver):
    """Composing and building nodes within MAX_DEPTH and MAX_VALUES; a subclass brings a parser."""

    if TYPE_CHECKING:
        # From the parser; where compose_node looks, the next event always starts a node.
        def peek_event(self) -> NodeEvent: ...

    def __init__(self) -> None:
        Composer.__init__(self)
        self.values = 0
        self.depth = 0  # collections around the node being composed
        self.deepest = 0  # the deepest level reached inside it so far
        self.sizes: dict[object, tuple[int, int]] = {}  # anchor: (values, levels) of its node

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            return self._alias(event, parent, index)
        level = 1 if isinstance(event, CollectionStartEvent) else 0
        if self.depth + level > MAX_DEPTH:
            raise _limit(f"nested deeper than {MAX_DEPTH} levels{_FEWER}", event.start_mark)
        self._count(1, event.start_mark)
        first, outer = self.values, self.deepest
        self.depth += level
        self.deepest = self.depth
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= level
        levels = self.deepest - self.depth
        self.deepest = max(outer, self.deepest)
        if event.anchor is not None:
            self.sizes[event.anchor] = (self.values - first + 1, levels)
        return node

    def _alias(self, event: AliasEvent, parent: Node | None, index: int) -> Node | None:
        size = self.sizes.get(event.anchor)
        if size is None and event.anchor in self.anchors:
            # A list holding itself: nothing in a config can use one, and walking it never ends.
            raise _limit(
                f"alias *{event.anchor} is used inside the node it names", event.start_mark
            )
        if size is not None:  # an undefined alias is refused by the Composer, as before
            values, levels = size
            if self.depth + levels > MAX_DEPTH:
                raise _limit(
                    f"nested deeper than {MAX_DEPTH} levels through alias *{event.anchor}{_FEWER}",
                    event.start_mark,
                )
            self._count(values, event.start_mark)
            self.deepest = max(self.deepest, self.depth + levels)
        return super().compose_node(parent, index)

    def _count(self, values: int, mark: Any) -> None:
        self.values += values
        if self.values > MAX_VALUES:
            raise _limit(
                f"more than {MAX_VALUES:,} keys, values and list items (an alias counts as "
                f"everything it repeats){_FEWER}",
                mark,
            )

    def construct_object(self, node: Node, deep: bool = False) -> object:
        if node.tag == _INT_TAG and len(node.value) > MAX_INT_CHARS:
            problem = f"an integer of {len(node.value):,} characters; at most {MAX_INT_CHARS}"
            raise _limit(problem, node.start_mark)
        try:
            return super().construct_object(node, deep)
        # A value of the right shape but impossible, such as 2024-13-45 or "!!int x". Never
        # str(exc): Python's message quotes the value.
        except (ValueError, OverflowError):
            kind = _KINDS.get(node.tag.rpartition(":")[2], f"a {node.tag} value")
            raise ConstructorError(None, None, f"not {kind}", node.start_mark) from None


_FEWER = "; a config needs far fewer"


def _limit(problem: str, mark: Any) -> LimitError:
    """A LimitError at `mark`: a yaml.error.Mark, or the C parser's own kind of it."""
    return LimitError(problem=problem, problem_mark=mark)


class _PythonLoader(Reader, Scanner, Parser, _Checked):
    def __init__(self, data: bytes) -> None:
        Reader.__init__(self, data)
        Scanner.__init__(self)
        Parser.__init__(self)
        _Checked.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


if yaml.__with_libyaml__:

    class _CLoader(_Checked, yaml.CSafeLoader):
        # _Checked first: its composer, in Python, takes the place of the C one and reads the C
        # parser's events.
        def __init__(self, data: bytes) -> None:
            yaml.CSafeLoader.__init__(self, data)
            _Checked.__init__(self)


def _load(loader: _Checked) -> object:
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()  # type: ignore[attr-defined]  # from the parser


def parse_yaml(data: bytes, *, fast: bool = True) -> object:
    """The document in `data`, built within the limits; raises yaml.YAMLError.

    `fast`: parse with libyaml when it is there (the tests also run without it).
    """
    if fast and yaml.__with_libyaml__:
        try:
            return _load(_CLoader(data))
        except (LimitError, ComposerError, ConstructorError):
            raise  # raised by the Python code both parsers share: the same either way
        except yaml.YAMLError:
            pass  # the C parser's own wording and positions: let the Python parser say it
    return _load(_PythonLoader(data))


class _TooLarge(Exception):
    pass


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; _TooLarge past MAX_BYTES, without reading a regular file at all."""
    with path.open("rb") as file:
        info = os.fstat(file.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > MAX_BYTES:
            raise _TooLarge(f"{format_bytes(info.st_size)} ({info.st_size:,} bytes)")
        # A pipe or a device (/dev/zero) has no size to look at: read one byte past the limit.
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _TooLarge(f"more than {format_size(MAX_BYTES)}")
    return data


def read_document(path: Path, source: str) -> object:
    """The YAML document in the file at `path`, or ConfigError with one error saying why not."""
    try:
        return parse_yaml(_read_bytes(path))
    except OSError as exc:
        error = f"<file>: cannot read: {(exc.strerror or str(exc)).lower()}"
    # Built from the parts, never str(exc): PyYAML's own message quotes the offending lines or
    # bytes, which may be part of a password.
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        invalid = "" if isinstance(exc, LimitError) else "invalid YAML: "
        error = f"{where}: {invalid}{exc.problem or exc.context}"
        if exc.problem and exc.context and exc.context_mark:
            error += f" ({exc.context} at line {exc.context_mark.line + 1})"
    except ReaderError as exc:
        error = f"<file>: invalid text at byte {exc.position}: {exc.reason}"
    except yaml.YAMLError:
        error = "<file>: invalid YAML"
    except _TooLarge as exc:
        error = f"<file>: too large: {exc}; a config file may hold at most {format_size(MAX_BYTES)}"
    raise ConfigError([error], source) from None
