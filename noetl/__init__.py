"""The shared core of the NoETL plugin catalog.

Every function imports from here: the payloads, the names of streams,
subjects and buckets, the CloudEvents binding for NATS, the registration
record and the one NATS connection a process keeps.
"""

__version__ = "0.1.0"
