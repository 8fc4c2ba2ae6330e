"""Apache Kafka from Maven Central, cached under .cache/bench/kafka-<version>/libs.

The broker (kafka_2.13), the perf tools (kafka-tools) and their runtime dependencies are copied by
`mvn dependency:copy-dependencies`, plus log4j's slf4j binding so the broker logs to a file.
The newest 4.x release is looked up in Maven Central's metadata once a day; offline, the newest
version already in the cache is used.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / ".cache" / "bench"
METADATA_URL = "https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/maven-metadata.xml"
FALLBACK_VERSION = "4.4.0"
# Kafka 4.x logs through slf4j 1.7 to log4j 2; the binding is not a dependency of the broker jar.
LOG4J_VERSION = "2.25.5"

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>odradek.bench</groupId><artifactId>kafka-dist</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{v}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{v}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _cached_versions() -> list[str]:
    found = []
    for d in CACHE.glob("kafka-*"):
        v = d.name[len("kafka-"):]
        if re.fullmatch(r"4\.\d+\.\d+", v) and (d / "libs" / ".complete").exists():
            found.append(v)
    return sorted(found, key=_version_key)


def newest_4x() -> str:
    """The newest 4.x release on Maven Central (cached for a day), else the newest cached one."""
    stamp = CACHE / "kafka-newest-4x.txt"
    if stamp.exists() and time.time() - stamp.stat().st_mtime < 86400:
        return stamp.read_text().strip()
    try:
        with urllib.request.urlopen(METADATA_URL, timeout=10) as r:
            xml = r.read().decode()
        versions = [v for v in re.findall(r"<version>([^<]+)</version>", xml) if re.fullmatch(r"4\.\d+\.\d+", v)]
        newest = max(versions, key=_version_key)
        CACHE.mkdir(parents=True, exist_ok=True)
        stamp.write_text(newest + "\n")
        return newest
    except Exception as e:  # offline: whatever we have
        cached = _cached_versions()
        choice = cached[-1] if cached else FALLBACK_VERSION
        print(f"bench: could not read Maven Central's Kafka versions ({e}); using {choice}", file=sys.stderr)
        return choice


def ensure_kafka(version: str) -> Path:
    """Return the libs dir of Kafka `version`, fetching it with Maven when not cached."""
    libs = CACHE / f"kafka-{version}" / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn not found: Maven is needed to fetch Apache Kafka for the benchmark")
    print(f"bench: fetching Apache Kafka {version} from Maven Central into {libs} ...", file=sys.stderr)
    if libs.exists():
        shutil.rmtree(libs)
    libs.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(POM.format(v=version, log4j=LOG4J_VERSION))
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
            check=True,
        )
    if not (libs / f"kafka_2.13-{version}.jar").exists():
        raise RuntimeError(f"Maven did not deliver kafka_2.13-{version}.jar into {libs}")
    (libs / ".complete").touch()
    return libs


if __name__ == "__main__":
    v = sys.argv[1] if len(sys.argv) > 1 else newest_4x()
    print(ensure_kafka(v))
