"""Packaging: version from the metadata, py.typed, a core that needs only torch + timm + safetensors."""

from __future__ import annotations

import email
import importlib.metadata
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import m2pt

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("matplotlib", "av", "trimesh", "h5py", "sklearn", "torchaudio", "transformers", "peft", "lightning",
            "onnx", "onnxruntime", "onnxscript")

# Makes the optional packages unimportable in a fresh interpreter, as in an environment where only
# `pip install m2pt` ran: the import boundary is what is under test, not any component.
BLOCKER = textwrap.dedent(f"""
    import sys
    BLOCKED = {OPTIONAL!r}

    class _Hidden:
        \"\"\"Wraps an import finder so that it finds none of BLOCKED (as if not installed).\"\"\"

        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                return None
            return self.finder.find_spec(name, path, target)

        def __getattr__(self, attribute):
            return getattr(self.finder, attribute)

    sys.meta_path[:] = [_Hidden(finder) for finder in sys.meta_path]
""")


def run_without_optional_packages(code: str) -> subprocess.CompletedProcess:
    script = BLOCKER + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_version_comes_from_the_package_metadata():
    assert m2pt.__version__ == importlib.metadata.version("m2pt")


def test_cli_version(capsys):
    from m2pt.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"m2pt {m2pt.__version__}"


def test_metadata_has_py_typed_light_dependencies_and_extras(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "m2pt", source / "m2pt", ignore=shutil.ignore_patterns("__pycache__"))
    # setuptools' own metadata step (what a wheel build runs first), offline and without `wheel`.
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "egg_info",
                    "--egg-base", str(tmp_path)], cwd=source, check=True, capture_output=True, timeout=300)
    info = tmp_path / "m2pt.egg-info"
    assert "m2pt/py.typed" in (info / "SOURCES.txt").read_text().split()
    requires = (info / "requires.txt").read_text().split("\n[")[0].split()
    assert sorted(r.split(">")[0].split("<")[0].split("=")[0] for r in requires) == ["safetensors", "timm", "torch"]
    assert not any("==" in r for r in requires)  # ranges, not exact pins
    extras = email.message_from_string((info / "PKG-INFO").read_text()).get_all("Provides-Extra")
    assert {"data", "train", "hf", "onnx", "all"} <= set(extras)


def test_core_works_without_the_optional_packages():
    result = run_without_optional_packages("""
        import json, sys, tempfile, pathlib
        import torch
        import m2pt
        from m2pt.models import create_model

        torch.manual_seed(0)
        for modality in ("image", "video", "point", "audio"):
            target = create_model(modality, "tiny", num_classes=3, embed_dim=32, depth=2, num_heads=2).eval()
            aux = create_model(modality, "tiny", num_classes=3, embed_dim=32, depth=2, num_heads=2)
            model = m2pt.add_pathways(target, aux, scale_init=0.2).eval()
            x = torch.randn(2, *model.pretrained_cfg["input_size"])
            with torch.no_grad():
                expected = model(x)
                plain = m2pt.merge_pathways(model)
                assert torch.allclose(plain(x), expected, atol=1e-5), modality
            assert m2pt.param_groups(model, lr=1e-3)
            with tempfile.TemporaryDirectory() as folder:
                m2pt.save_model(plain, pathlib.Path(folder) / "model")
                reloaded = m2pt.load_model(pathlib.Path(folder) / "model").eval()
                with torch.no_grad():
                    assert torch.allclose(reloaded(x), expected, atol=1e-5), modality

        messages = {}
        try:
            from m2pt.data import VideoListDataset
        except ImportError as exc:
            messages["video"] = str(exc)
        try:
            m2pt.FbankTransform()(torch.randn(16000))
        except ImportError as exc:
            messages["fbank"] = str(exc)
        from m2pt.data import DatasetError  # the errors stay importable
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
        print(json.dumps({"messages": messages, "loaded": loaded}))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    report = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert "pip install 'm2pt[data]'" in report["messages"]["video"] and "'av'" in report["messages"]["video"]
    assert "pip install 'm2pt[data]'" in report["messages"]["fbank"] and "torchaudio" in report["messages"]["fbank"]


def test_cli_runs_without_the_optional_packages():
    result = run_without_optional_packages("""
        from m2pt.cli import main
        import sys
        code = main(["export", "missing.safetensors", "--onnx", "out.onnx"])
        print("exit", code)
        main(["--version"])
    """)
    assert "exit 2" in result.stdout, result.stderr[-3000:]
    assert "m2pt export: error" in result.stderr
    assert f"m2pt {m2pt.__version__}" in result.stdout
