"""Test-session set-up shared by every test folder."""

import os

# Before torch is imported (see m2pt/__init__.py): tests often share the machine with other work.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
