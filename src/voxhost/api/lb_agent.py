"""HAProxy's agent check, answered by the server: whether to send it new work.

With `VOXHOST_LB_AGENT_PORT` set, the server listens there; HAProxy
(`agent-check agent-port N agent-inter 500ms` on each server line) connects,
reads one line, and the connection closes. The line is a weight:

- `100%` while this server takes new live sessions: `balance leastconn` then
  sends new connections to the server with the fewest open ones, and a live
  session is an open connection for its whole life, so sessions spread by load;
- `0%` while it is full (every live-session slot taken, or the live lane full)
  or leaving (drain, or its grace): weight 0 gets no new connections and keeps
  the open ones, so a full task is never picked while another has room, and a
  leaving one is skipped before its health check fails.

Up or down stays the health check's (`/ready`); the agent only says how much.
Never `drain`/`maint`/`ready`: those change HAProxy's administrative state,
which is the operator's (`disable server` in a spot drill must stay disabled).
An ALB has no agent check: docs/architecture.md ("Behind a load balancer").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("voxhost.lb_agent")


def agent_reply(state) -> str:
    """'0%' whenever a new live session would be refused here (api/admission.py: draining or
    leaving, loading, every slot taken, the live lane full), else '100%'."""
    from voxhost.api.admission import live_refusal

    try:
        refused = live_refusal(state) is not None
    except Exception:  # no STT engine loaded: nothing to admit a session to
        refused = True
    return "0%\n" if refused else "100%\n"


async def serve_agent(state, host: str, port: int) -> asyncio.AbstractServer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):  # a check that hung up early is nobody's problem
            writer.write(agent_reply(state).encode())
            await writer.drain()
        writer.close()

    # reuse_port: with VOXHOST_WORKERS > 1 each worker answers for itself; the kernel
    # picks one per check, so the weight follows the workers' load by sampling.
    server = await asyncio.start_server(answer, host, port, reuse_port=True)
    log.info("load-balancer agent on %s:%d", host, port)
    return server
