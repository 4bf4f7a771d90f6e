"""ClipSpec is plain data: importing it loads no torch, and its version names arch and weights."""

from __future__ import annotations

import subprocess
import sys

from sentinel.clip_spec import TINY_ARCH, ClipSpec


def test_spec_imports_without_torch() -> None:
    code = ("import sys, sentinel.clip_spec; "
            "print(sorted(m for m in ('torch', 'open_clip', 'numpy', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_names_arch_and_weights_not_threads() -> None:
    assert ClipSpec().version == f"{TINY_ARCH}:seed0"
    assert ClipSpec(seed=3).version == f"{TINY_ARCH}:seed3"
    assert ClipSpec(arch="ViT-B-32", checkpoint="/w/open_clip.bin", seed=3).version == "ViT-B-32:open_clip.bin"
    assert ClipSpec(threads=4, batch_size=8).version == ClipSpec().version
