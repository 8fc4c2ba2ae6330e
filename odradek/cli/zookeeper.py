"""`odradek zookeeper [zookeeper.properties]`: run a real Apache ZooKeeper for development.

What `zookeeper-server-start.sh config/zookeeper.properties` does in Kafka's quick start. The
server is Apache ZooKeeper 3.9.5 itself: its jars (and the few it needs at run time) are fetched
once from Maven Central into a cache (`$ODRADEK_ZOOKEEPER_HOME`, default
`~/.cache/odradek/zookeeper-3.9.5`), each checked against a pinned SHA-256, and run on the
machine's Java. Owns only that: fetching, the config file, the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from odradek.cli import UsageError

__all__ = ["ZOOKEEPER_VERSION", "ensure_installed", "java_command", "register", "run", "server_command", "write_config"]

ZOOKEEPER_VERSION = "3.9.5"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

# (group, artifact, version, sha256). ZooKeeper's pom marks metrics-core and snappy-java as
# provided, but the server needs them (without snappy-java it listens yet answers "not currently
# serving requests"); slf4j-simple is the logging backend neither brings.
JARS = (
    ("org.apache.zookeeper", "zookeeper", ZOOKEEPER_VERSION, "936d025db1a85f085edea25048c3f5b3de5fc29329c371a10925e3b78b0b38a0"),
    ("org.apache.zookeeper", "zookeeper-jute", ZOOKEEPER_VERSION, "abcbc7f9d6c493daa118da6fa3061a201e2c521217526e8535adfb56b629e52a"),
    ("org.apache.yetus", "audience-annotations", "0.12.0", "ffb101fc066360ff3c77457c927fd7967fb096a6ee9e046ab7071447d8208efc"),
    ("commons-io", "commons-io", "2.17.0", "4aa4ca48f3dfd30b78220b7881d8cb93eac4093ec94361b6befa9487998a550b"),
    ("io.dropwizard.metrics", "metrics-core", "4.2.40", "401a3e1bbd64d7a652344b293a8d83b7e31f51df4dd2328190024fcbdf65583d"),
    ("org.xerial.snappy", "snappy-java", "1.1.10.7", "4c766cb3f855415ee734b2392949a0b6f12a60879334a74518deaf6270d32e36"),
    ("org.slf4j", "slf4j-api", "2.0.13", "e7c2a48e8515ba1f49fa637d57b4e2f590b3f5bd97407ac699c3aa5efb1204a9"),
    ("org.slf4j", "slf4j-simple", "2.0.20", "8e701404786a4f87219d39d4853c86dfe4e86ae99376a39749df6c08e75022e0"),
)

DEFAULTS = {
    "dataDir": "./zookeeper-data",
    "clientPort": "2181",
    "maxClientCnxns": "0",
    "admin.enableServer": "false",
    "tickTime": "2000",
    "4lw.commands.whitelist": "ruok,srvr,stat,mntr,conf",
}


def default_home() -> Path:
    configured = os.environ.get("ODRADEK_ZOOKEEPER_HOME")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "odradek" / f"zookeeper-{ZOOKEEPER_VERSION}"


def ensure_installed(home: Path | None = None, *, announce=lambda message: print(message, file=sys.stderr)) -> Path:
    """The directory holding ZooKeeper's jars, fetching any that are missing; UsageError (one
    line) when one cannot be fetched or does not match its pinned checksum."""
    lib = (home or default_home()) / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for group, artifact, version, sha256 in JARS:
        target = lib / f"{artifact}-{version}.jar"
        if target.exists() and _sha256(target.read_bytes()) == sha256:
            continue
        url = f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
        announce(f"fetching {artifact}-{version}.jar from Maven Central")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
        except OSError as exc:
            raise UsageError(f"cannot fetch {url}: {exc}") from None
        if _sha256(data) != sha256:
            raise UsageError(f"{url} does not match its pinned SHA-256; refusing to run it")
        with tempfile.NamedTemporaryFile(dir=lib, delete=False) as temporary:
            temporary.write(data)
        os.replace(temporary.name, target)
    return lib


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def java_command() -> str:
    java = shutil.which("java")
    if java is None:
        raise UsageError("ZooKeeper runs on Java (11 or newer), and no 'java' is on the PATH: install a JRE "
                         "(e.g. apt-get install default-jre-headless)")
    return java


def write_config(path: Path, values: dict[str, str]) -> Path:
    """A zoo.cfg with ZooKeeper's defaults for development under `values`; dataDir made absolute."""
    settings = {**DEFAULTS, **values}
    settings["dataDir"] = str(Path(settings["dataDir"]).absolute())
    Path(settings["dataDir"]).mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return path


def server_command(config_path: Path, lib: Path, *, log_level: str = "info") -> list[str]:
    return [
        java_command(),
        "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC",
        f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dzookeeper.admin.enableServer=false",
        "-cp", str(lib / "*"),
        MAIN_CLASS,
        str(config_path),
    ]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "zookeeper",
        help="run a local Apache ZooKeeper for development",
        description="Run Apache ZooKeeper 3.9.5 (fetched once from Maven Central, checked against pinned "
        "checksums) on this machine's Java, as Kafka's zookeeper-server-start.sh does. Reads ZooKeeper's "
        "properties format (dataDir, clientPort, ...); defaults: clientPort 2181, dataDir ./zookeeper-data.",
    )
    parser.add_argument("config_file", nargs="?", metavar="zookeeper.properties", help="ZooKeeper config file")
    parser.add_argument("--port", type=int, help="clientPort (overrides the file)")
    parser.add_argument("--data-dir", help="dataDir (overrides the file)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    values: dict[str, str] = {}
    if args.config_file is not None:
        from odradek.cli.server import read_properties_file

        values.update(read_properties_file(Path(args.config_file)))
    if args.port is not None:
        values["clientPort"] = str(args.port)
    if args.data_dir is not None:
        values["dataDir"] = args.data_dir
    java = java_command()
    lib = ensure_installed()
    work = Path(tempfile.mkdtemp(prefix="odradek-zookeeper-"))
    config = write_config(work / "zoo.cfg", values)
    command = server_command(config, lib)
    command[0] = java
    print(f"ZooKeeper {ZOOKEEPER_VERSION} on port {values.get('clientPort', DEFAULTS['clientPort'])}, "
          f"data in {Path(values.get('dataDir', DEFAULTS['dataDir'])).absolute()}", file=sys.stderr, flush=True)
    os.execv(java, command)  # Ctrl-C and SIGTERM go straight to ZooKeeper
