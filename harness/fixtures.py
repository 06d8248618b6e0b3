"""pytest fixtures for labeled networking, over :mod:`harness.labeling`.

They run in the pytest process, before the test child forks (NetLabel answers only in the
initial network namespace and is global: see :mod:`harness.labeling`), and tear down after
the test whatever happened.  A test whose clauses the environment cannot check (no SELinux,
not the VM) is skipped before any fixture runs, so a host run never touches NetLabel.
Labeled IPsec is per namespace and is set up inside the test body instead
(:func:`harness.labeling.labeled_ipsec`).
"""

from __future__ import annotations

import pytest

from harness import labeling


@pytest.fixture
def cipso_local():
    """NetLabel CIPSO "local" DOI for traffic from this process's type to 127.0.0.1:
    the receiver sees the sender's full context."""
    with labeling.netlabel_cipso(labeling.CIPSO_LOCAL_ADDR, local=True) as setup:
        yield setup


@pytest.fixture
def cipso_pass():
    """NetLabel CIPSO pass-through DOI (tag 1) for traffic from this process's type to
    127.0.0.2: the receiver sees the sender's MLS level on netmsg's user:role:type."""
    with labeling.netlabel_cipso(labeling.CIPSO_PASS_ADDR, local=False) as setup:
        yield setup


@pytest.fixture
def static_label():
    """A NetLabel static label for unlabeled packets from 127.0.0.4 on lo: this process's
    own context (the context of the sockets it creates by default)."""
    with labeling.netlabel_static(labeling.STATIC_ADDR, labeling.own_context()) as setup:
        yield setup


@pytest.fixture
def netlabel(request):
    """One of the NetLabel fixtures by name, for ``indirect`` parametrization:
    "cipso-local", "cipso-pass" or "static-label"."""
    if request.param == "cipso-local":
        manager = labeling.netlabel_cipso(labeling.CIPSO_LOCAL_ADDR, local=True)
    elif request.param == "cipso-pass":
        manager = labeling.netlabel_cipso(labeling.CIPSO_PASS_ADDR, local=False)
    elif request.param == "static-label":
        manager = labeling.netlabel_static(labeling.STATIC_ADDR, labeling.own_context())
    else:
        raise ValueError(f"unknown NetLabel fixture {request.param!r}")
    with manager as setup:
        yield setup
