"""moto's server, applying one request at a time.

moto's DynamoDB backend takes no locks, and its server runs each connection
on a thread of its own, so two conditional updates of one item can both pass
their condition: a race in the emulator (real DynamoDB applies the writes of
an item one at a time), which made the concurrent-reservation tests overspend
now and then. Same arguments as `moto_server`.
"""

import threading

from moto import server

_lock = threading.Lock()
_dispatch = server.DomainDispatcherApplication.__call__


def _one_at_a_time(self, environ, start_response):
    with _lock:
        return _dispatch(self, environ, start_response)


server.DomainDispatcherApplication.__call__ = _one_at_a_time

if __name__ == "__main__":
    server.main()
