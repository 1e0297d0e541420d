"""The wake function: handler.py runs alone in AWS Lambda (standard library and boto3 only).

`up` zips exactly that file as `handler.py` (handler `handler.handler`); the CLI imports the same
module for `pcls sleep` / `pcls wake` and passes its own clients. docs/sleep.md tells the story.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = Path(__file__).with_name("handler.py")


def source() -> bytes:
    """The bytes the function's package holds as handler.py."""
    return SOURCE.read_bytes()
