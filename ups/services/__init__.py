"""The UPS library (PS3.4 Annex CC) that applications import; ``ups`` re-exports its API.

* ``scu`` — :func:`~ups.services.scu.connect` and the UPS SCU operations;
* ``listener`` — :func:`~ups.services.listener.listen` and
  :func:`~ups.services.listener.serve_events`, typed ``events``, one frozen
  ``settings.ListenerSettings``, the bounded ``eventqueue``;
* ``address`` (``AET@host:port`` and the AE title rule), ``access`` (calling AE titles,
  users), ``uids``, ``errors`` (one root, ``UPSError``);
* ``scp`` — the reference UPS SCP, a package of its own above this one.
"""
