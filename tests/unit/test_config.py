"""Configuration file checks that decide what the server offers on the wire."""

from pathlib import Path

import pytest

from smbsrv.config import ConfigError, load_config


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
