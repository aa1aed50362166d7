"""Signed webhooks for favorite changes, delivered at least once.

Each favorite change that ``favoriteChanged`` reports is POSTed, signed as Standard
Webhooks says (``signing``), to every endpoint of its instance. The design, and why:

- **An outbox in MongoDB, fed by one change-stream relay** (``relay``). Deliveries are
  documents (``favgate.storage.outbox``) written by one process at a time, the holder
  of the relay's lease, which follows the change stream and stores its resume token after
  each change it has enqueued. The favorite write itself stays one round trip and knows
  nothing of webhooks; a change stream sees every write, whichever process made it. A
  relay killed at any point (``kill -9``) leaves the token of a change already enqueued:
  its successor re-reads from there, and what it enqueues again is already there
  (deliveries are keyed by event and endpoint). Nothing is lost between the write and
  the outbox.
- **Deliveries leased per document** (``worker``). Every process sends: a sender claims
  the delivery due soonest with one ``find_one_and_update`` that pushes its
  ``next_attempt_at`` one lease ahead, so each is attempted by one process at a time, and
  one whose sender died is claimed again when its lease runs out. A delivery leaves the
  outbox's pending state only once its endpoint answered 2xx, or its retry window
  (``FAVGATE_WEBHOOK_RETRY_HOURS``) has passed: at least once, never exactly once. A
  process that dies after the POST and before recording it sends it again.
- **A stable event id.** ``webhook-id`` is derived from the change's resume token
  (``payload.event_id``): the same on every retry, from every process, and for every
  endpoint, so receivers deduplicate by it.
- **Safe by default** (``addresses``): only http(s) URLs whose host resolves to public
  addresses, checked on adding and again on every attempt, which connects to the address
  checked; no redirects; 10 s per attempt (``sender``).

Limits: a relay stopped for longer than the database keeps its change history (the oplog
window) cannot resume (while it runs, it stores its position as the stream moves on,
whether or not a change was for it); it logs an error and goes on from the present, and
the changes in between are not sent. A process
with ``FAVGATE_WEBHOOK_WORKER=false`` neither relays nor sends; at least one must.

The endpoints' secrets are stored as they are (``favgate.storage.webhooks``): signing
needs them. Deliveries are not ordered: a retried change may arrive after a later one;
receivers compare the favorite's ``updatedAt``.
"""
