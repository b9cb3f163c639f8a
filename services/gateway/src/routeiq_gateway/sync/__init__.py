"""Model rollout on a gateway: follow announcements, sync bundles under a Redis lock into a
cache shared by the replicas on one volume, verify, probe and hot-swap; roll back on demand.

* ``announcements``: every replica reads ``routeiq.model.announcements.v1`` from the beginning
  with no consumer group offsets (it assigns the single partition itself), so each sees every
  announcement and a starting replica learns the current model from the compacted log. A
  record it cannot decode or validate becomes one dead letter (``routeiq.deadletters``, the
  fleet's consumer name ``routeiq-gateway/announcements``, recalled before the first poll so
  a restart writes none again) and the reader goes on; a registry that does not answer holds
  the record until it does.
* ``bundle_cache``: the lock ``routeiq:sync:<volume>:<name>:<version>`` (renewed while held)
  lets one replica per volume download; it writes into a temporary folder and renames it into
  place, so a reader sees a whole bundle or none. The others wait, then find it cached. A
  holder that dies stops renewing, the lock expires and a waiter takes over. Redis
  unreachable: a few retries, then the download goes ahead without the lock (counted):
  serving never waits on Redis.
* ``model_sync``: verify signature and every sha256 → load → run the bundle's probe queries
  through this replica's feature pipeline → swap the router reference. Requests already
  routing keep the router they read. Any failure keeps the current router and is reported.
* ``control``: the fleet's routing configuration, versions on a compacted topic that every
  replica applies and any replica's admin API writes (one writer at a time, under a Redis
  lock; each version also goes to the audit topic, in the same Kafka transaction).
* ``audit``: every activation, rejection and rollback goes to a local JSON-lines file and,
  best effort, a capped Redis stream shared by the fleet (``routeiq model audit``).
"""

from routeiq_gateway.errors import SyncError
from routeiq_gateway.sync.announcements import Announcement, AnnouncementReader
from routeiq_gateway.sync.audit import AUDIT_STREAM, AuditTrail
from routeiq_gateway.sync.bundle_cache import BundleCache
from routeiq_gateway.sync.control import ControlPlane, ControlReader, ControlTopics
from routeiq_gateway.sync.model_sync import Featurize, ModelSync

__all__ = [
    "AUDIT_STREAM",
    "Announcement",
    "AnnouncementReader",
    "AuditTrail",
    "BundleCache",
    "ControlPlane",
    "ControlReader",
    "ControlTopics",
    "Featurize",
    "ModelSync",
    "SyncError",
]
