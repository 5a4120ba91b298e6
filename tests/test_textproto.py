"""The text-format reader the conformance test uses (tests/textproto.py): what it reads, and that it refuses the rest."""

import pytest

from tests import textproto


def test_fields_messages_lists_and_extensions_are_read_in_order():
    message = textproto.parse("""
        name: "basic"  # a comment
        section { name: 'a' test: { expr: "1" value { int64_value: -3 } } }
        section < name: "b", test { double_value: 1e+3 } test { double_value: -inf } >
        values: [1, 2.5, 0x10, true]
        object_value { [type.googleapis.com/google.protobuf.Duration] { seconds: 123 nanos: 5 } }
    """)
    assert message.get("name") == "basic"
    first, second = message.all("section")
    assert first.get("test").get("value").get("int64_value") == -3
    assert [test.get("double_value") for test in second.all("test")] == [1000.0, float("-inf")]
    assert message.all("values") == [1, 2.5, 16, "true"] and isinstance(message.all("values")[3], textproto.Ident)
    duration = message.get("object_value").get("type.googleapis.com/google.protobuf.Duration")
    assert (duration.get("seconds"), duration.get("nanos")) == (123, 5)


@pytest.mark.parametrize(
    "literal, expected",
    [
        (r'"a\nb\t\"\'\\"', b"a\nb\t\"'\\"),
        (r'"\x4a\X4b\101\0"', b"JKA\x00"),
        (r'"\u00e9\U0001F62C"', "é😬".encode()),
        (r"'\377'", b"\xff"),
        ('"é"', "é".encode()),
    ],
)
def test_string_escapes_are_protobufs(literal, expected):
    assert textproto.unquote(literal) == expected


def test_adjacent_strings_join_and_bytes_keep_invalid_utf8():
    value = textproto.parse(r'b: "\xff" "a"').get("b")
    assert textproto.bytes_of(value) == b"\xffa"


@pytest.mark.parametrize("text", ['name "x"', "a { b: 1", "a: @", r'a: "\q"', "a: }"])
def test_anything_else_is_a_syntax_error(text):
    with pytest.raises(SyntaxError):
        textproto.parse(text)
