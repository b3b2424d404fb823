"""``soundalert node``: Mosquitto password entries and managed ACL blocks.

That Mosquitto accepts the generated entries is shown by test_compose.py, whose broker runs
on the files these commands write.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from cryptography import x509
from typer.testing import CliRunner

from soundalert.cli import app
from soundalert.nodes import AclFile, PasswordFile, hash_password, verify_password
from soundalert.tls import names_of
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
    assert reads == [
        "topic read soundalert/v1/home/hall/ack",
        "topic read soundalert/v1/home/hall/learn",
        "topic readwrite soundalert/v1/home/sounds/+",
    ], "its own acks and its site's learned sounds, nothing else"
    listed = runner.invoke(app, ["node", "list", *args]).output
    assert "home.hall" in listed
    assert "no ACL block" not in listed, listed
    assert AclFile(tmp_path / "acl").blocks() == ["node home/hall"]
    (tmp_path / "acl").write_text("")  # the login stays, its ACL block is gone
    assert (
        "home.hall                        node home/hall (no ACL block)"
        in runner.invoke(app, ["node", "list", *args]).output
    )
    runner.invoke(app, again)
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


def test_node_init_writes_a_ca_and_a_broker_certificate(tmp_path: Path) -> None:
    """A CA (key private, never beside the broker's files), a broker certificate it signed
    whose names cover the compose service, loopback, this host and every --san, and copies of
    the CA certificate for the broker and the services. A second run keeps them; a new --san
    re-issues the broker certificate from the same CA."""
    config = tmp_path / "deploy" / "mosquitto"

    def init(*extra: str) -> str:
        env_file = str(tmp_path / ".env")
        args = ["node", "init", "--config-dir", str(config), "--env-file", env_file, *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return result.output

    init("--san", "hub.example", "--san", "192.168.1.20")
    ca_dir, clients = tmp_path / "deploy" / "ca", tmp_path / "deploy" / "tls"
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    broker = x509.load_pem_x509_certificate((config / "tls" / "broker.crt").read_bytes())
    broker.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = names_of(broker)
    wanted = {"mosquitto", "localhost", "127.0.0.1", socket.gethostname(), "hub.example",
              "192.168.1.20"}  # fmt: skip
    assert wanted <= names
    assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert not list(config.rglob("ca.key")), "the CA key stays out of the broker's mount"
    for copy in (config / "tls" / "ca.crt", clients / "ca.crt"):
        assert copy.read_bytes() == (ca_dir / "ca.crt").read_bytes()
    openssl = shutil.which("openssl")
    if openssl is not None:
        verified = subprocess.run(
            [openssl, "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile",
             str(ca_dir / "ca.crt"), str(config / "tls" / "broker.crt")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr

    before = {p: p.read_bytes() for p in (ca_dir / "ca.key", config / "tls" / "broker.crt")}
    output = init("--san", "hub.example")
    assert {p: p.read_bytes() for p in before} == before
    assert "broker certificate" not in output

    init("--san", "pi.home.arpa")
    renewed = x509.load_pem_x509_certificate((config / "tls" / "broker.crt").read_bytes())
    renewed.verify_directly_issued_by(ca)
    assert "pi.home.arpa" in names_of(renewed)
    assert renewed.serial_number != broker.serial_number
