"""What a secured test node (`python -m vsplade_opensearch.testnode --security`) needs besides
the plugin itself: TLS material made at start-up (a private CA, one node certificate for HTTP
and transport, an admin client certificate and a `writer` client certificate), the security
plugin's configuration files written into the node's config folder (so the plugin initialises
its security index from them on first start: `allow_default_init_securityindex`, no
securityadmin run), and three users with passwords generated at start-up:

    admin   all_access
    writer  may create and write indices matching pages* only
    reader  read-only on pages* (read, indices_monitor and indices:admin/mappings/get)

The passwords are a test node's throwaway credentials: printed by the command and kept in
DATA/security.json so a restart on the same data uses the same ones. The bcrypt hashes come
from the plugin's own Hasher (one short JVM per user; the password travels in its environment,
never on a command line). The plugin zip is laid out by server/security/build-security.sh.
Needs the `cryptography` package (the connector's `test` extra).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SECURITY_VERSION = "2.19.1"  # the line Maven Central serves opensearch-security at (plus ".0")
USERS = ("admin", "writer", "reader")
ORG = "O=vsplade,OU=vsplade test node"
NODE_DN = f"CN=node,{ORG}"
ADMIN_DN = f"CN=admin,{ORG}"


class SecurityError(RuntimeError):
    """The secured node cannot be prepared (no plugin layout, no cryptography, Hasher failed)."""


@dataclass(frozen=True)
class Credentials:
    ca: Path  # the private CA's certificate (PEM): what --ca-certs takes
    passwords: dict[str, str]  # user -> password
    admin_cert: Path
    admin_key: Path
    writer_cert: Path  # a client certificate whose CN is `writer` (client-certificate auth)
    writer_key: Path


def plugin_dir(server_dir: Path) -> Path:
    """jars/security-VERSION/plugins (the folder linked as path.home/plugins), checked."""
    d = server_dir / "jars" / f"security-{SECURITY_VERSION}"
    script = server_dir / "security" / "build-security.sh"
    want = hashlib.sha256(script.read_bytes()).hexdigest() if script.is_file() else None
    if not (d / ".complete").is_file() or (d / ".complete").read_text().strip() != want:
        raise SecurityError(f"the OpenSearch {SECURITY_VERSION} security plugin is not laid out (no current {d}); "
                            "run `make opensearch-jars`")
    return d / "plugins"


def prepare(data: Path, configs: list[Path], java: Path, plugin_cp: str) -> Credentials:
    """Certificates, users and the plugin configuration in each node config folder of `configs`,
    made once per data folder: the same files and passwords serve every later start."""
    state = data / "security.json"
    tls = data / "tls"
    if state.is_file():
        saved = json.loads(state.read_text())
        creds = _credentials(tls, saved["passwords"])
        hashes = saved["hashes"]
    else:
        passwords = {u: secrets.token_urlsafe(18) for u in USERS}
        make_tls(tls)
        with ThreadPoolExecutor(len(USERS)) as pool:
            hashes = dict(zip(USERS, pool.map(lambda u: bcrypt_hash(java, plugin_cp, passwords[u]), USERS)))
        creds = _credentials(tls, passwords)
        state.write_text(json.dumps({"passwords": passwords, "hashes": hashes}))
        state.chmod(0o600)
    for config in configs:
        write_config(config, tls, hashes)
    return creds


def _credentials(tls: Path, passwords: dict[str, str]) -> Credentials:
    return Credentials(tls / "root-ca.pem", passwords, tls / "admin.pem", tls / "admin-key.pem",
                       tls / "writer.pem", tls / "writer-key.pem")


def bcrypt_hash(java: Path, plugin_cp: str, password: str) -> str:
    env = {**os.environ, "VSPLADE_HASH_PASSWORD": password}
    try:
        out = subprocess.run([str(java), "-cp", plugin_cp, "org.opensearch.security.tools.Hasher",
                              "-env", "VSPLADE_HASH_PASSWORD"], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise SecurityError("the security plugin's Hasher did not answer within 120 s") from None
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("$2")]
    if out.returncode != 0 or not lines:
        raise SecurityError(f"the security plugin's Hasher failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")
    return lines[-1]


# --- TLS -------------------------------------------------------------------------------------

def make_tls(tls: Path) -> None:
    """root-ca.pem; node.pem/node-key.pem (HTTP and transport, SAN 127.0.0.1 and localhost);
    admin.pem/admin-key.pem (the admin DN: may change the security index); writer.pem/
    writer-key.pem (CN=writer: client-certificate auth as the writer user). Keys are PKCS#8
    PEM, the form the plugin reads."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise SecurityError("--security needs the `cryptography` package (pip install 'vsplade-opensearch[test]')") from None

    tls.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(dn: str) -> x509.Name:
        oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "O": NameOID.ORGANIZATION_NAME}
        # RFC 4514 order (the DN strings above) is the reverse of the certificate's RDN sequence
        return x509.Name([x509.NameAttribute(oids[k], v) for k, v in (p.split("=", 1) for p in reversed(dn.split(",")))])

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def save(stem: str, cert: x509.Certificate, k: rsa.RSAPrivateKey | None) -> None:
        (tls / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if k is not None:
            p = tls / f"{stem}-key.pem"
            p.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
            p.chmod(0o600)

    ca_key = key()
    ca_name = name(f"CN=vsplade test root CA,{ORG}")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    save("root-ca", ca, None)

    def leaf(stem: str, dn: str, usages: list, san: list | None) -> None:
        k = key()
        b = (x509.CertificateBuilder().subject_name(name(dn)).issuer_name(ca_name).public_key(k.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        save(stem, b.sign(ca_key, hashes.SHA256()), k)

    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    leaf("node", NODE_DN, both, [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf("admin", ADMIN_DN, [ExtendedKeyUsageOID.CLIENT_AUTH], None)
    leaf("writer", f"CN=writer,{ORG}", [ExtendedKeyUsageOID.CLIENT_AUTH], None)


# --- the plugin's configuration ----------------------------------------------------------------

def write_config(config: Path, tls: Path, hashes: dict[str, str]) -> None:
    """opensearch.yml (read by the launcher's InternalSettingsPreparer from path.home/config:
    list settings such as DNs, which hold commas, cannot travel as key=value arguments), the
    certificates, and the security configuration the plugin loads into its index on first start."""
    config.mkdir(parents=True, exist_ok=True)
    for f in ("root-ca.pem", "node.pem", "node-key.pem"):
        (config / f).write_bytes((tls / f).read_bytes())
    sec = config / "opensearch-security"
    sec.mkdir(exist_ok=True)
    (config / "opensearch.yml").write_text(f"""\
# written by vsplade_opensearch.security for a secured test node
plugins.security.ssl.transport.pemcert_filepath: node.pem
plugins.security.ssl.transport.pemkey_filepath: node-key.pem
plugins.security.ssl.transport.pemtrustedcas_filepath: root-ca.pem
plugins.security.ssl.transport.enforce_hostname_verification: false
plugins.security.ssl.http.enabled: true
plugins.security.ssl.http.pemcert_filepath: node.pem
plugins.security.ssl.http.pemkey_filepath: node-key.pem
plugins.security.ssl.http.pemtrustedcas_filepath: root-ca.pem
# a client certificate is asked for, not required (basic auth works without one)
plugins.security.ssl.http.clientauth_mode: OPTIONAL
plugins.security.allow_default_init_securityindex: true
plugins.security.authcz.admin_dn: ["{ADMIN_DN}"]
plugins.security.nodes_dn: ["{NODE_DN}"]
plugins.security.restapi.roles_enabled: ["all_access"]
plugins.security.system_indices.enabled: true
""")
    users = "\n".join(f'{u}:\n  hash: "{hashes[u]}"\n  reserved: {"true" if u == "admin" else "false"}\n'
                      f'  description: "vsplade test node user {u}"' for u in USERS)
    files = {
        "config.yml": """\
_meta: {type: "config", config_version: 2}
config:
  dynamic:
    http:
      anonymous_auth_enabled: false
    authc:
      clientcert_auth_domain:
        description: "a client certificate whose CN is the user name"
        http_enabled: true
        transport_enabled: false
        order: 1
        http_authenticator: {type: clientcert, config: {username_attribute: cn}, challenge: false}
        authentication_backend: {type: noop}
      basic_internal_auth_domain:
        description: "HTTP basic auth against the internal users"
        http_enabled: true
        transport_enabled: true
        order: 2
        http_authenticator: {type: basic, challenge: true}
        authentication_backend: {type: intern}
""",
        "internal_users.yml": f'_meta: {{type: "internalusers", config_version: 2}}\n{users}\n',
        "roles.yml": """\
_meta: {type: "roles", config_version: 2}
vsplade_writer:
  description: "create and write indices matching pages* only"
  cluster_permissions: ["cluster_composite_ops", "cluster_monitor"]
  index_permissions:
    - index_patterns: ["pages*"]
      allowed_actions: ["crud", "create_index", "manage"]
vsplade_reader:
  description: "read-only on pages*"
  cluster_permissions: ["cluster_composite_ops_ro", "cluster_monitor"]
  index_permissions:
    - index_patterns: ["pages*"]
      # the "read" group lacks the mapping read the connector takes an index's _meta from
      allowed_actions: ["read", "indices_monitor", "indices:admin/mappings/get"]
""",
        "roles_mapping.yml": """\
_meta: {type: "rolesmapping", config_version: 2}
all_access: {reserved: false, users: ["admin"]}
vsplade_writer: {reserved: false, users: ["writer"]}
vsplade_reader: {reserved: false, users: ["reader"]}
""",
        "action_groups.yml": '_meta: {type: "actiongroups", config_version: 2}\n',
        "tenants.yml": '_meta: {type: "tenants", config_version: 2}\n',
        "nodes_dn.yml": '_meta: {type: "nodesdn", config_version: 2}\n',
        "allowlist.yml": '_meta: {type: "allowlist", config_version: 2}\nconfig: {enabled: false}\n',
        "audit.yml": '_meta: {type: "audit", config_version: 2}\nconfig: {enabled: false}\n',
    }
    for f, text in files.items():
        (sec / f).write_text(text)
