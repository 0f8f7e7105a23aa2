"""DSPy's migration DeprecationWarnings blame the user's line, traced or not.

DSPy attributes them to the first frame outside `dspy` (`dspy/clients/_deprecation.py`). Python's default filters
show a DeprecationWarning only when it is attributed to `__main__`: if lmscope's wrapper took the blame, a script
would silently lose the warning. So the test runs a real script, with Python's default filters, and compares what it
printed traced and untraced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = """\
import sys
import dspy
if sys.argv[2] == "traced":
    import lmscope
    lmscope.instrument(exporters="none", metrics_exporters="none")
lm = dspy.LM("openai/gpt-4o-mini", api_base=sys.argv[1], api_key="sk-test", cache=False)
lm(messages=[{"role": "user", "content": "Say hi."}])  # deprecated in DSPy 3.4: warns on this line
print("done")
"""


EVALUATE_SCRIPT = """\
import sys
import dspy
from litellm import ModelResponse
if sys.argv[2] == "traced":
    import lmscope
    lmscope.instrument(exporters="none", metrics_exporters="none")
class LegacyLM(dspy.BaseLM):  # the legacy `forward` interface: deprecated in DSPy 3.4, warned about on first use
    def forward(self, prompt=None, messages=None, **kwargs):
        answer = {"role": "assistant", "content": "[[ ## answer ## ]]\\nok\\n\\n[[ ## completed ## ]]"}
        return ModelResponse(choices=[{"message": answer}], model="legacy",
                             usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
dspy.configure(lm=LegacyLM(model="legacy"))
evaluate = dspy.Evaluate(devset=[dspy.Example(question="c").with_inputs("question")], metric=lambda *_: 1,
                         display_progress=False, num_threads=1)
evaluate(dspy.Predict("question -> answer"))  # warns on this line: the program runs in Evaluate's worker
print("done")
"""


def _stderr_of(script: Path, base_url: str, mode: str, tmp_path: Path) -> str:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHONWARNINGS", "PYTEST", "LMSCOPE_", "OTEL_"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", DSPY_CACHEDIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(script), base_url, mode], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    return done.stderr


@pytest.mark.parametrize(("script_text", "warning"), [
    (SCRIPT, "7: DeprecationWarning: Passing OpenAI-style message dictionaries"),
    # The program runs in Evaluate's worker thread, under lmscope's `example {i}` span: that frame is DSPy's own to the
    # stack walk too. It used to take the blame, and Python's default filters then hid the warning.
    (EVALUATE_SCRIPT, "15: DeprecationWarning: Implementing custom LMs through BaseLM.forward()"),
], ids=["lm-call", "inside-evaluate"])
def test_a_dspy_deprecation_warning_points_at_the_users_line_traced_as_untraced(
        lm_server: Any, tmp_path: Path, script_text: str, warning: str) -> None:
    pytest.importorskip("dspy.clients._deprecation", reason="DSPy before 3.4 has no LM-interface migration warnings")
    script = tmp_path / "app.py"
    script.write_text(script_text)
    untraced = _stderr_of(script, lm_server.base_url, "untraced", tmp_path)
    traced = _stderr_of(script, lm_server.base_url, "traced", tmp_path)
    warning_line = f"{script}:{warning}"
    assert warning_line in untraced
    assert warning_line in traced
    assert "lmscope" not in traced
