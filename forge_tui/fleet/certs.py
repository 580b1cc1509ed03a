"""`fleet certs DIR`: what a fleet needs for TLS and node authentication, made with `cryptography`
(which Flower already depends on). Private keys are written owner-only.

DIR/
  ca.pem, ca.key               the fleet's own certificate authority (keep ca.key offline)
  superlink.pem, superlink.key the SuperLink's TLS certificate (for every --host given, and loopback)
  nodes/NAME.key, NAME.pub     each node's authentication key pair (EC P-384, OpenSSH format); the
                               coordinator registers every NAME.pub, a node presents its NAME.key

Run again with more `--node` names to add nodes: the CA and existing keys are kept, never replaced.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from forge_tui.errors import BadInput

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
VALID_DAYS = 3650
NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class CertFolder:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "superlink.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "superlink.key"

    def node_key(self, name: str) -> Path:
        return self.folder / "nodes" / f"{name}.key"

    def node_public(self, name: str) -> Path:
        return self.folder / "nodes" / f"{name}.pub"

    def nodes(self) -> list[str]:
        return sorted(path.stem for path in (self.folder / "nodes").glob("*.pub"))

    def require(self) -> CertFolder:
        """The folder `fleet certs` made (BadInput naming what is missing)."""
        missing = [path for path in (self.ca, self.server_cert, self.server_key) if not path.is_file()]
        if missing:
            raise BadInput(f"{missing[0]}: missing; make the fleet's certificates with `forge-tui fleet certs {self.folder}`")
        return self


def check_node_name(name: str) -> str:
    if not name or not set(name) <= NAME_CHARACTERS:
        raise BadInput(f"{name!r}: a node name is letters, digits, '-', '_' and '.'")
    return name


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "forge-tui fleet"), x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
                 extensions: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA384())


def _alternative_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*LOOPBACK_NAMES, *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _make_authority(certs: CertFolder, hosts: list[str]) -> None:
    ca_key, server_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = _name("forge-tui fleet CA")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, [(x509.BasicConstraints(ca=True, path_length=0), True)])
    server = _certificate(_name(hosts[0] if hosts else "localhost"), server_key, ca_name, ca_key,
                          [(_alternative_names(hosts), False), (x509.BasicConstraints(ca=False, path_length=None), True),
                           (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)])
    certs.folder.mkdir(parents=True, exist_ok=True)
    _write_private(certs.folder / "ca.key", _pem_key(ca_key))
    _write_private(certs.server_key, _pem_key(server_key))
    certs.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))


def _make_node_key(certs: CertFolder, name: str) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(certs.node_key(name), key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                          serialization.NoEncryption()))
    certs.node_public(name).write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
                                        + f" {name}\n".encode())


def make_certs(folder: Path, hosts: list[str], nodes: list[str]) -> tuple[CertFolder, list[Path]]:
    """The CA and SuperLink certificate (once), and a key pair for each node that has none; returns
    the folder and the files written."""
    certs = CertFolder(folder)
    names = [check_node_name(name) for name in nodes]
    before = set(folder.rglob("*")) if folder.exists() else set()
    if not certs.ca.exists():
        _make_authority(certs, hosts)
    elif hosts:
        raise BadInput(f"{certs.ca}: the fleet's CA exists already; its SuperLink certificate is kept "
                       "(use a new folder for other --host names)")
    for name in names:
        if not certs.node_key(name).exists():
            _make_node_key(certs, name)
    return certs, sorted(path for path in folder.rglob("*") if path.is_file() and path not in before)
