"""The allocator's two policies (ops/memory.py): loads map their buffers, serving reuses the heap.

The policy is process-wide, so each test puts back the one it found (a session server may share
this process)."""

from __future__ import annotations

import threading

import pytest

from voxhost.ops import memory


@pytest.fixture
def restore_policy():
    serving = memory.policy() is memory.SERVING
    yield
    memory.configure_allocator()
    if serving:
        memory.start_serving()


@pytest.mark.usefixtures("restore_policy")
def test_start_up_loads_then_serves():
    memory.configure_allocator()
    assert memory.policy() is memory.LOADING
    memory.start_serving()
    assert memory.policy() is memory.SERVING
    assert memory.SERVING.mmap_threshold == 32 * 1024 * 1024  # glibc's ceiling: a Whisper encode's buffers reused


@pytest.mark.usefixtures("restore_policy")
def test_a_load_after_start_up_maps_its_buffers_and_serving_resumes_after_the_last():
    memory.configure_allocator()
    memory.start_serving()
    with memory.loading():
        assert memory.policy() is memory.LOADING
        with memory.loading():
            assert memory.policy() is memory.LOADING
        assert memory.policy() is memory.LOADING  # the outer load is still open
    assert memory.policy() is memory.SERVING


@pytest.mark.usefixtures("restore_policy")
def test_loads_in_two_threads_overlap():
    memory.configure_allocator()
    memory.start_serving()
    inside, release = threading.Event(), threading.Event()

    def other_load():
        with memory.loading():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=other_load)
    worker.start()
    inside.wait(5)
    with memory.loading():
        pass
    assert memory.policy() is memory.LOADING  # the other thread's load is still open
    release.set()
    worker.join()
    assert memory.policy() is memory.SERVING


@pytest.mark.usefixtures("restore_policy")
def test_a_load_during_start_up_leaves_the_loading_policy():
    memory.configure_allocator()
    with memory.loading():
        pass
    assert memory.policy() is memory.LOADING


@pytest.mark.usefixtures("restore_policy")
def test_a_failed_load_still_gives_serving_back():
    memory.configure_allocator()
    memory.start_serving()
    with pytest.raises(RuntimeError), memory.loading():
        raise RuntimeError("a reader failed to build")
    assert memory.policy() is memory.SERVING


def test_the_server_serves_under_the_serving_policy(server):
    """Once its models are in, the server's model calls reuse heap buffers (REST at 8 clips at once
    ran 1.45x faster than under the loading policy: docs/benchmarks.md)."""
    assert server.app.state.voxhost.ready.is_set()
    assert memory.policy() is memory.SERVING
