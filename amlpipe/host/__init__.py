"""The local Functions host: runs a Python v2 ``function_app.py`` the way ``func start`` does.

See docs/local-host.md for what it matches of the real host and what differs.
"""

from amlpipe.host.host import Host, HostOptions

__all__ = ["Host", "HostOptions"]
