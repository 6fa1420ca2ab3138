"""Configuration file checks that decide what the server offers on the wire."""

import dataclasses
import os
import tomllib
from pathlib import Path

import pytest

from smbsrv.config import ConfigError, check_share_paths, load_config, parse_config

SHIPPED = Path(__file__).resolve().parents[2] / "conf" / "smbsrv.toml"


def _config(tmp_path: Path, server_lines: str) -> Path:
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    path = tmp_path / "smbsrv.toml"
    path.write_text(f'[server]\n{server_lines}\n\n[shares.share]\npath = "{share}"\n')
    return path


def test_write_size_defaults_below_the_read_size(tmp_path: Path) -> None:
    config = load_config(str(_config(tmp_path, "")))
    assert (config.max_io_size, config.write_size_limit) == (8 << 20, 4 << 20)


def test_write_size_is_capped_by_max_io_size(tmp_path: Path) -> None:
    config = load_config(str(_config(tmp_path, "max_io_size = 1048576")))
    assert config.write_size_limit == 1 << 20


@pytest.mark.parametrize("value", [65535, 8 * 1024 * 1024 + 1])
def test_write_size_out_of_range_names_the_key(tmp_path: Path, value: int) -> None:
    with pytest.raises(ConfigError, match="server.max_write_size"):
        load_config(str(_config(tmp_path, f"max_write_size = {value}")))


def test_the_shipped_config_loads_and_documents_every_setting_with_its_default(tmp_path: Path) -> None:
    """conf/smbsrv.toml (what scripts/start serves) is valid, names every server and share setting, and each
    value it shows is the built-in default (the comment of its share aside): it is the reference an
    administrator reads, so a new setting, or a default changed in code only, fails here."""
    (tmp_path / "var" / "share").mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # relative paths are the server's working directory's
    try:
        shipped = load_config(str(SHIPPED))
        check_share_paths(shipped)
    finally:
        os.chdir(cwd)
    text = tomllib.loads(SHIPPED.read_text())
    defaults = parse_config({"shares": {"share": {"path": "var/share"}}})
    for shown, default, table, exempt in ((shipped, defaults, text["server"], {"shares"}),
                                          (shipped.shares[0], defaults.shares[0], text["shares"]["share"],
                                           {"name", "comment"})):
        names = {field.name for field in dataclasses.fields(default)} - exempt
        assert names - set(table) == set(), "settings the shipped config does not show"
        assert {name: getattr(shown, name) for name in names} == {name: getattr(default, name) for name in names}
