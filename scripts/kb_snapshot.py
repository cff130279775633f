"""Rebuild src/legspasm/knowledge/snapshot.json (the bundled knowledge files parsed, for a fast
start-up): run after changing a knowledge file (tests/test_knowledge.py says when). A stale
snapshot is never read: each file is used only when its SHA-256 matches."""

import json

from legspasm.knowledge.loader import SNAPSHOT, build_snapshot

if __name__ == "__main__":
    data = build_snapshot()
    SNAPSHOT.write_text(
        json.dumps(data, separators=(",", ":"), default=str) + "\n", encoding="utf-8"
    )
    print(f"{SNAPSHOT}: {len(data)} files")
