"""The one JSONL reader: line numbers, blank lines, and the errors every data file shares."""

import pytest

from thinkrl.data.jsonl import lines, read_jsonl
from thinkrl.errors import UserError


def test_rows_carry_their_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes('\ufeff{"a": 1}\r\n\n  \n[2, 3]\n"x"'.encode("utf-8"))  # a BOM, CRLF, blank lines, no final newline
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, [2, 3]), (5, "x")]


def test_a_line_holding_a_unicode_line_separator_is_one_line():
    assert lines('{"q": "one\u2028two\u0085three"}\r\n{}') == ['{"q": "one\u2028two\u0085three"}', "{}"]


def test_bad_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 1,}\n')
    with pytest.raises(UserError, match=r"d.jsonl:3: not valid JSON \(Expecting property name enclosed in double quotes at column 9\)"):
        list(read_jsonl(path))


def test_bytes_that_are_not_utf8_name_their_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(UserError, match=r"d.jsonl:2: not valid UTF-8 \(byte 0xe9\): save the file as UTF-8"):
        read_jsonl(path).__next__()
