"""`python -m tools.verified`: rewrite generated/verified.{zh,en}.md and generated/gpu-report.md
(pagekit.reports) after requirements.txt changes or after a new GPU report."""
from pagekit.project import ROOT
from pagekit.reports import write

for path in write():
    print(f"wrote {path.relative_to(ROOT)}")
