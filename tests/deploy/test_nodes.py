"""``soundalert node``: Mosquitto password entries and managed ACL blocks.

That Mosquitto accepts the generated entries is shown by test_compose.py, whose broker runs
on the files these commands write.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from soundalert.cli import app
from soundalert.nodes import AclFile, PasswordFile, hash_password, verify_password
from tests.deploy.support import require


def test_hashes_are_mosquitto_2_pbkdf2_sha512(tmp_path: Path) -> None:
    encoded = hash_password("s3cret", salt=b"0123456789ab")
    assert encoded.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
    assert verify_password("s3cret", encoded)
    assert not verify_password("S3cret", encoded)
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    tool = require("mosquitto_passwd")
    subprocess.run([tool, "-b", str(passwd), "ana", "s3cret"], check=True, capture_output=True)
    assert verify_password("s3cret", PasswordFile(passwd).users()["ana"])


def test_node_add_replace_list_remove(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--config-dir", str(tmp_path)]
    first = runner.invoke(app, ["node", "add", "--site", "home", "--node", "hall", *args])
    assert first.exit_code == 0, first.output
    assert "password:" in first.output
    again = ["node", "add", "--site", "home", "--node", "hall", "--password", "pw-1234", *args]
    assert runner.invoke(app, again).exit_code == 0
    users = PasswordFile(tmp_path / "passwd").users()
    assert list(users) == ["home.hall"]
    assert verify_password("pw-1234", users["home.hall"])
    acl = (tmp_path / "acl").read_text()
    assert acl.count("user home.hall") == 1
    assert "topic write soundalert/v1/home/hall/#" in acl
    reads = [line for line in acl.splitlines() if "read" in line]
    assert reads == ["topic read soundalert/v1/home/hall/ack"], "its own acks, nothing else"
    assert "home.hall" in runner.invoke(app, ["node", "list", *args]).output
    removed = runner.invoke(app, ["node", "remove", "--site", "home", "--node", "hall", *args])
    assert removed.exit_code == 0, removed.output
    assert PasswordFile(tmp_path / "passwd").users() == {}
    assert AclFile(tmp_path / "acl").blocks() == []


def test_bad_ids_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["node", "add", "--site", "home/x", "--node", "a", "--config-dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert not (tmp_path / "passwd").exists()
