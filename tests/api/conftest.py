"""Extra servers for serving tests, sharing the session server's loaded models.

`sibling(**settings)` starts another real uvicorn app with different settings
(API keys, tiny queues) but the same loaded engines, so no test pays for
loading Whisper twice.
"""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture
def sibling(server, settings):
    stack = contextlib.ExitStack()

    def start(*, setup=None, **overrides):
        from voxhost.api.app import create_app

        app = create_app(settings.model_copy(update=overrides), load_models=False)
        state = app.state.voxhost
        state.services.stt_engines.engines = server.app.state.voxhost.services.stt_engines.engines
        state.ready.set()
        if setup is not None:
            setup(app)
        return stack.enter_context(type(server)(app))  # the root conftest's LiveServer

    with stack:
        yield start
