"""Record the mistral.rs server's answers to tests/transcripts.py's requests into tests/fixtures/mistralrs-<version>/.

    python scripts/record-transcripts.py [--url http://127.0.0.1:PORT]

Without --url it runs the pinned build (scripts/build-programs.sh mistralrs) with the default model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mistralrs_server import mistralrs_binary, running_mistralrs  # noqa: E402
from tests.transcripts import record, requests  # noqa: E402


def _version() -> str:
    for line in (ROOT / "monitoring" / "versions.env").read_text().splitlines():
        if line.startswith("MISTRALRS_SERVER_VERSION="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("MISTRALRS_SERVER_VERSION is not in monitoring/versions.env")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running mistral.rs server (default: start the pinned build)")
    args = parser.parse_args()
    binary = mistralrs_binary()
    if args.url is None and binary is None:
        raise SystemExit("no mistral.rs server: run scripts/build-programs.sh mistralrs, or pass --url")
    out = ROOT / "tests" / "fixtures" / f"mistralrs-{_version()}"
    out.mkdir(parents=True, exist_ok=True)
    log = Path(tempfile.mkdtemp(prefix="mistralrs-")) / "serve.log"
    server = nullcontext(args.url) if args.url else running_mistralrs(binary, log)  # type: ignore[arg-type]
    with server as url, httpx.Client(base_url=url, timeout=300) as client:
        # mistral.rs lists "default" first, which its model management does not know: record with the real id.
        model = next(entry["id"] for entry in client.get("/v1/models").json()["data"] if entry["id"] != "default")
        for request in requests(model):
            transcript = record(client, request)
            (out / f"{request.name}.json").write_text(json.dumps({**transcript.to_json(), "model": model}, indent=1))
            print(f"{request.name:26} {transcript.status} {transcript.content_type}", flush=True)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
