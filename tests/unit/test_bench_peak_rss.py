"""The bench's peak RSS is the stage's own, not the peak of the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_a_child_reports_its_own_peak_not_its_parents():
    """A parent that holds 300 MiB starts a small child: ``wait4``'s ``ru_maxrss`` for the child
    carries the parent's peak (Linux, ``vfork`` + ``exec``), while the child's own ``VmHWM``
    (``bench.stages.own_peak_rss_mib``) does not."""
    parent = textwrap.dedent(
        """
        import json, os, subprocess, sys
        hold = bytearray(300 * 2**20)
        for i in range(0, len(hold), 4096):
            hold[i] = 1  # touch every page: resident, not just reserved
        child = subprocess.Popen(
            [sys.executable, "-c", "from bench.stages import own_peak_rss_mib; print(own_peak_rss_mib())"],
            stdout=subprocess.PIPE, text=True,
        )
        own = float(child.stdout.read())
        _, _, usage = os.wait4(child.pid, 0)
        print(json.dumps({"own": own, "wait4": usage.ru_maxrss / 1024}))
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, check=True, cwd=root, timeout=120
    )
    import json

    figures = json.loads(done.stdout)
    assert figures["wait4"] >= 300  # the artifact the bench now avoids
    assert 5 < figures["own"] < 150  # the child's own: an interpreter and one import
