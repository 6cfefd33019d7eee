"""The moto server the local stage deploys into, with its event source mappings left as records
(moto_patches.detach_event_source_mappings says why).

    python -m tools.local_aws.moto_server -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import sys

from moto import server

from tools.local_aws.moto_patches import detach_event_source_mappings


def main(argv: list[str] | None = None) -> None:
    detach_event_source_mappings()
    server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
