"""Training logs reach ``logging.getLogger("m2pt")`` (and the root logger), without duplicate lines."""

from __future__ import annotations

import logging

from m2pt.train import finetune

from .conftest import tiny_config


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_finetune_logs_propagate_to_the_m2pt_logger(tmp_path, capsys):
    handler = Collect()
    package_logger = logging.getLogger("m2pt")
    package_logger.addHandler(handler)
    try:
        finetune(tiny_config(tmp_path / "run", epochs=1), quiet=False)
    finally:
        package_logger.removeHandler(handler)
    assert handler.messages, "no record reached logging.getLogger('m2pt')"
    log_file = (tmp_path / "run" / "train.log").read_text()
    assert all(message in log_file for message in handler.messages)
    # Logging configured above the run logger owns the terminal: m2pt adds no second stderr handler.
    assert handler.messages[0] not in capsys.readouterr().err
