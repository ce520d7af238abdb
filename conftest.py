"""Test-session set-up shared by every test folder."""

import os

# Before torch is imported (as m2pt.cli.configure_process does): tests often share the machine with other work.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
