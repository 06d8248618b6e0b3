"""Environment-facing parts of the harness: what a run that cannot set itself up does
(skips with the reason, never errors), and the image cache."""

import time

from harness import sandbox
from tests.helpers import in_child_as


def test_a_non_root_test_that_sets_a_namespace_sysctl_skips_with_the_reason():
    """As non-root the test's namespace's /proc/sys/net files belong to an unmapped root:
    the test cannot set itself up, which is a skip with the reason, not an error."""
    def fn():
        from harness import sysctl
        out = sandbox.run(lambda: sysctl.write("net.ipv4.ip_default_ttl", 33), tmp_root="/tmp")
        sandbox.reap(block=True)
        return out.to_dict()
    out = in_child_as(65534, fn)
    assert out["status"] == "skipped", out
    assert "as uid 65534" in out["message"] and "net.ipv4.ip_default_ttl" in out["message"]


def test_a_non_root_caller_can_isolate_its_tests():
    assert in_child_as(65534, sandbox.isolation_unavailable) is None


def test_a_warm_image_build_builds_nothing():
    from harness import docker_engine, images

    with docker_engine.Engine():
        images.ensure("plain", quiet=True)          # cold in a fresh CI machine
        images.BUILD_TIMES.clear()
        t = time.perf_counter()
        tag = images.ensure("plain", quiet=True)
        warm = time.perf_counter() - t
    assert images.BUILD_TIMES == {} and warm < 5, (images.BUILD_TIMES, warm)
    assert tag == images.tag("plain") and tag.startswith("sockspec/plain:")
