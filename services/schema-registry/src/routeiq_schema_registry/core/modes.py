"""Confluent's registry modes: who may write to a subject (or the whole registry).

* ``READWRITE`` (the default): registrations get new ids, as usual.
* ``READONLY``: registrations and deletes are refused (42205); reads and mode changes are not.
* ``IMPORT``: registrations must carry the ``id`` (and may carry the ``version``) they had in the
  registry they come from; the id is kept, compatibility is not checked, and an id or version
  already holding another schema is refused (42205). A registration without an id is refused.

Confluent's fourth mode, ``READONLY_OVERRIDE``, is not supported (42204).
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """A registry's or a subject's mode (``parse_mode`` reads one from a request)."""

    READWRITE = "READWRITE"
    READONLY = "READONLY"
    IMPORT = "IMPORT"
