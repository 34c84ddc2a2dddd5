"""The README's "Drift engine" example runs and says what it claims."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_drift_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Drift engine") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    first = out.getvalue().splitlines()[0]
    assert first == "['amount']"
    assert (tmp_path / "reference.rwprofile").exists()
