"""Cluster environments and image: every env's pip section resolves (pip's resolver, per Python), MeloTTS has
its own Python, no env installs the project from a relative path, the token map's env reads tokenizer.model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from factrace.checks import envs as envcheck

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
PROJECT_PYTHON = (3, 11)


def pip_lines(path: Path) -> list[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    return [str(x) for d in deps if isinstance(d, dict) for x in d.get("pip", [])]


def rule_envs() -> dict[str, str]:
    """rule name -> its conda env file (as written in the rule files)."""
    out = {}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for m in re.finditer(r'^\s*rule (\w+):\n(?:.*\n)*?\s+conda:\n\s+"([^"]+)"', smk.read_text(), flags=re.MULTILINE):
            out[m.group(1)] = Path(m.group(2)).name
    return out


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_no_env_installs_the_project_from_a_relative_path(env: Path):
    # Snakemake creates the env from a copy under .snakemake/conda/: `-e ../` names .snakemake/, not the repo
    assert not [ln for ln in pip_lines(env) if ln.startswith(("-e", "--editable", ".", "/"))]


@pytest.mark.parametrize("env", [e for e in ENVS if e.name != "melotts.yaml"], ids=lambda p: p.name)
def test_project_envs_use_the_projects_python(env: Path):
    spec = envcheck.conda_env_spec(env)
    assert tuple(int(x) for x in spec.python.split(".")[:2]) >= PROJECT_PYTHON, spec


def test_melotts_has_its_own_env_used_only_by_its_rule():
    uses = rule_envs()
    assert uses["tts_melotts"] == "melotts.yaml"
    assert [r for r, e in uses.items() if e == "melotts.yaml"] == ["tts_melotts"]
    for env in ENVS:
        has_melo = any("MeloTTS" in ln or ln.lower().startswith("melotts") for ln in pip_lines(env))
        assert has_melo == (env.name == "melotts.yaml"), env.name


def test_token_map_env_can_read_sentencepiece_tokenizers():
    env = ROOT / "envs" / rule_envs()["token_map"]
    names = {envcheck._req_name(r) for r in pip_lines(env)}
    assert {"sentencepiece", "protobuf"} <= names


def test_image_keeps_melotts_out_of_the_main_python():
    steps = envcheck.def_pip_steps(ROOT / "envs" / "factrace.def")
    main = [a for pip, args in steps if pip == "pip" for a in args]
    assert not [a for a in main if "MeloTTS" in a or a.lower().startswith("melotts")]
    text = (ROOT / "envs" / "factrace.def").read_text()
    assert "/opt/melotts" in text and "FACTRACE_MELOTTS_PYTHON=/opt/melotts/bin/python" in text
    labels = {s.name: s.python for s in envcheck.def_env_specs(ROOT / "envs" / "factrace.def")}
    assert tuple(int(x) for x in labels["factrace.def:pip"].split(".")) >= PROJECT_PYTHON


def test_envcheck_parses_a_conflict_and_skips_git_packages_with_a_reason(tmp_path: Path):
    env = tmp_path / "bad.yaml"
    env.write_text("dependencies:\n  - python=3.11\n  - pytorch>=2.3\n  - pip:\n"
                   "      - git+https://github.com/myshell-ai/MeloTTS.git\n      - transformers==4.27.4\n"
                   "      - transformers>=4.45\n")
    spec = envcheck.conda_env_spec(env)
    assert spec.python == "3.11" and "torch>=2.3" in spec.requirements
    assert spec.skipped and "not on PyPI" in spec.skipped[0][1]


@pytest.mark.envs
@pytest.mark.parametrize("spec", envcheck.all_specs(ROOT), ids=lambda s: s.name)
def test_every_env_resolves_with_pips_resolver(spec: envcheck.EnvSpec):
    """`make check-envs`, one env per test (needs the package index; pip's cache makes reruns fast)."""
    res = envcheck.resolve(spec)
    assert res.ok, f"{spec.name} (Python {spec.python}) does not resolve:\n{res.error}"
    if "transformers" in res.installed and spec.name != "melotts":
        assert int(res.installed["transformers"].split(".")[0]) >= 4


@pytest.mark.envs
def test_the_resolver_check_catches_melottss_transformers_pin(tmp_path: Path):
    bad = envcheck.EnvSpec("old-speech-env", "3.11", ["transformers==4.27.4", "transformers>=4.45"])
    res = envcheck.resolve(bad)
    assert not res.ok and "transformers" in res.error
