"""The offline demo (``./dev demo``) tells a true story: each act's claims hold.

Found the hard way: the demo once printed an unrepaired vault and a version left disabled,
and still exited 0. It now checks its claims and fails; this test runs it.
"""

from __future__ import annotations

import pytest

from local import demo

pytestmark = pytest.mark.e2e


def test_every_act_of_the_demo_holds(capsys: pytest.CaptureFixture[str]) -> None:
    code = demo.main([])
    out = capsys.readouterr().out
    assert "FAILED" not in out, out[-3000:]
    assert code == 0
    assert out.count("  ok: ") == 15, out[-3000:]
