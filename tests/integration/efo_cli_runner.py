"""``python -m tests.integration.efo_cli_runner consume ...``: the real CLI in its own process,
with the test-only kinesis-mock adaptation of :mod:`tests.integration.efo_compat` applied.

kinesis-mock omits SubscribeToShard's initial-response event; shipped code expects it (real
AWS sends it), so the patch can only live in test code.  Running the CLI's ``main`` under the
patch in a child process keeps everything else real: argument parsing, signals, exit status.
"""

from __future__ import annotations

import sys

from shardline.cli import main
from tests.integration.efo_compat import tolerate_missing_initial_response

if __name__ == "__main__":
    with tolerate_missing_initial_response():
        sys.exit(main(sys.argv[1:]))
