"""The checksum table tool: parsing upstream's sha256sums.txt, checking and writing the table."""
import importlib.util
from pathlib import Path

import pytest
import yaml

SPEC = importlib.util.spec_from_file_location(
    "update_node_exporter_checksums",
    Path(__file__).resolve().parents[2] / "tools" / "update_node_exporter_checksums.py")
tool = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tool)

AMD64 = "9f5ea48e5bc7b656f8a91a32e7d7deb89f70f73dabd0d974418aca15f37d6810"
ARM64 = "ba1886efbd76cb96b0087c695ea8d1b9cb6e8aa946c996d744e9ee16c8e3591a"
# The shape of a release's sha256sums.txt: every OS and architecture, two spaces, file name.
# (The darwin and armv7 values are made up for the sample; the linux ones are the pinned 1.11.1.)
SAMPLE = f"""\
{"1" * 64}  node_exporter-1.11.1.darwin-amd64.tar.gz
{AMD64}  node_exporter-1.11.1.linux-amd64.tar.gz
{ARM64}  node_exporter-1.11.1.linux-arm64.tar.gz
{"2" * 64}  node_exporter-1.11.1.linux-armv7.tar.gz
{"3" * 64}  node_exporter-1.11.1.netbsd-amd64.tar.gz
"""


def test_parses_the_linux_archives_of_the_version():
    assert tool.parse_sha256sums(SAMPLE, "1.11.1") == {"amd64": AMD64, "arm64": ARM64}
    assert tool.parse_sha256sums(SAMPLE, "1.11.1", ("armv7",)) == {"armv7": "2" * 64}


def test_binary_mode_marker_is_accepted():
    assert tool.parse_sha256sums(f"{AMD64} *node_exporter-1.11.1.linux-amd64.tar.gz\n", "1.11.1",
                                 ("amd64",)) == {"amd64": AMD64}


@pytest.mark.parametrize("text, message", [
    (SAMPLE.replace("linux-arm64", "linux-arm64-extra"), "lists no linux archive for arm64"),
    (SAMPLE, "lists no linux archive"),      # asked for another version
    (SAMPLE + f"{'4' * 64}  node_exporter-1.11.1.linux-amd64.tar.gz\n", "listed twice"),
    ("<html>Not Found</html>", "lists no linux archive"),
])
def test_incomplete_or_contradictory_lists_are_refused(text, message):
    version = "1.10.2" if text == SAMPLE else "1.11.1"
    with pytest.raises(tool.ChecksumError, match=message):
        tool.parse_sha256sums(text, version)


def test_the_shipped_table_parses_and_is_sorted_newest_first():
    header, table = tool.read_table()
    assert len(table) >= 3
    assert all(set(arches) >= {"amd64", "arm64"} for arches in table.values())
    assert tool.render(header, table) == tool.TABLE.read_text()


def test_check_agrees_with_the_pinned_1_11_1(capsys):
    assert tool.main(["--check", "1.11.1"], fetcher=lambda v: SAMPLE) == 0


def test_check_reports_a_pinned_value_that_upstream_does_not_publish(tmp_path, capsys):
    table = tmp_path / "checksums.yml"
    table.write_text(tool.TABLE.read_text().replace(AMD64, "0" * 64))
    assert tool.main(["--check", "1.11.1"], fetcher=lambda v: SAMPLE, table_path=table) == 1
    assert f"pinned {'0' * 64} but upstream publishes {AMD64}" in capsys.readouterr().err


def test_write_adds_a_version_and_records_where_it_came_from(tmp_path):
    table = tmp_path / "checksums.yml"
    table.write_text(tool.TABLE.read_text())
    newer = SAMPLE.replace("1.11.1", "1.12.0")
    assert tool.main(["--write", "1.12.0"], fetcher=lambda v: newer, table_path=table) == 0
    text = table.read_text()
    pinned = yaml.safe_load(text)[tool.KEY]
    assert pinned["1.12.0"] == {"amd64": AMD64, "arm64": ARM64}
    assert next(iter(pinned)) == "1.12.0"
    assert "releases/download/v1.12.0/sha256sums.txt, fetched" in text


@pytest.mark.parametrize("version", ["latest", "v1.11.1", "1.11"])
def test_versions_must_be_releases(version):
    with pytest.raises(SystemExit):
        tool.main(["--check", version], fetcher=lambda v: SAMPLE)


def test_an_unreachable_upstream_fails_without_writing(tmp_path):
    table = tmp_path / "checksums.yml"
    table.write_text(tool.TABLE.read_text())

    def offline(version):
        raise OSError("network unreachable")
    assert tool.main(["--write", "1.12.0"], fetcher=offline, table_path=table) == 2
    assert table.read_text() == tool.TABLE.read_text()
