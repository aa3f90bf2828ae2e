"""The service edge's socket server, one room per job:

- :mod:`.admission`: loopback only, the waiting and authenticated pools, the token check;
- :mod:`.budget`: the payload bytes all connections may be reading at once;
- :mod:`.relay`: the queue, the workers, and each connection's watch on its job
  (heartbeat, cancel, abandon), socket-free and clock-injected;
- :mod:`.replies`: the core run for a job and its outcome in the wire's words;
- :mod:`.refusals`: the answers given without the core (a full server's ``busy``, a
  cancel's ``cancelled``);
- :mod:`.server`: the socket, the connections' threads, start-up (``serve``) and the
  fault hook of the tests;
- :mod:`.limits` (the caps) and :mod:`.log` (the rate-limited, rotating log).
"""
